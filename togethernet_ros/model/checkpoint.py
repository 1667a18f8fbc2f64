"""Saving and strictly loading TogetherNet checkpoints (ours and upstream ``train.py`` ones).

Everything is read with ``torch.load(..., weights_only=True)``: a checkpoint can hold tensors and
plain Python containers/numbers/strings, never code.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from togethernet_ros.evaluation.atomic_write import write_atomically
from togethernet_ros.model.config import DEFAULT_CLASS_NAMES, TogetherNetConfig
from togethernet_ros.model.togethernet import TogetherNet, build_model

CHECKPOINT_FORMAT = "togethernet_ros.checkpoint/1"
_FORMAT_PREFIX = "togethernet_ros.checkpoint/"
_RESERVED_KEYS = ("format", "config", "class_names", "state_dict", "metadata")
# Upstream train.py pickles model.state_dict() directly; other trainers wrap it under one of these.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "ema")
_CLASS_LOGITS_KEY = "head.cls_preds.0.weight"
# torch.save stores zip records uncompressed, so what a checkpoint's records expand to is about
# its size on disk; more than this many times that is a decompression bomb, not weights.
_MAX_EXPANSION = 4


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist."""


@dataclass
class LoadedCheckpoint:
    """A model restored from a checkpoint, with what the checkpoint said about itself.

    model: eval-mode :class:`TogetherNet` with every tensor loaded (strict).
    class_names: one name per class, in class-index order.
    config: architecture configuration the model was built with.
    metadata: training metadata from our format; ``{"source": "upstream"}`` for plain
        state_dicts; ``{"untrained": True, ...}`` for seeded untrained models.
    raw: the object ``torch.load`` returned (None for untrained models).
    """

    model: TogetherNet
    class_names: tuple[str, ...]
    config: TogetherNetConfig
    metadata: dict[str, Any] = field(default_factory=dict)
    raw: Any = None


