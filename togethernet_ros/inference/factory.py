"""`create_detector`: one entry point that builds any backend from weights or an ONNX file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from togethernet_ros.inference.detector import DEFAULT_MAX_DETECTIONS, Detector
from togethernet_ros.model.file_digest import sha256_of

LOGGER = logging.getLogger("togethernet_ros")
BACKENDS = ("torch", "onnxruntime")
# YOLOX's and the published TogetherNet's size, for checkpoints that do not record their own.
DEFAULT_INPUT_SIZE = (640, 640)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/togethernet_ros`` (default ``~/.cache/togethernet_ros``).

    Where exported ONNX files, TensorRT engines, the sample video and the teacher package are
    kept when no cache folder is given.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "togethernet_ros"


def resolve_auto_device(device: str, backend: str = "torch") -> str:
    """'auto' -> 'cuda' when the backend sees a GPU, else 'cpu'; any other value unchanged.

    ONNX Runtime is asked itself: its CUDA build may sit beside a CPU-only torch (and a CPU
    build beside a CUDA torch).
    """
    if device != "auto":
        return device
    import torch

    if backend == "onnxruntime":
        import onnxruntime

        from togethernet_ros.inference.onnx_providers import CUDA

        # The providers list what the build has, not what can run: a GPU must also be there
        # (seen by torch, or by the driver's device node where torch is a CPU build).
        gpu = torch.cuda.is_available() or Path("/dev/nvidiactl").exists()
        return "cuda" if gpu and CUDA in onnxruntime.get_available_providers() else "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_auto_precision(precision: str, device: str) -> str:
    """'auto' -> 'fp16' on a CUDA device, else 'fp32'; any other value unchanged.

    fp16 runs on the GPU's tensor cores and finds fp32's detections (H100, docs/benchmarks.md:
    100 % found again, boxes within 1.5 px); CPUs have no fast half-precision kernels.
    """
    if precision != "auto":
        return precision
    return "fp16" if str(device).startswith("cuda") else "fp32"


def create_detector(
    weights: str | Path | None,
    *,
    backend: str = "torch",
    device: str = "cpu",
    precision: str = "fp32",
    input_size: int | tuple[int, int] | None = None,
    conf_threshold: float = 0.5,
    nms_threshold: float = 0.3,
    color_order: str = "bgr",
    allow_untrained: bool = False,
    onnx_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    max_batch_size: int = 16,
    num_threads: int | None = None,
    compile_mode: str | None = None,
    max_detections: int | None = DEFAULT_MAX_DETECTIONS,
) -> Detector:
    """Build a Detector.

    backend "torch": loads `weights` (refuses to run without them unless `allow_untrained`).
    backend "onnxruntime": uses `onnx_path` when that file exists; otherwise exports `weights`
    (both variants) to `onnx_path`, or into `cache_dir` (default ~/.cache/togethernet_ros)
    keyed by the weights' hash and the input size, and reuses that export next time.
    `input_size` None (the default, as `togethernet predict` and `eval` without
    `--input-size`) means the size the checkpoint was trained at, where our trainer or
    distiller recorded it (640x640 otherwise), and "as exported" for an existing ONNX file.
    `num_threads` sets ONNX Runtime's intra-op threads (torch uses its global setting).
    `compile_mode` (torch only) runs the model through `torch.compile` (see `TorchDetector`).
    `device` and `precision` may be "auto" (see `resolve_auto_device`, `resolve_auto_precision`).
    `max_detections` keeps at most that many boxes per image, the highest-scoring across classes
    after NMS (default 300; None: no cap, for mAP over every detection); 0 or less is refused.
    """
    # Imported here so that importing the inference package does not pull in the model.
    from togethernet_ros.model import check_input_size, load_model_weights, recorded_input_size
    from togethernet_ros.vision.postprocess import check_max_detections

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    # Before minutes of loading or exporting, not after.
    max_detections = check_max_detections(max_detections)
    device = resolve_auto_device(device, backend)
    if backend == "torch":
        # ONNX Runtime resolves "auto" itself: fp16 only where TensorRT runs (see its detector).
        precision = resolve_auto_precision(precision, device)
    if device != "cpu" and not str(device).startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    size = None if input_size is None else check_input_size(input_size)
    if compile_mode is not None and backend != "torch":
        raise ValueError(f"compile_mode is a torch backend option, not one of {backend!r}")
    if backend == "torch":
        from togethernet_ros.inference.torch_detector import TorchDetector

        loaded = load_model_weights(weights, allow_untrained=allow_untrained, num_classes=None)
        detector = TorchDetector(
            loaded.model,
            loaded.class_names,
            device=device,
            precision=precision,
            input_size=size or recorded_input_size(loaded.metadata) or DEFAULT_INPUT_SIZE,
            conf_threshold=conf_threshold,
            nms_threshold=nms_threshold,
            color_order=color_order,
            max_batch_size=max_batch_size,
            compile_mode=compile_mode,
            max_detections=max_detections,
        )
        detector.untrained = bool(loaded.metadata.get("untrained"))
        return detector

    from togethernet_ros.inference.onnx_detector import OnnxRuntimeDetector

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    model_path = _existing_or_exported_onnx(weights, onnx_path, size, cache, allow_untrained)
    return OnnxRuntimeDetector(
        model_path,
        device=device,
        precision=precision,
        input_size=size if (onnx_path is None or input_size is not None) else None,
        conf_threshold=conf_threshold,
        nms_threshold=nms_threshold,
        color_order=color_order,
        cache_dir=cache,
        allow_untrained=allow_untrained,
        max_batch_size=max_batch_size,
        num_threads=num_threads,
        max_detections=max_detections,
    )


def _existing_or_exported_onnx(
    weights: str | Path | None,
    onnx_path: str | Path | None,
    input_size: tuple[int, int] | None,
    cache_dir: Path,
    allow_untrained: bool,
) -> Path:
    from togethernet_ros.inference.export import export_variants, onnx_variant_paths
    from togethernet_ros.model import load_model_weights, recorded_input_size
    from togethernet_ros.model.checkpoint import CheckpointError, CheckpointNotFoundError
    from togethernet_ros.model.weights_path import resolve_weights_path

    if weights:
        # As the torch backend does: a relative path (the YAML's default) is looked up in the
        # working directory, then in the package.
        weights = resolve_weights_path(weights)
        if not weights.exists():
            raise CheckpointNotFoundError(f"checkpoint file not found: {weights}")
        if not weights.is_file():
            raise CheckpointError(f"checkpoint path is not a file: {weights}")
    if onnx_path is not None and Path(onnx_path).is_dir():
        # Not "not found" (it is there), and not an export into it (that fails on the folder).
        raise ValueError(f"ONNX path {onnx_path} is a folder; give the .onnx file in it")
    if onnx_path is not None and any(path.is_file() for path in onnx_variant_paths(onnx_path)):
        if weights:
            _check_exported_from(Path(onnx_path), weights)
        return Path(onnx_path)
    if onnx_path is not None and not weights and not allow_untrained:
        raise FileNotFoundError(
            f"ONNX model not found: {onnx_path}; pass weights to export it there, or create it "
            "with `togethernet export`"
        )
    loaded = None
    if input_size is None:
        # The export key needs the size the checkpoint records; a cache miss reuses this load.
        loaded = load_model_weights(weights, allow_untrained=allow_untrained, num_classes=None)
        input_size = recorded_input_size(loaded.metadata) or DEFAULT_INPUT_SIZE
    digest = sha256_of(weights) if weights else ""
    if onnx_path is not None:
        target = Path(onnx_path)
    else:
        key = f"{Path(weights).stem}-{digest[:16]}" if weights else "untrained"
        target = cache_dir / "onnx" / f"{key}_{input_size[0]}x{input_size[1]}.onnx"
        problem = _cached_export_problem(target, input_size, digest)
        if problem is None:
            LOGGER.info("using cached ONNX export %s", target)
            return target
        if problem:  # an interrupted or older run's files: ours to replace
            LOGGER.warning("replacing the cached ONNX export %s: %s", target, problem)
    if loaded is None:
        loaded = load_model_weights(weights, allow_untrained=allow_untrained, num_classes=None)
    untrained = bool(loaded.metadata.get("untrained"))
    LOGGER.info("exporting %s to ONNX at %s (one-off)", weights or "untrained model", target)
    try:
        export_variants(
            loaded.model,
            target,
            input_size,
            class_names=loaded.class_names,
            metadata={
                "untrained": "1" if untrained else "0",
                "weights": Path(weights).name if weights else "",
                # Lets a later run tell whether this file still matches the weights it names.
                "weights_sha256": digest,
            },
        )
    except OSError as error:
        where = "--onnx (ROS: onnx_path)" if onnx_path else "--cache-dir (ROS: engine_cache_dir)"
        # Keep the subclass (the CLI reports PermissionError & co. in one line); a bare
        # OSError (disk full) becomes a RuntimeError, which callers also report as one line.
        kind = RuntimeError if type(error) is OSError else type(error)
        raise kind(
            f"cannot write the ONNX export {target}: {error.strerror or error}; point {where} "
            "to a writable folder"
        ) from error
    return target


def _cached_export_problem(target: Path, input_size: tuple[int, int], digest: str) -> str | None:
    """Why the cached pair at ``target`` cannot be used ("" when absent), or None when it can."""
    from togethernet_ros.inference.export import onnx_variant_paths, read_onnx_info

    for path in onnx_variant_paths(target):
        if not path.is_file():
            return ""
        try:
            info = read_onnx_info(path)
        except ValueError as error:  # e.g. truncated by an interrupted run of an older version
            return str(error)
        if info.input_size != input_size:
            return f"{path.name} was exported for {info.input_size}, not {input_size}"
        if info.metadata.get("weights_sha256", "") != digest:
            return f"{path.name} does not record the content hash of the weights"
    return None


def _check_exported_from(onnx_path: Path, weights: Path) -> None:
    """Refuse an existing ONNX file that was exported from other weights than ``weights``.

    Running it would silently replace the given weights (another model, other classes) while
    everything reports those weights. Files that record no weights hash (``togethernet
    export``) are checked by class names.
    """
    from togethernet_ros.inference.export import onnx_variant_paths, read_onnx_info
    from togethernet_ros.model import load_model_weights

    infos = [read_onnx_info(path) for path in onnx_variant_paths(onnx_path) if path.is_file()]
    fix = (
        "pass the weights it was exported from, give weights none (ROS: weights:='') to run the "
        "ONNX file alone, or delete it to export these weights there"
    )
    digest = sha256_of(weights)
    for info in infos:
        recorded = info.metadata.get("weights_sha256")
        if recorded and recorded != digest:
            source = info.metadata.get("weights") or "unknown weights"
            raise ValueError(
                f"{info.path} was exported from other weights ({source}, sha256 "
                f"{recorded[:16]}) than {weights} (sha256 {digest[:16]}); {fix}"
            )
    if all(info.metadata.get("weights_sha256") for info in infos):
        return
    class_names = load_model_weights(weights, num_classes=None).class_names
    for info in infos:
        if info.class_names != class_names:
            raise ValueError(
                f"{info.path} has classes {list(info.class_names)} but {weights} has "
                f"{list(class_names)}: it was exported from other weights; {fix}"
            )
    LOGGER.warning(
        "%s records no weights hash: cannot check that it was exported from %s (its classes match)",
        onnx_path,
        weights,
    )
