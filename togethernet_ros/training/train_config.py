"""Typed training configuration: YAML file + ``key=value`` overrides, unknown keys rejected."""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from togethernet_ros.model.checkpoint import check_class_names
from togethernet_ros.model.config import DEFAULT_CLASS_NAMES
from togethernet_ros.training.detection_loss import LossConfig
from togethernet_ros.training.paired_augmentation import AugmentationConfig


@dataclass(frozen=True)
class DataConfig:
    """Where the training/validation data lives (VOC-FOG layout or YOLO labels)."""

    format: str = "voc"  # voc | yolo
    root: str | None = None  # VOC root
    train_set: str = "train"
    val_set: str | None = "val"
    hazy_dir: str | None = "FOG"
    clean_dir: str | None = "JPEGImages"
    train_images: str | None = None  # YOLO layout
    train_labels: str | None = None
    train_clean: str | None = None
    val_images: str | None = None
    val_labels: str | None = None
    class_names: tuple[str, ...] = DEFAULT_CLASS_NAMES
    strict: bool = False
    verify_images: bool = False
    workers: int = 4
    keep_difficult: bool = False


@dataclass(frozen=True)
class ModelSection:
    """Network size and initialisation."""

    depth: float = 0.33
    width: float = 0.5
    input_size: int = 640
    bn_momentum: float = 0.03  # published; tiny smoke runs use more so eval-mode BN keeps up
    init: str | None = None  # upstream TogetherNet / YOLOX-s (Megvii or bubbliiiing) weights
    deform_impl: str = "fast"


@dataclass(frozen=True)
class OptimConfig:
    """Schedule, optimizer and numerics (defaults = published recipe)."""

    epochs: int = 100
    batch_size: int = 8  # global, over all processes
    lr: float = 0.01  # per 64 images; actual lr = lr · batch_size / 64
    min_lr_ratio: float = 0.01
    momentum: float = 0.937
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: float = 3  # at most; runs under 30 epochs warm up for 10 % (≥ 1) as upstream
    warmup_lr_ratio: float = 0.1
    flat_epochs: float = 15  # at most; runs under 50 epochs keep 30 % (≥ 1) at min lr as upstream
    amp: str = "none"  # none | bf16 | fp16
    ema: bool = True
    ema_decay: float = 0.9999
    grad_clip: float = 0.0  # max grad norm; 0 = off
    seed: int = 0
    deterministic: bool = False
    augment: bool = True
    sync_bn: bool = False
    stop_after_epochs: int | None = None  # end this run early (schedule still spans `epochs`)


@dataclass(frozen=True)
class EvalConfig:
    """Periodic validation."""

    interval: int = 5  # epochs; 0 = never
    conf_threshold: float = 0.001
    nms_threshold: float = 0.65
    iou_threshold: float = 0.5
    batch_size: int = 8


@dataclass(frozen=True)
class OutputConfig:
    """Where logs and checkpoints go."""

    dir: str = "runs/train"
    tensorboard: bool = True
    progress_bar: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """Everything `togethernet train` needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    train: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    device: str = "auto"
    resume: str | None = None

    def __post_init__(self) -> None:
        if self.train.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"train.amp must be none, bf16 or fp16, got {self.train.amp!r}")
        if self.data.format not in ("voc", "yolo"):
            raise ValueError(f"data.format must be voc or yolo, got {self.data.format!r}")
        _check_class_names(self.data.class_names)
        if self.model.input_size % 128 != 0:
            raise ValueError(
                f"model.input_size must be a multiple of 128, got {self.model.input_size}"
            )
        if self.train.batch_size < 1 or self.train.epochs < 1:
            raise ValueError("train.batch_size and train.epochs must be >= 1")
        # Checked here, not where used: eval.batch_size=0 used to crash only after the first
        # epoch of training, a non-positive lr or min_lr_ratio trains backwards or not at all.
        if self.eval.batch_size < 1:
            raise ValueError(f"eval.batch_size must be >= 1, got {self.eval.batch_size}")
        if self.data.workers < 0:
            raise ValueError(f"data.workers must be >= 0, got {self.data.workers}")
        if not (math.isfinite(self.train.lr) and self.train.lr > 0):
            raise ValueError(f"train.lr must be a finite number > 0, got {self.train.lr}")
        for key in ("min_lr_ratio", "warmup_lr_ratio", "ema_decay"):
            value = getattr(self.train, key)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"train.{key} must be in [0, 1], got {value}")
        self._check_numbers()

    def _check_numbers(self) -> None:
        """The rest of the numbers torch, OpenCV or the schedule would refuse mid-run."""
        if self.model.input_size <= 0:
            raise ValueError(f"model.input_size must be > 0, got {self.model.input_size}")
        # Nesterov momentum needs momentum > 0 (torch's SGD refuses it when the run starts).
        lowest_momentum = "> 0 with train.nesterov" if self.train.nesterov else ">= 0"
        if not (
            math.isfinite(self.train.momentum)
            and (self.train.momentum > 0 if self.train.nesterov else self.train.momentum >= 0)
        ):
            raise ValueError(
                f"train.momentum must be a finite number {lowest_momentum}, "
                f"got {self.train.momentum}"
            )
        for key in ("weight_decay", "grad_clip", "warmup_epochs", "flat_epochs"):
            value = getattr(self.train, key)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"train.{key} must be a finite number >= 0, got {value}")
        if self.train.stop_after_epochs is not None and self.train.stop_after_epochs < 1:
            raise ValueError(
                f"train.stop_after_epochs must be >= 1 (or null), got {self.train.stop_after_epochs}"
            )
        for key in ("conf_threshold", "nms_threshold", "iou_threshold"):
            value = getattr(self.eval, key)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"eval.{key} must be in [0, 1], got {value}")
        if self.eval.interval < 0:
            raise ValueError(f"eval.interval must be >= 0 (0 = never), got {self.eval.interval}")
        # numpy's seed sequences refuse a negative seed, but only once the first batch is drawn.
        if self.train.seed < 0:
            raise ValueError(f"train.seed must be >= 0, got {self.train.seed}")
        # 0 never updates BatchNorm's running statistics: the eval-mode model would be garbage.
        if not (math.isfinite(self.model.bn_momentum) and 0.0 < self.model.bn_momentum <= 1.0):
            raise ValueError(f"model.bn_momentum must be in (0, 1], got {self.model.bn_momentum}")
        # 1 freezes the EMA after its ramp: the saved weights would be those of the first steps.
        if self.train.ema_decay >= 1.0:
            raise ValueError(f"train.ema_decay must be below 1, got {self.train.ema_decay}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, not tuples) for YAML and weights-only checkpoints."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from nested dicts; an unknown key is an error naming it and the known ones."""
        return _build(cls, data or {}, "")


