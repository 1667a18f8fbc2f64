#!/usr/bin/env python3
"""Create or update the project virtualenv (.venv) with everything togethernet_ros needs.

Idempotent: a stamp file records what was installed; a second run with unchanged requirement
files only re-checks that the key imports work. Steps:

1. Python >= 3.10, then `.venv`.
2. The pinned Python dependencies (tools/requirements.txt); onnxruntime-gpu where a GPU is present,
   the NumPy 1.x set where a sourced distribution's NumPy is 1.x (its messages are built for it).
3. A ROS 2 runtime: the sourced distribution when there is one, else the Jazzy wheels from PyPI
   (Kilted only when Jazzy cannot work; the two families are never mixed).
4. vision_msgs: from the distribution when it has it, else built with cmake into the venv.
5. This package, editable.

Run with any Python >= 3.10: `python3 tools/setup_env.py`. `--print-requirements` only lists the
pins it would install for the running Python (the ROS 2 workstation steps in README.md use it).

Offline (a machine with no registry access, e.g. the GPU machine): `python3 tools/setup_env.py
--offline-wheels DIR` installs ROS 2 and rosbags from the wheels that `tools/offline_wheels.py`
downloaded into DIR, reuses everything else (torch, OpenCV, ...) from the Python running it, and
builds vision_msgs; nothing is fetched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

MIN_PYTHON = (3, 10)
REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS_DIR = REPO_ROOT / "tools"
VENV_DIR = REPO_ROOT / ".venv"
STAMP_FILE = VENV_DIR / ".togethernet_setup.json"
REQUIREMENTS = TOOLS_DIR / "requirements.txt"
ROS_REQUIREMENTS = {
    "jazzy": TOOLS_DIR / "ros-requirements-jazzy.txt",
    "kilted": TOOLS_DIR / "ros-requirements-kilted.txt",
}
VISION_MSGS_SOURCE = TOOLS_DIR / "vision_msgs"
SMOKE_IMPORTS = (
    "import rclpy, vision_msgs.msg, diagnostic_msgs.msg, lifecycle_msgs.msg, sensor_msgs.msg"
)
CORE_IMPORTS = "import torch, cv2, onnxruntime, rosbags, numpy, togethernet_ros"


class SetupError(RuntimeError):
    """A set-up step failed; the message says what is missing and how to get it."""


def log(message: str) -> None:
    print(f"[setup] {message}", file=sys.stderr, flush=True)


def run(command: list[str], env: dict[str, str] | None = None, quiet: bool = False) -> None:
    """Run a command, failing with its output when it fails."""
    log(" ".join(str(part) for part in command))
    result = subprocess.run(
        command,
        env=env,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout or "")[-4000:] if quiet else ""
        raise SetupError(f"command failed ({result.returncode}): {' '.join(command)}\n{output}")


def venv_python() -> Path:
    return VENV_DIR / "bin" / "python"


def imports_work(statement: str, env: dict[str, str] | None = None) -> bool:
    result = subprocess.run(
        [str(venv_python()), "-c", statement],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


def has_gpu() -> bool:
    """True when an NVIDIA driver answers; decides the CUDA builds of torch and onnxruntime."""
    if shutil.which("nvidia-smi") is None:
        return False
    result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return result.returncode == 0 and "GPU" in result.stdout


def sourced_ros_distro() -> str | None:
    """Return ROS_DISTRO when a distribution is sourced and its rclpy imports, else None."""
    distro = os.environ.get("ROS_DISTRO")
    if not distro:
        return None
    probe = subprocess.run(
        [sys.executable, "-c", "import rclpy"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        log(f"ROS_DISTRO={distro} is set but its rclpy does not import; using PyPI wheels instead")
        return None
    return distro


def python_requirements(gpu: bool, numpy1: bool = False) -> list[str]:
    """Read tools/requirements.txt for this host.

    On GPU hosts a line's `# gpu:` alternative replaces it. With ``numpy1`` the lines tagged
    `# numpy1` (the NumPy 1.x set, otherwise only for Python < 3.11) apply on every Python and
    replace the other pins of their packages: a sourced distribution built against NumPy 1.x
    cannot load its messages under NumPy 2.
    """
    chosen: list[tuple[str, bool]] = []
    for raw in REQUIREMENTS.read_text().splitlines():
        requirement, _, comment = raw.partition("#")
        requirement = requirement.strip()
        if not requirement:
            continue
        comment = comment.strip()
        tagged_numpy1 = comment.split(";")[0].split(" ")[0] == "numpy1"
        _, gpu_marker, alternative = comment.partition("gpu:")
        if gpu and gpu_marker:
            requirement = alternative.strip()
        chosen.append((requirement, tagged_numpy1))
    if not numpy1:
        return [requirement for requirement, _ in chosen]
    numpy1_names = {requirement_name(r) for r, tagged in chosen if tagged}
    return [
        requirement.split(";")[0].strip() if tagged else requirement
        for requirement, tagged in chosen
        if tagged or requirement_name(requirement) not in numpy1_names
    ]


def requirement_name(requirement: str) -> str:
    """The project name of a requirement line (`numpy==1.26.4; ...` → `numpy`)."""
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")


def numpy_major_of(python: str) -> int | None:
    """Major version of the NumPy that `python` imports, or None when it has none."""
    probe = subprocess.run(
        [python, "-c", "import numpy; print(numpy.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return None
    return int(probe.stdout.strip().split(".")[0])


def distribution_needs_numpy1(distro: str | None) -> bool:
    """Whether the sourced distribution's Python sees NumPy 1.x (its messages are built for it)."""
    return distro is not None and numpy_major_of(sys.executable) == 1


