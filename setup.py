"""ament_python package definition for togethernet_ros."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE_NAME = "togethernet_ros"

setup(
    name=PACKAGE_NAME,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE_NAME, f"{PACKAGE_NAME}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE_NAME}"]),
        (f"share/{PACKAGE_NAME}", ["package.xml"]),
        (f"share/{PACKAGE_NAME}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE_NAME}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE_NAME}/models", glob("models/*.md") + glob("models/*.pt")),
    ],
    include_package_data=True,
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="togethernet_ros developers",
    maintainer_email="togethernet-ros@users.noreply.github.com",
    description="TogetherNet joint dehazing + object detection for ROS 2 in fog and bad weather.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            f"detector_node = {PACKAGE_NAME}.ros.detector_node:main",
            f"togethernet = {PACKAGE_NAME}.cli:main",
        ],
    },
)
