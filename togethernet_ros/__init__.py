"""TogetherNet for ROS 2: joint dehazing and object detection in fog, haze and bad weather."""

__version__ = "0.1.0"