def _check_class_names(names: tuple[str, ...]) -> None:
    """Refuse class names no checkpoint could hold, before any data is read.

    An empty list used to crash in the model config with a traceback, and a repeated or blank
    name was only refused when the first checkpoint was saved: after a whole epoch of training,
    with nothing written. The rule is the checkpoint's own (``check_class_names``).
    """
    if not names:
        raise ValueError("data.class_names is empty; list the dataset's classes in label order")
    check_class_names(list(names), "data.class_names")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping")
    fields = {item.name: item for item in dataclasses.fields(cls)}
    # YAML keys need not be strings (`1: 2`); they are named as written, never concatenated raw.
    unknown = sorted(k if isinstance(k, str) else _short_repr(k) for k in data if k not in fields)
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(prefix + key for key in unknown)}; "
            f"known keys{' in ' + prefix.rstrip('.') if prefix else ''}: {', '.join(fields)}"
        )
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{prefix}{name}.")
        else:
            kwargs[name] = _typed(value, str(fields[name].type), prefix + name)
    return cls(**kwargs)


_YAML11_MISSED_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _typed(value: Any, annotation: str, key: str) -> Any:
    """`value` checked against a field's annotation ("int", "str | None", "tuple[str, ...]").

    YAML gives ints where floats are meant (`lr=1`), so ints become floats; nothing else is
    converted: `epochs=abc` is an error naming the key, not a crash deep in the trainer.
    """
    accepted = {part.strip() for part in annotation.split("|")}
    if value is None and "None" in accepted:
        return None
    if "bool" in accepted and isinstance(value, bool):
        return value
    if not isinstance(value, bool):  # bool is an int subclass, but `epochs=true` is a mistake
        if "int" in accepted and isinstance(value, int):
            return value
        if "float" in accepted and isinstance(value, int | float):
            return float(value)
    if "float" in accepted and isinstance(value, str) and _YAML11_MISSED_FLOAT.fullmatch(value):
        # PyYAML (YAML 1.1) reads 1e-3 or 5E4 without a dot as a string, not a number.
        return float(value)
    if "str" in accepted and isinstance(value, str):
        return value
    strings = isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)
    if "tuple[str, ...]" in accepted and strings:
        return tuple(value)
    raise ValueError(f"config key {key} must be {annotation}, got {_short_repr(value)}")


def _short_repr(value: Any) -> str:
    """``repr(value)`` cut short, for error messages.

    A YAML alias bomb (a few lines nesting lists of lists by reference) has a full repr of
    gigabytes, which would hang or kill the process that tries to report it.
    """
    shortener = reprlib.Repr()
    shortener.maxlevel, shortener.maxlist, shortener.maxdict = 2, 4, 4
    shortener.maxstring = shortener.maxother = 80
    text = shortener.repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML) to a nested dict."""
    for override in overrides:
        if "=" not in override:
            raise ValueError(f"override {override!r} must look like section.key=value")
        dotted, raw = override.split("=", 1)
        parts = dotted.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {override!r}: '{part}' is not a section")
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ValueError(
                f"override {override!r}: value is not valid YAML{_yaml_problem(error)}"
            ) from None
    return data


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config (None = defaults), apply overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"training config {path} is a folder; give the YAML file")
        if not path.is_file():
            raise FileNotFoundError(f"training config not found: {path}")
        data = _read_yaml(path)
    return TrainConfig.from_dict(apply_overrides(data, overrides or []))


def _read_yaml(path: Path) -> Any:
    """The parsed config file; a file that is not YAML (or not safe YAML) is one ValueError."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise ValueError(f"training config {path} is not UTF-8 text ({error.reason})") from None
    except RecursionError:
        raise ValueError(f"training config {path} is nested too deeply to be a config") from None
    except yaml.YAMLError as error:
        # safe_load also refuses tags such as !!python/object (code to run): say which line.
        raise ValueError(
            f"training config {path} is not valid YAML{_yaml_problem(error)}"
        ) from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error's place and problem as ` (line N: what)`; PyYAML's own text spans lines."""
    mark = getattr(error, "problem_mark", None)
    if mark is None:
        return ""
    return f" (line {mark.line + 1}: {getattr(error, 'problem', None) or 'parse error'})"