def fingerprint(mode: dict[str, object]) -> str:
    digest = hashlib.sha256(json.dumps(mode, sort_keys=True).encode())
    for path in [REQUIREMENTS, *ROS_REQUIREMENTS.values(), Path(__file__)]:
        digest.update(path.read_bytes())
    for message in sorted((VISION_MSGS_SOURCE / "msg").glob("*.msg")):
        digest.update(message.read_bytes())
    digest.update((REPO_ROOT / "setup.py").read_bytes())
    return digest.hexdigest()


def ensure_build_tools() -> None:
    """cmake and a C++ compiler are needed to build vision_msgs; install them via apt when root."""
    missing = [tool for tool in ("cmake", "g++", "make") if shutil.which(tool) is None]
    if not missing:
        return
    apt_command = ["apt-get", "install", "-y", "--no-install-recommends", "cmake", "g++", "make"]
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing missing build tools with apt: {', '.join(missing)}")
        run(["apt-get", "update"], quiet=True)
        run(apt_command, quiet=True)
        return
    raise SetupError(
        f"missing build tools: {', '.join(missing)} (needed to build vision_msgs). Install them with:\n"
        f"  sudo {' '.join(apt_command)}"
    )


def create_venv() -> None:
    if venv_python().exists():
        return
    log(f"creating {VENV_DIR}")
    # A sourced distribution's Python packages (rclpy, messages) come in through PYTHONPATH; system
    # site-packages additionally expose its apt-installed Python dependencies.
    command = [sys.executable, "-m", "venv", str(VENV_DIR)]
    if os.environ.get("ROS_DISTRO"):
        command.append("--system-site-packages")
    run(command)