def save_checkpoint(
    path: str | Path,
    model: TogetherNet,
    class_names: Sequence[str],
    metadata: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write our self-describing checkpoint atomically (temp file + rename).

    Layout: ``{"format", "config", "class_names", "state_dict", "metadata", **extra}``; every
    value must be weights_only-safe (tensors, dicts, lists, str, numbers, bool, None).
    """
    class_names = tuple(str(name) for name in class_names)
    check_class_names(class_names, "class_names")
    if len(class_names) != model.config.num_classes:
        raise CheckpointError(
            f"class-count mismatch: {len(class_names)} class names for a model with "
            f"{model.config.num_classes} classes"
        )
    extra = dict(extra or {})
    clashes = sorted(set(extra) & set(_RESERVED_KEYS))
    if clashes:
        raise CheckpointError(f"extra keys clash with reserved checkpoint keys: {clashes}")
    # Anything else would save fine but could never be read back with weights_only=True.
    _check_weights_only_safe(dict(metadata or {}), "metadata")
    _check_weights_only_safe(extra, "extra")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "class_names": list(class_names),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": dict(metadata or {}),
        **extra,
    }
    return write_atomically(path, lambda handle: torch.save(payload, handle))


def check_class_names(names: Any, where: str) -> tuple[str, ...]:
    """``names`` as a tuple if it is a list/tuple of distinct non-empty strings, else raise.

    Anything else would be coerced into nonsense (a string into its letters, numbers into
    "0", "1", tensors into "tensor(0)") or make class filters by name ambiguous.
    """
    if not isinstance(names, list | tuple):
        raise CheckpointError(f"{where} is a {type(names).__name__}, not a list of class names")
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise CheckpointError(
                f"{where}[{index}] is {name!r}; class names must be non-empty strings"
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise CheckpointError(f"{where} repeats class name(s) {duplicates}")
    return tuple(names)


def read_checkpoint_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with errors that say what is wrong with the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint file not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file is empty: {path}")
    _check_zip_expansion(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(exc)
        if "GLOBAL" in detail:
            # weights_only refused to import a callable/class: the file wanted to run code.
            raise CheckpointError(
                f"refusing to load {path}: it references Python objects that are not tensors or "
                f"plain containers ({detail}); it was read with weights_only=True, so nothing was "
                f"executed. Re-save the weights as a plain state_dict."
            ) from exc
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (corrupt, truncated or another file "
            f"type): {detail}"
        ) from exc
    except Exception as exc:  # any parse failure of arbitrary bytes means "not a checkpoint"
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (corrupt, truncated or another file "
            f"type): {_first_line(exc)}"
        ) from exc


def _check_zip_expansion(path: Path) -> None:
    """Refuse a zip checkpoint whose records expand far beyond the file (a decompression bomb).

    torch.load reads deflated records too, and allocates every record's declared size before
    any tensor is checked: a few MB of zeros could claim tens of GB and end the process.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip (the legacy format) or a broken one: torch.load says what is wrong
    on_disk = path.stat().st_size
    if declared > _MAX_EXPANSION * on_disk:
        raise CheckpointError(
            f"refusing to load {path}: its compressed records expand to {_size_text(declared)} "
            f"from a {_size_text(on_disk)} file (a decompression bomb?); torch.save writes "
            f"checkpoints uncompressed"
        )


def _size_text(size: int) -> str:
    if size < 1 << 20:
        return f"{size} bytes"
    if size < 1 << 30:
        return f"{size / (1 << 20):.1f} MiB"
    return f"{size / (1 << 30):.1f} GiB"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Load our format or an upstream state_dict (plain, ``module.``-prefixed or wrapped).

    Loading is strict: a missing, unexpected or mis-shaped tensor raises :class:`CheckpointError`
    naming the key (and both shapes). Only ``num_batches_tracked`` counters may be absent.
    """
    raw = read_checkpoint_file(path, map_location)
    if isinstance(raw, Mapping) and "format" in raw:
        config, class_names, state_dict, metadata = _parse_own_format(raw, path)
    else:
        state_dict = _find_state_dict(raw, path)
        state_dict = _strip_prefix(state_dict, "module.")
        num_classes = _infer_num_classes(state_dict, path)
        config = TogetherNetConfig(num_classes=num_classes)
        class_names = _default_class_names(num_classes)
        metadata = {"source": "upstream", "class_names_inferred": True}
    # Build on the meta device and adopt the loaded tensors: no wasted random init or copy.
    with torch.device("meta"):
        model = build_model(config=config)
    load_state_dict_strict(model, state_dict, source=str(path), assign=True)
    model.to(map_location).eval()
    return LoadedCheckpoint(model, class_names, config, metadata, raw)


def load_state_dict_strict(
    model: torch.nn.Module,
    state_dict: Mapping[str, Any],
    source: str = "checkpoint",
    assign: bool = False,
) -> None:
    """Load ``state_dict`` into ``model`` after checking every key and shape; no partial loads.

    ``assign=True`` adopts the given tensors (cast to the model's dtypes) instead of copying,
    which is what a model built on the meta device needs.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {_preview(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {_preview(unexpected)}")
        raise CheckpointError(f"{source} does not match the TogetherNet layout: {'; '.join(parts)}")
    for key, target in expected.items():
        if key not in state_dict:
            continue
        value = state_dict[key]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{source}: entry {key!r} is {type(value).__name__}, not a tensor"
            )
        if tuple(value.shape) != tuple(target.shape):
            kind = "class-count mismatch: " if key.startswith("head.cls_preds.") else ""
            raise CheckpointError(
                f"{source}: {kind}shape mismatch for {key!r}: checkpoint has "
                f"{tuple(value.shape)}, model expects {tuple(target.shape)}"
            )
        if value.is_floating_point() != target.is_floating_point():
            raise CheckpointError(
                f"{source}: dtype mismatch for {key!r}: checkpoint has {value.dtype}, "
                f"model expects {target.dtype}"
            )
    full = {}
    for key, target in expected.items():
        if key in state_dict:
            full[key] = state_dict[key].to(dtype=target.dtype)
        else:  # an absent num_batches_tracked counter starts at zero
            full[key] = torch.zeros((), dtype=target.dtype)
    model.load_state_dict(full, strict=True, assign=assign)


_PLAIN_SCALARS = (str, int, float, bool, type(None), torch.Tensor)


def _check_weights_only_safe(value: Any, where: str) -> None:
    if isinstance(value, _PLAIN_SCALARS):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int):
                raise CheckpointError(f"{where}: key {key!r} is not a str or int")
            _check_weights_only_safe(item, f"{where}[{key!r}]")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_weights_only_safe(item, f"{where}[{index}]")
        return
    raise CheckpointError(
        f"{where} is a {type(value).__name__}; checkpoints may only hold tensors, dicts, lists, "
        f"tuples, str, int, float, bool and None (so they load with weights_only=True)"
    )


def _parse_own_format(
    raw: Mapping[str, Any], path: str | Path
) -> tuple[TogetherNetConfig, tuple[str, ...], Mapping[str, Any], dict]:
    fmt = raw.get("format")
    if fmt != CHECKPOINT_FORMAT:
        hint = (
            " (written by a newer togethernet_ros?)" if str(fmt).startswith(_FORMAT_PREFIX) else ""
        )
        raise CheckpointError(f"{path}: unsupported checkpoint format {fmt!r}{hint}")
    missing = [k for k in _RESERVED_KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks required entries {missing}")
    try:
        config = TogetherNetConfig.from_dict(dict(raw["config"]))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model config in checkpoint: {exc}") from exc
    class_names = check_class_names(raw["class_names"], f"{path}: 'class_names'")
    if len(class_names) != config.num_classes:
        raise CheckpointError(
            f"{path}: class-count mismatch: {len(class_names)} class names but the config says "
            f"{config.num_classes} classes"
        )
    state_dict = raw["state_dict"]
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{path}: 'state_dict' entry is {type(state_dict).__name__}")
    head_classes = _infer_num_classes(state_dict, path)
    if head_classes != config.num_classes:
        raise CheckpointError(
            f"{path}: class-count mismatch: the head weights predict {head_classes} classes but "
            f"the config says {config.num_classes}"
        )
    metadata = raw.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise CheckpointError(f"{path}: 'metadata' entry is {type(metadata).__name__}, not a dict")
    return config, class_names, state_dict, dict(metadata or {})


def _find_state_dict(raw: Any, path: str | Path) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(raw).__name__}, not a state_dict or a TogetherNet checkpoint"
        )
    if _looks_like_state_dict(raw):
        return raw
    for key in _WRAPPER_KEYS:
        inner = raw.get(key)
        if isinstance(inner, Mapping) and _looks_like_state_dict(inner):
            return inner
    raise CheckpointError(
        f"{path} is a dict without model weights (keys: {_preview(list(map(str, raw)))}); expected "
        f"a TogetherNet state_dict, optionally under one of {list(_WRAPPER_KEYS)}"
    )


def _looks_like_state_dict(candidate: Mapping[str, Any]) -> bool:
    return bool(candidate) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in candidate.items()
    )


