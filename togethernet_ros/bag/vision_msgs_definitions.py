"""vision_msgs 4.1.x message definitions for rosbags, which does not ship them.

The texts are field-identical to upstream vision_msgs 4.1.x (comments dropped), so the RIHS01
type hashes equal those of a real ROS 2 build and bags written here replay into real nodes. They
live inside the package (not read from tools/) because an installed package has no tools/.
"""

from __future__ import annotations

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

# Type name -> .msg text, dependencies before dependants.
VISION_MSGS_DEFINITIONS: dict[str, str] = {
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n"
    ),
    "vision_msgs/msg/Detection2D": (
        "std_msgs/Header header\n"
        "vision_msgs/ObjectHypothesisWithPose[] results\n"
        "vision_msgs/BoundingBox2D bbox\n"
        "string id\n"
    ),
    "vision_msgs/msg/Detection2DArray": (
        "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n"
    ),
    "vision_msgs/msg/VisionClass": "uint16 class_id\nstring class_name\n",
    "vision_msgs/msg/LabelInfo": (
        "std_msgs/Header header\nvision_msgs/VisionClass[] class_map\nfloat32 threshold\n"
    ),
}

DETECTION2D_ARRAY = "vision_msgs/msg/Detection2DArray"
LABEL_INFO = "vision_msgs/msg/LabelInfo"


def register_vision_msgs(typestore: Typestore) -> Typestore:
    """Register the vision_msgs types in ``typestore`` (idempotent) and return it."""
    types = {}
    for name, text in VISION_MSGS_DEFINITIONS.items():
        types.update(get_types_from_msg(text, name))
    typestore.register(types)
    return typestore


def create_typestore() -> Typestore:
    """Return a ROS 2 Jazzy typestore with vision_msgs registered.

    Jazzy because it is the LTS the node targets; the sensor_msgs/std_msgs/geometry_msgs
    definitions are identical in Kilted, so hashes match either distribution.
    """
    return register_vision_msgs(get_typestore(Stores.ROS2_JAZZY))
