"""Per-epoch CSV log (+ TensorBoard scalars when the package is installed)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

LOGGER = logging.getLogger("togethernet_ros")


class TrainingLog:
    """Appends one CSV row per epoch; mirrors every number to TensorBoard if available."""

    def __init__(self, out_dir: str | Path, tensorboard: bool = True):
        self.path = Path(out_dir) / "log.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._columns: list[str] | None = None
        if self.path.is_file():  # resumed run: keep appending with the same columns
            with self.path.open() as handle:
                header = handle.readline().strip()
            self._columns = header.split(",") if header else None
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(Path(out_dir) / "tensorboard"))
            except ImportError:
                LOGGER.info("tensorboard not installed: logging to %s only", self.path)

    def write(self, epoch: int, values: dict[str, float]) -> None:
        """Record the numbers of one finished epoch."""
        row = {"epoch": epoch, **values}
        if self._columns is None:
            self._columns = list(row)
            with self.path.open("w", newline="") as handle:
                csv.writer(handle).writerow(self._columns)
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow([_format(row.get(column)) for column in self._columns])
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, int | float):
                    self._writer.add_scalar(key, value, epoch)
            self._writer.flush()

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._writer is not None:
            self._writer.close()


def _format(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
