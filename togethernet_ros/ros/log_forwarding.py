"""Python `logging` records of the library, shown through the node's ROS logger.

The model, inference and pipeline code log with `logging.getLogger("togethernet_ros")`; in a
node nothing prints those records below WARNING (Python's last-resort handler), so messages such
as "exporting ... to ONNX (one-off)" were lost, and the rest bypassed the ROS log format,
`/rosout` and `--log-level`.
"""

from __future__ import annotations

import logging
from typing import Any

LIBRARY_LOGGER = "togethernet_ros"


class RosLogHandler(logging.Handler):
    """Forward each record to an rclpy logger at the matching severity."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__()
        self._ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        """Log the formatted record on the ROS logger."""
        try:
            message = self.format(record)
            if record.levelno >= logging.ERROR:
                self._ros_logger.error(message)
            elif record.levelno >= logging.WARNING:
                self._ros_logger.warning(message)
            elif record.levelno >= logging.INFO:
                self._ros_logger.info(message)
            else:
                self._ros_logger.debug(message)
        except Exception:  # logging must never take the caller down
            self.handleError(record)


def forward_library_logs(ros_logger: Any) -> RosLogHandler:
    """Send the library's log records (INFO and up) to ``ros_logger``; returns the handler.

    The ROS logger applies its own level (`--log-level`) on top.
    """
    handler = RosLogHandler(ros_logger)
    library = logging.getLogger(LIBRARY_LOGGER)
    library.addHandler(handler)
    library.setLevel(logging.INFO)
    library.propagate = False  # no second copy through a root handler
    return handler
