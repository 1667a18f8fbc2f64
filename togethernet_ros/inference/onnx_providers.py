"""ONNX Runtime execution-provider chains: TensorRT -> CUDA -> CPU, with their options."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from togethernet_ros.model.file_digest import sha256_of

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

ProviderChain = list[tuple[str, dict[str, object]]]
LOGGER = logging.getLogger("togethernet_ros")
ENGINE_LOCK_NAME = ".lock"


def provider_chains(
    device: str,
    precision: str,
    cache_dir: Path,
    input_size: tuple[int, int],
    max_batch_size: int,
    available: list[str],
    engine_dir: Path | None = None,
    cache_engines: bool = True,
    fixed_batch: int | None = None,
) -> list[ProviderChain]:
    """Provider lists to try in order of preference (the first that initialises wins).

    device "cpu" -> CPU only. device "cuda[:N]" -> TensorRT (fp16 when asked, engines cached in
    `engine_dir`, default `cache_dir/tensorrt`, unless `cache_engines` is False), then CUDA,
    then CPU, each only if this onnxruntime build has it. `fixed_batch`: the file's input has
    a fixed batch size (no TensorRT optimisation profile: it has no dynamic dimension).
    """
    if device == "cpu":
        return [[(CPU, {})]]
    device_id = int(device.split(":", 1)[1]) if ":" in device else 0
    height, width = input_size
    engine_dir = engine_dir or cache_dir / "tensorrt"
    cuda_options: dict[str, object] = {
        "device_id": device_id,
        "cudnn_conv_algo_search": "EXHAUSTIVE",  # fixed shapes: search once, then fastest conv
        "do_copy_in_default_stream": True,
        # "fp32" means fp32: TF32 convolutions err by ~1e-3, the size of real bugs.
        "use_tf32": precision != "fp32",
    }
    tensorrt_options: dict[str, object] = {
        "device_id": device_id,
        "trt_fp16_enable": precision in ("auto", "fp16"),
        "trt_engine_cache_enable": cache_engines,
        "trt_timing_cache_enable": cache_engines,
        "trt_max_workspace_size": 4 << 30,
    }
    if fixed_batch is None:
        # One optimisation profile covering every batch size the detector sends.
        tensorrt_options["trt_profile_min_shapes"] = f"images:1x3x{height}x{width}"
        tensorrt_options["trt_profile_opt_shapes"] = f"images:{max_batch_size}x3x{height}x{width}"
        tensorrt_options["trt_profile_max_shapes"] = f"images:{max_batch_size}x3x{height}x{width}"
    if cache_engines:
        tensorrt_options["trt_engine_cache_path"] = str(engine_dir)
        tensorrt_options["trt_timing_cache_path"] = str(engine_dir)
    chains: list[ProviderChain] = []
    if TENSORRT in available:
        chain: ProviderChain = [(TENSORRT, tensorrt_options)]
        if CUDA in available:
            chain.append((CUDA, cuda_options))
        chains.append([*chain, (CPU, {})])
    if CUDA in available:
        chains.append([(CUDA, cuda_options), (CPU, {})])
    chains.append([(CPU, {})])
    return chains


def engine_cache_dir(
    cache_dir: Path, model_path: Path | None = None, build: str | None = None
) -> Path:
    """Create and return the directory TensorRT engines are cached in.

    With `model_path`, a sub-folder named by the hash of the model file's content: ONNX
    Runtime names cached engines by the graph's structure and file name, not its weights, so a
    file re-exported from other weights under the same name would otherwise get the engine
    built for the old weights. `build` (e.g. "b4_fp16": the batch profile and precision) is
    added to that name, so that a `predict` at batch 1 and a node at batch 4 keep an engine
    each instead of rebuilding (minutes) and overwriting the other's at every start.
    """
    path = cache_dir / "tensorrt"
    if model_path is not None:
        name = sha256_of(model_path)[:16]
        path = path / (f"{name}_{build}" if build else name)
    os.makedirs(path, exist_ok=True)
    return path


@contextlib.contextmanager
def engine_cache_lock(engine_dir: Path) -> Iterator[None]:
    """Hold ``engine_dir`` for one session build, against other processes (and threads).

    ONNX Runtime writes a built engine under its final name as it goes; a session opened
    meanwhile by another process (two nodes with one model starting together) reads the half
    written file and fails. Sessions of one folder are therefore built one at a time: the
    second waits for the first one's engine and then loads it instead of building its own.
    The lock goes with its process, also when that is killed. A folder where no lock file can
    be made (read-only) is used unlocked: nothing can be written there anyway.
    """
    try:
        handle = open(engine_dir / ENGINE_LOCK_NAME, "a+b")  # noqa: SIM115 (held across yield)
    except OSError:
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            LOGGER.info(
                "waiting for another process that builds TensorRT engines in %s", engine_dir
            )
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def clear_engine_cache(engine_dir: Path) -> list[str]:
    """Remove the cached engines (and timing cache) in ``engine_dir``; returns their names."""
    removed = []
    for path in sorted(engine_dir.iterdir()):
        if path.name == ENGINE_LOCK_NAME or not path.is_file():
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path.name)
    return removed