def _strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> Mapping[str, Any]:
    # DataParallel/DDP checkpoints prefix every key; only strip when all keys carry it.
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict


def _infer_num_classes(state_dict: Mapping[str, Any], path: str | Path) -> int:
    weight = state_dict.get(_CLASS_LOGITS_KEY)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise CheckpointError(
            f"{path} is not a TogetherNet checkpoint: no {_CLASS_LOGITS_KEY!r} tensor "
            f"(keys start with {_preview(list(state_dict))})"
        )
    return int(weight.shape[0])


def _default_class_names(num_classes: int) -> tuple[str, ...]:
    if num_classes == len(DEFAULT_CLASS_NAMES):
        return DEFAULT_CLASS_NAMES
    return tuple(f"class_{i}" for i in range(num_classes))


def _preview(keys: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(repr(k) for k in list(keys)[:limit])
    return shown + (", ..." if len(keys) > limit else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # The type says what a bare detail (e.g. a KeyError's number) is about.
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _unpickler_detail(exc: BaseException) -> str:
    """The informative part of torch's long weights_only error message."""
    text = str(exc)
    blocked = re.search(r"GLOBAL (\S+)", text)
    if blocked:
        return f"blocked GLOBAL {blocked.group(1)}"
    unsupported = re.search(r"Unsupported [^\n]+", text)
    return unsupported.group(0) if unsupported else _first_line(exc)
