"""The error of an invalid node parameter value, on its own so light modules can raise it.

ros/qos_settings.py raises it too, and the camera receiver processes import that module: they
must not load what ros/node_settings.py loads (the inference package, and with it torch).
"""

from __future__ import annotations


class SettingsError(ValueError):
    """A parameter value is invalid; the message names the parameter and the problem."""