def pip_install(arguments: list[str], env: dict[str, str] | None = None) -> None:
    run(
        [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", *arguments], env
    )


def install_python_dependencies(gpu: bool, numpy1: bool = False) -> None:
    requirements = python_requirements(gpu, numpy1)
    env = dict(os.environ)
    if gpu:
        # A local CPU-only torch wheel (find-links) would win over PyPI's CUDA build.
        env["PIP_FIND_LINKS"] = ""
    pip_install(["-q", *requirements], env)


def install_ros_wheels() -> str:
    """Install the Jazzy wheels, or Kilted when Jazzy cannot work. Returns the family used."""
    for family in ("jazzy", "kilted"):
        try:
            pip_install(["-q", "-r", str(ROS_REQUIREMENTS[family])])
        except SetupError as error:
            log(f"ROS 2 {family} wheels failed to install: {error}")
        else:
            if imports_work("import rclpy; rclpy.init(); rclpy.shutdown()"):
                return family
            log(f"ROS 2 {family} wheels installed but rclpy does not initialise")
        if family == "jazzy":
            # Never mix families: start the fallback from a clean virtualenv.
            log("recreating .venv for the Kilted fallback")
            shutil.rmtree(VENV_DIR)
            create_venv()
            install_python_dependencies(has_gpu())
    raise SetupError(
        "no ROS 2 runtime could be installed from PyPI (tried ros-jazzy-* and ros-* wheels). "
        "Source a ROS 2 distribution (source /opt/ros/jazzy/setup.bash) and run again."
    )


def build_vision_msgs() -> None:
    """Build the vision_msgs interface package with cmake and install it into the venv."""
    ensure_build_tools()
    build_dir = VENV_DIR / "build" / "vision_msgs"
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    env = dict(os.environ)
    prefix = str(VENV_DIR)
    for variable in ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH"):
        env[variable] = os.pathsep.join(filter(None, [prefix, env.get(variable)]))
    env["PATH"] = os.pathsep.join([str(VENV_DIR / "bin"), env.get("PATH", "")])
    run(
        [
            "cmake",
            "-S",
            str(VISION_MSGS_SOURCE),
            "-B",
            str(build_dir),
            f"-DCMAKE_INSTALL_PREFIX={prefix}",
            f"-DPython3_EXECUTABLE={venv_python()}",
            "-DBUILD_TESTING=OFF",
        ],
        env,
        quiet=True,
    )
    run(["cmake", "--build", str(build_dir), "--parallel", "2"], env, quiet=True)
    run(["cmake", "--install", str(build_dir)], env, quiet=True)


def finish_venv(which: str) -> None:
    """vision_msgs (built unless the ROS runtime has it), this package editable, import check."""
    if not imports_work("import vision_msgs.msg"):
        build_vision_msgs()
    pip_install(["-q", "--no-deps", "--no-build-isolation", "-e", str(REPO_ROOT)])
    if not imports_work(f"{CORE_IMPORTS}; {SMOKE_IMPORTS}"):
        raise SetupError(f"the {which} .venv cannot import: {CORE_IMPORTS}; {SMOKE_IMPORTS}")


def setup_offline(wheels: Path) -> None:
    """ROS 2 + rosbags from a wheel folder, the rest from the running Python; no registry."""
    if not wheels.is_dir():
        raise SetupError(f"--offline-wheels: {wheels} is not a folder of wheels")
    if not venv_python().exists():
        # Without pip: images whose base Python lacks ensurepip still work, and pip itself
        # comes from the running interpreter's packages through the .pth file below.
        run([sys.executable, "-m", "venv", "--without-pip", str(VENV_DIR)])
    # The venv sees the running interpreter's packages (its own torch build, OpenCV, ...), so
    # only what is missing comes from the wheel folder.
    purelib = subprocess.run(
        [str(venv_python()), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    host = [path for path in site.getsitepackages() if Path(path).is_dir()]
    (Path(purelib) / "_host_site_packages.pth").write_text("\n".join(host) + "\n")
    rosbags = next(r for r in python_requirements(gpu=False) if r.startswith("rosbags"))
    pip_install(
        [
            "-q",
            "--no-index",
            "--find-links",
            str(wheels),
            "--no-build-isolation",  # source packages build with the host's setuptools
            "-r",
            str(ROS_REQUIREMENTS["jazzy"]),
            rosbags,
        ]
    )
    finish_venv("offline")
    log(f"ready: offline .venv with ROS 2 jazzy from {wheels}, other packages from {host}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--offline-wheels",
        type=Path,
        help="install ROS 2 from this wheel folder (tools/offline_wheels.py), no registry",
    )
    parser.add_argument(
        "--print-requirements",
        action="store_true",
        help="print the pinned requirements for this Python (GPU builds where a GPU answers, the "
        "NumPy 1.x set where a sourced ROS 2 distribution has NumPy 1.x) and exit",
    )
    args = parser.parse_args(argv)
    if sys.version_info < MIN_PYTHON:
        print(
            f"[setup] Python {'.'.join(map(str, MIN_PYTHON))} or newer is needed, this is "
            f"{sys.version.split()[0]} ({sys.executable}). Install python3.11 (Debian 12: "
            "apt-get install python3 python3-venv) and run: python3 tools/setup_env.py",
            file=sys.stderr,
        )
        return 1
    try:
        if args.offline_wheels:
            setup_offline(args.offline_wheels)
            return 0
        gpu = has_gpu()
        distro = sourced_ros_distro()
        numpy1 = distribution_needs_numpy1(distro)
        if args.print_requirements:
            print("\n".join(python_requirements(gpu, numpy1)))
            return 0
        mode = {
            "gpu": gpu,
            "ros_distro": distro,
            "numpy1": numpy1,
            "python": sys.version.split()[0],
        }
        stamp = fingerprint(mode)
        if (
            STAMP_FILE.exists()
            and json.loads(STAMP_FILE.read_text()).get("fingerprint") == stamp
            and imports_work(f"{CORE_IMPORTS}; {SMOKE_IMPORTS}")
        ):
            log(".venv is up to date")
            return 0
        create_venv()
        install_python_dependencies(gpu, numpy1)
        ros_family = distro if distro else install_ros_wheels()
        finish_venv("finished")
        STAMP_FILE.write_text(
            json.dumps({"fingerprint": stamp, "ros": ros_family, **mode}, indent=2) + "\n"
        )
        log(f"ready: .venv with ROS 2 {ros_family}, {'CUDA' if gpu else 'CPU'} builds")
        return 0
    except SetupError as error:
        print(f"[setup] FAILED: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
