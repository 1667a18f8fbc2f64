"""Environment for ROS 2 processes that talk only to each other on this machine.

Plain Python on purpose (no rclpy import): the variables must be set before a process creates its
first DDS participant, so callers build the environment first and then start or init ROS.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

PROFILE_FILE_NAME = "fastdds_localhost.xml"


def fastdds_profile_path() -> Path:
    """Locate the loopback Fast DDS profile: the source tree's config/ or the installed share."""
    source_tree_profile = Path(__file__).resolve().parents[2] / "config" / PROFILE_FILE_NAME
    if source_tree_profile.is_file():
        return source_tree_profile
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = (
            Path(get_package_share_directory("togethernet_ros")) / "config" / PROFILE_FILE_NAME
        )
    except (ImportError, LookupError, OSError) as error:
        raise FileNotFoundError(
            f"{PROFILE_FILE_NAME} not found next to the sources and togethernet_ros is not installed "
            "in an ament index"
        ) from error
    if not installed.is_file():
        raise FileNotFoundError(f"Fast DDS profile missing from the installed package: {installed}")
    return installed


def local_dds_environment(domain_id: int | None = None) -> dict[str, str]:
    """Return environment variables for a loopback-only Fast DDS session.

    A random domain id (1-100; ids above 232 fail with Fast DDS' default ports) keeps concurrent
    test runs and demos on one machine from seeing each other.
    """
    if domain_id is None:
        domain_id = random.SystemRandom().randint(1, 100)
    if not 0 <= domain_id <= 232:
        raise ValueError(f"ROS_DOMAIN_ID must be in 0..232, got {domain_id}")
    profile = str(fastdds_profile_path())
    return {
        # Fast DDS 2.x (Jazzy ships 2.14) reads only FASTRTPS_DEFAULT_PROFILES_FILE; 3.x renamed it
        # to FASTDDS_DEFAULT_PROFILES_FILE. Setting both makes the profile apply on either.
        "FASTRTPS_DEFAULT_PROFILES_FILE": profile,
        "FASTDDS_DEFAULT_PROFILES_FILE": profile,
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": str(domain_id),
        "RMW_IMPLEMENTATION": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
    }
