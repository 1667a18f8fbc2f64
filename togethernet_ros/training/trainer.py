"""The TogetherNet trainer: published objective and schedule, AMP, EMA, DDP, exact resume.

Public entry point: :func:`train` takes a config and any datasets yielding
``(hazy, clean, boxes, labels[, difficult, image_id])`` (RGB uint8 images, xyxy pixel boxes),
so other work (e.g. distillation) can reuse it with its own data.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from togethernet_ros.model import TogetherNet, TogetherNetConfig, build_model
from togethernet_ros.model.checkpoint import read_checkpoint_file, save_checkpoint
from togethernet_ros.training.detection_loss import together_loss
from togethernet_ros.training.distributed_context import (
    DeviceSetupError,
    DistributedContext,
    init_distributed,
)
from togethernet_ros.training.lr_schedule import published_schedule
from togethernet_ros.training.model_ema import ModelEMA
from togethernet_ros.training.optimizer_groups import build_sgd
from togethernet_ros.training.pretrained_init import load_shared_weights
from togethernet_ros.training.run_directory import RunDirectoryError, claim_run_directory
from togethernet_ros.training.train_config import TrainConfig
from togethernet_ros.training.training_batches import (
    AugmentedPairs,
    EpochSpanSampler,
    collate_pairs,
)
from togethernet_ros.training.training_log import TrainingLog, logged_rows
from togethernet_ros.training.validation import (
    SCORING_VERSION,
    predict_dataset,
    score_predictions,
)
from togethernet_ros.vision.preprocess import IMAGENET_MEAN, IMAGENET_STD

LOGGER = logging.getLogger("togethernet_ros")
TRAINING_STATE_KEY = "training_state"
# fp16 steps in a row whose gradients overflowed (the GradScaler skipped them) before the run
# counts as diverged; the scale's first calibration from 2**16 takes a few.
MAX_SKIPPED_FP16_STEPS = 20
# Fewer images per process than this make BatchNorm's batch statistics noticeably noisy.
MIN_IMAGES_PER_BATCH_NORM = 4


class TrainSetupError(ValueError):
    """The run cannot start as configured (data too small, resume file that does not fit, ...)."""


@dataclass
class TrainResult:
    """What a run produced."""

    model: TogetherNet  # EMA weights when EMA is on, else the raw model (unwrapped, eval mode)
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    best_map: float | None
    epochs_run: int
    history: list[dict] = field(default_factory=list)  # one dict per epoch (CSV row)
    step_losses: list[float] = field(default_factory=list)  # total loss of every step (rank 0)


class ImageNormaliser(nn.Module):
    """uint8 N×3×H×W RGB → float ImageNet-normalised, on the training device."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("inv_std", 1.0 / (torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalise a uint8 RGB batch with the ImageNet mean and standard deviation."""
        return (images.float() - self.mean) * self.inv_std


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    # Dropout etc. draw from the global RNG; reseeding per epoch makes an epoch reproducible
    # from its number alone, which is what makes resume exact.
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def _amp_dtype(name: str) -> torch.dtype | None:
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def _build_sampler(
    dataset: Dataset, config: TrainConfig, context: DistributedContext, per_rank_batch: int
) -> tuple[AugmentedPairs, DistributedSampler]:
    size = (config.model.input_size, config.model.input_size)
    pairs = AugmentedPairs(
        dataset,
        size,
        seed=config.train.seed,
        augment=config.train.augment,
        augmentation=config.augmentation,
        keep_difficult=config.data.keep_difficult,
    )
    # DistributedSampler also for one process: its shuffle is a pure function of (seed, epoch).
    base = DistributedSampler(
        pairs,
        num_replicas=context.world_size,
        rank=context.rank,
        shuffle=True,
        seed=config.train.seed,
        drop_last=True,
    )
    if context.distributed:
        # First: a rank that read nothing must not raise alone while the others gather.
        _check_same_samples_on_every_rank(dataset, context)
    if len(dataset) == 0:
        raise TrainSetupError("the training set is empty (no usable samples)")
    if len(base) < per_rank_batch:
        raise TrainSetupError(
            f"training set has {len(dataset)} samples: fewer than one batch of {per_rank_batch} "
            f"per process (world size {context.world_size}); lower train.batch_size"
        )
    return pairs, base


def _run_batches(
    pairs: AugmentedPairs,
    sampler: EpochSpanSampler,
    config: TrainConfig,
    context: DistributedContext,
) -> DataLoader:
    """One loader over every remaining epoch (see EpochSpanSampler)."""
    workers = config.data.workers
    return DataLoader(
        pairs,
        batch_size=sampler.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_pairs,
        pin_memory=context.device.type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
    )


def _training_state(
    model: TogetherNet,
    optimizer: torch.optim.Optimizer,
    ema: ModelEMA | None,
    scaler: torch.amp.GradScaler,
    epoch: int,
    step: int,
    best_map: float | None,
    config: TrainConfig,
    history: list[dict],
) -> dict:
    return {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "epoch": epoch,  # epochs completed
        "step": step,
        "best_map": best_map,
        "map_scoring": SCORING_VERSION,
        "config": config.to_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # The log.csv rows of every epoch so far: a resumed run rewrites the log from them.
        "history": history,
    }


def _check_resumable(
    path: str, saved: dict, class_names: Sequence[str], model_section: dict
) -> None:
    """Refuse a resume whose checkpoint was trained with other classes or another network size."""
    saved_classes = tuple((saved.get("data") or {}).get("class_names") or ())
    if saved_classes and saved_classes != tuple(class_names):
        raise TrainSetupError(
            f"{path} was trained with {len(saved_classes)} classes {list(saved_classes)}, this run "
            f"has {len(class_names)}: {list(class_names)}; resume needs the same classes "
            "(to start from its weights with other classes, use model.init instead)"
        )
    saved_model = saved.get("model") or {}
    for key in ("depth", "width"):
        if key in saved_model and saved_model[key] != model_section[key]:
            raise TrainSetupError(
                f"{path} was trained with model.{key}={saved_model[key]}, this run has "
                f"model.{key}={model_section[key]}; resume needs the same network"
            )


def _restore(
    path: str,
    model: TogetherNet,
    optimizer: torch.optim.Optimizer,
    ema: ModelEMA | None,
    scaler: torch.amp.GradScaler,
    class_names: Sequence[str],
    model_section: dict,
) -> dict:
    raw = read_checkpoint_file(path)
    if not isinstance(raw, dict) or TRAINING_STATE_KEY not in raw:
        raise TrainSetupError(
            f"{path}: not a resumable training checkpoint (no {TRAINING_STATE_KEY}): it holds "
            "weights only (an upstream TogetherNet file, exported or distilled weights); to "
            f"start a new run from them set model.init={path} instead of resume"
        )
    state = raw[TRAINING_STATE_KEY]
    _check_resumable(path, state.get("config") or {}, class_names, model_section)
    # The saved param groups carry the first run's momentum, weight decay and Nesterov flag;
    # this run's config sets them (as it sets the lr, the loss and everything else).
    configured = [
        {key: value for key, value in group.items() if key != "params"}
        for group in optimizer.param_groups
    ]
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group, settings in zip(optimizer.param_groups, configured, strict=True):
            group.update(settings)
    except (RuntimeError, ValueError, KeyError) as error:
        # torch lists every mismatching tensor under a heading; the first one says enough.
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(error).__name__)
        more = f"; and {len(lines) - 2} more" if len(lines) > 2 else ""
        raise TrainSetupError(
            f"{path}: its training state does not fit this model ({detail}{more})"
        ) from error
    if ema is not None and state["ema"] is not None:
        ema.load_state_dict(state["ema"])
    if scaler.is_enabled() and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    restore_cuda_rng(state["cuda_rng"])
    return state


def restore_cuda_rng(states: list[torch.Tensor]) -> None:
    """Give each visible GPU its saved generator state, as many as both machines have.

    A checkpoint of a run on more GPUs holds more states than this machine has GPUs, and
    `set_rng_state_all` would index past them; each epoch reseeds anyway (`_epoch_seed`).
    """
    if not torch.cuda.is_available() or not states:
        return
    for index, generator_state in enumerate(states[: torch.cuda.device_count()]):
        torch.cuda.set_rng_state(generator_state, index)


def train(
    config: TrainConfig,
    dataset_train: Dataset,
    dataset_val: Dataset | None = None,
    model: TogetherNet | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train TogetherNet; see module docstring. Runs under torchrun for multi-GPU/multi-node.

    ``model`` (optional) is trained in place instead of building one from ``config.model``.
    The main process holds ``output.dir`` for the run (see run_directory.py): a directory in
    use by another run, or holding an earlier run that this one does not resume, is refused.
    """
    try:
        context = init_distributed(config.device)
    except DeviceSetupError as error:
        raise TrainSetupError(str(error)) from error
    lock = None
    if context.is_main:
        try:
            lock = claim_run_directory(config.output.dir, config.resume)
        except RunDirectoryError as error:
            raise TrainSetupError(str(error)) from error
    try:
        return _train(config, dataset_train, dataset_val, model, log, context)
    finally:
        if lock is not None:
            lock.release()


def _train(
    config: TrainConfig,
    dataset_train: Dataset,
    dataset_val: Dataset | None,
    model: TogetherNet | None,
    log: Callable[[str], None],
    context: DistributedContext,
) -> TrainResult:
    optim = config.train
    if optim.batch_size % context.world_size:
        raise TrainSetupError(
            f"train.batch_size {optim.batch_size} is not divisible by {context.world_size} processes"
        )
    per_rank_batch = optim.batch_size // context.world_size
    if context.distributed and per_rank_batch < MIN_IMAGES_PER_BATCH_NORM and not optim.sync_bn:
        # train.batch_size is the global batch: 8 over 4 GPUs normalises over 2 images each,
        # noisier statistics than one GPU's 8 (YOLOX runs 8 per GPU without SyncBN).
        say_once = log if context.is_main else (lambda _message: None)
        say_once(
            f"warning: {per_rank_batch} images per process for BatchNorm "
            f"(train.batch_size {optim.batch_size} over {context.world_size} processes): raise "
            f"train.batch_size to {MIN_IMAGES_PER_BATCH_NORM * context.world_size} or more, or "
            "set train.sync_bn=true on CUDA GPUs"
        )
    # Same seed on every rank: identical initial weights (DDP broadcasts them anyway, but the
    # EMA copy is taken before that). Per-rank randomness comes from _epoch_seed.
    _seed_everything(optim.seed)
    if optim.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif context.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    say = log if context.is_main else (lambda _message: None)

    class_names = tuple(config.data.class_names)
    if model is None:
        model_config = TogetherNetConfig(
            num_classes=len(class_names),
            depth=config.model.depth,
            width=config.model.width,
            bn_momentum=config.model.bn_momentum,
        )
        model = build_model(config=model_config, deform_impl=config.model.deform_impl)
    if model.config.num_classes != len(class_names):
        raise TrainSetupError(
            f"model has {model.config.num_classes} classes, data {len(class_names)}"
        )
    if config.model.init and not config.resume:
        say(load_shared_weights(model, config.model.init).summary())
    model.to(context.device).train()
    if optim.sync_bn and context.distributed:
        if context.device.type != "cuda":
            # DDP would refuse later with "SyncBatchNorm layers only work with GPU modules".
            raise TrainSetupError(
                f"train.sync_bn needs CUDA GPUs, this run is on {context.device.type}: "
                "set train.sync_bn=false"
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    normalise = ImageNormaliser().to(context.device)

    pairs, base_sampler = _build_sampler(dataset_train, config, context, per_rank_batch)
    steps_per_epoch = len(base_sampler) // per_rank_batch
    base_lr = optim.lr * optim.batch_size / 64
    schedule = published_schedule(
        base_lr,
        optim.epochs,
        steps_per_epoch,
        optim.warmup_epochs,
        optim.flat_epochs,
        optim.min_lr_ratio,
        optim.warmup_lr_ratio,
    )
    optimizer = build_sgd(model, base_lr, optim.momentum, optim.weight_decay, optim.nesterov)
    ema = ModelEMA(model, optim.ema_decay) if optim.ema else None
    amp_dtype = _amp_dtype(optim.amp)
    scaler = torch.amp.GradScaler(context.device.type, enabled=optim.amp == "fp16")

    start_epoch, step, best_map = 0, 0, None
    history: list[dict] | None = None  # log rows of the epochs before this run (resumed)
    out_dir = Path(config.output.dir)
    if config.resume:
        # Compared config to config: a model passed in (distillation) is described by its config.
        model_section = {"depth": config.model.depth, "width": config.model.width}
        state = _restore(config.resume, model, optimizer, ema, scaler, class_names, model_section)
        start_epoch, step, best_map = state["epoch"], state["step"], state["best_map"]
        if best_map is not None and state.get("map_scoring", 1) != SCORING_VERSION:
            say(
                f"the best validation mAP so far ({best_map:.4f}) was scored by older rules "
                "(now as `togethernet eval` scores); the next validation sets a new best.pt"
            )
            best_map = None
        if start_epoch >= optim.epochs:
            # Nothing would run, and the run would end "successfully" without a word.
            raise TrainSetupError(
                f"{config.resume} finished epoch {start_epoch} and train.epochs is "
                f"{optim.epochs}: nothing left to train (raise train.epochs to go on)"
            )
        say(f"resumed from {config.resume} at epoch {start_epoch} (step {step})")
        step = _resumed_step(step, start_epoch, steps_per_epoch, config.resume, say)
        saved_epochs = ((state.get("config") or {}).get("train") or {}).get("epochs")
        if isinstance(saved_epochs, int) and 0 < saved_epochs != optim.epochs:
            # The cosine is stretched over the new length: a finished run's last, low LR
            # jumps back up (e.g. 100 -> 150 epochs: 0.01 -> 0.17 of the base LR).
            before = published_schedule(
                base_lr,
                saved_epochs,
                steps_per_epoch,
                optim.warmup_epochs,
                optim.flat_epochs,
                optim.min_lr_ratio,
                optim.warmup_lr_ratio,
            )
            say(
                f"train.epochs changed from {saved_epochs} to {optim.epochs}: the learning "
                f"rate goes on at {schedule(step):.3g} (the {saved_epochs}-epoch schedule "
                f"was at {before(max(step - 1, 0)):.3g}), along the schedule of the new length"
            )
        history = state.get("history")
        if history is None:  # written before checkpoints kept their log rows
            history = logged_rows(out_dir, start_epoch) if context.is_main else []
            if context.is_main and len(history) < start_epoch:
                say(
                    f"warning: {out_dir / 'log.csv'} has rows for {len(history)} of the "
                    f"{start_epoch} epochs of {config.resume}; the others stay missing"
                )
        history = [dict(row) for row in history]
    network = model
    if context.distributed:
        device_ids = [context.device.index] if context.device.type == "cuda" else None
        network = DistributedDataParallel(model, device_ids=device_ids)

    training_log = (
        TrainingLog(out_dir, config.output.tensorboard, history, start_epoch + 1)
        if context.is_main
        else None
    )
    history = history or []
    result = TrainResult(model, None, None, best_map, 0)
    last_epoch = optim.epochs
    if optim.stop_after_epochs is not None:
        last_epoch = min(last_epoch, start_epoch + optim.stop_after_epochs)
    say(
        f"training {sum(p.numel() for p in model.parameters()):,} parameters on {context.device} "
        f"× {context.world_size}: {len(dataset_train)} samples, batch {optim.batch_size}, "
        f"{steps_per_epoch} steps/epoch, lr {base_lr:.5g}, amp {optim.amp}"
    )
    saved_last: Path | None = None  # last.pt once this run finished an epoch (every rank)
    sampler = EpochSpanSampler(base_sampler, per_rank_batch, start_epoch, last_epoch)
    batches = iter(_run_batches(pairs, sampler, config, context))
    try:
        for epoch in range(start_epoch, last_epoch):
            torch.manual_seed(_epoch_seed(optim.seed, epoch, context.rank))
            sums: dict[str, float] = {}
            finite_steps, epoch_steps, skipped_in_a_row, skipped = 0, 0, 0, 0
            started = time.perf_counter()
            progress = _progress(
                itertools.islice(batches, steps_per_epoch),
                steps_per_epoch,
                epoch,
                optim.epochs,
                context.is_main and config.output.progress_bar,
            )
            for hazy, clean, targets in progress:
                lr = schedule(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                hazy = normalise(hazy.to(context.device, non_blocking=True))
                clean = normalise(clean.to(context.device, non_blocking=True))
                with torch.autocast(
                    context.device.type, dtype=amp_dtype, enabled=amp_dtype is not None
                ):
                    output = network(hazy)
                terms = together_loss(
                    output.maps,
                    output.dehazed,
                    clean,
                    targets,
                    model.strides,
                    model.config.num_classes,
                    config.loss,
                )
                loss_value = float(terms.total.detach())
                finite = math.isfinite(loss_value)
                if not finite and not scaler.is_enabled():
                    raise FloatingPointError(
                        f"loss became {loss_value} in epoch {epoch + 1} (step {step}); stopped "
                        f"before the update, {_kept_checkpoint(saved_last, epoch)}. "
                        f"{_DIVERGENCE_ADVICE}"
                    )
                # With fp16 a non-finite loss goes through backward too: the GradScaler then
                # finds inf/NaN gradients, skips the update and lowers its scale, as YOLOX
                # trains. DDP's all-reduce gives every rank those gradients, so every rank
                # skips (and counts) the same steps and stops together.
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(terms.total).backward()
                if optim.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
                scaler.step(optimizer)
                scale_before = scaler.get_scale() if scaler.is_enabled() else 0.0
                scaler.update()
                stepped = not scaler.is_enabled() or scaler.get_scale() >= scale_before
                epoch_steps += 1
                if stepped:
                    skipped_in_a_row = 0
                else:
                    skipped += 1
                    skipped_in_a_row += 1
                    if skipped_in_a_row > MAX_SKIPPED_FP16_STEPS:
                        raise FloatingPointError(
                            f"{skipped_in_a_row} fp16 steps in a row had non-finite gradients "
                            f"(epoch {epoch + 1}, step {step}; this rank's loss {loss_value}); "
                            f"stopped, {_kept_checkpoint(saved_last, epoch)}. "
                            f"{_DIVERGENCE_ADVICE}"
                        )
                if ema is not None and stepped:
                    ema.update(model)
                step += 1
                values = terms.as_floats()
                result.step_losses.append(values["loss"])
                if finite:
                    finite_steps += 1
                    for key, value in values.items():
                        sums[key] = sums.get(key, 0.0) + value
                if hasattr(progress, "set_postfix"):
                    progress.set_postfix(
                        {k: f"{v:.3f}" for k, v in values.items() if k != "fg"}
                        | {"lr": f"{lr:.2e}"}
                    )
            elapsed = time.perf_counter() - started
            # Every loss was finite, yet a step may still have had NaN/inf gradients, or a BN
            # buffer may have overflowed: never validate or save such weights as last/best.pt.
            # One host sync per epoch.
            bad = _non_finite_tensors(model) or (_non_finite_tensors(ema.module) if ema else [])
            if bad:
                more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
                kept = _kept_checkpoint(saved_last, epoch)
                losses = (
                    "although every loss was finite"
                    if finite_steps == epoch_steps
                    else f"({epoch_steps - finite_steps} fp16 steps' losses were not finite)"
                )
                raise FloatingPointError(
                    f"weights became non-finite in epoch {epoch + 1} ({bad[0]}{more}) {losses}; "
                    f"not saved, {kept}. {_DIVERGENCE_ADVICE}"
                )
            if skipped and skipped == epoch_steps:
                # Nothing trained this epoch (the same count on every rank): not an epoch to
                # save as done.
                raise FloatingPointError(
                    f"loss became non-finite at every step of epoch {epoch + 1} ({skipped} fp16 "
                    f"steps skipped); not saved, {_kept_checkpoint(saved_last, epoch)}. "
                    f"{_DIVERGENCE_ADVICE}"
                )
            if skipped:
                say(
                    f"epoch {epoch + 1}: {skipped} fp16 steps had non-finite gradients and were "
                    "skipped (the GradScaler lowered its scale)"
                )
            row = {key: value / max(finite_steps, 1) for key, value in sums.items()}
            row["lr"] = schedule(step - 1)
            row["images_per_s"] = steps_per_epoch * optim.batch_size / elapsed
            row["epoch_s"] = elapsed
            evaluated = _maybe_validate(
                config, dataset_val, ema.module if ema else model, context, epoch, class_names
            )
            row["val_mAP"] = evaluated  # always present: the CSV columns are fixed by row 1
            # NaN (a validation set without objects) is no score: it never makes a best.pt.
            improved = (
                evaluated is not None
                and math.isfinite(evaluated)
                and (best_map is None or evaluated > best_map)
            )
            if improved:
                best_map = evaluated
            if context.is_main:
                # best.pt (when the mAP improved) and last.pt hold the same end-of-epoch state.
                save_epoch = functools.partial(
                    _save,
                    model=model,
                    ema=ema,
                    optimizer=optimizer,
                    scaler=scaler,
                    epoch=epoch + 1,
                    step=step,
                    best_map=best_map,
                    config=config,
                    class_names=class_names,
                    history=[*history, {"epoch": epoch + 1, **row}],
                )
                if improved:
                    result.best_checkpoint = save_epoch(out_dir / "best.pt")
                result.last_checkpoint = save_epoch(out_dir / "last.pt")
                training_log.write(epoch + 1, row)
                say(
                    f"epoch {epoch + 1}/{optim.epochs}: "
                    + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if v is not None)
                )
            result.history.append({"epoch": epoch + 1, **row})
            history.append({"epoch": epoch + 1, **row})
            result.epochs_run += 1
            context.barrier()
            # Also on the other ranks, whose own diverging step names what rank 0 has kept.
            saved_last = out_dir / "last.pt"
    finally:
        del batches  # stops the loader's workers now, also when training failed
        if training_log is not None:
            training_log.close()
    result.best_map = best_map
    result.model = (ema.module if ema else model).eval()
    return result


def _resumed_step(
    step: int, epochs_done: int, steps_per_epoch: int, path: str, say: Callable[[str], None]
) -> int:
    """The schedule position to go on from: the start of the next epoch in this run's steps.

    Checkpoints are written at the end of an epoch, so the saved step is ``epochs_done`` times
    the steps per epoch of the run that wrote it. Another batch size, number of processes or
    dataset size changes the steps per epoch; the saved step would then put the LR at another
    point of the schedule than the epoch the run resumes at.
    """
    expected = epochs_done * steps_per_epoch
    if step != expected:
        say(
            f"warning: {path} ended epoch {epochs_done} at step {step}, this run has "
            f"{steps_per_epoch} steps per epoch (batch size, process count or training set size "
            f"changed): the learning-rate schedule goes on from step {expected}, the start of "
            f"epoch {epochs_done + 1}"
        )
    return expected


_DIVERGENCE_ADVICE = (
    "Lower train.lr, set train.grad_clip (e.g. 10), or use train.amp=bf16/none instead of fp16, "
    "then resume from last.pt or restart"
)


def _kept_checkpoint(last: Path | None, epochs_done: int) -> str:
    # Only the end of an epoch writes last.pt, so it holds the previous, healthy epoch.
    if last is None:
        return "no checkpoint written by this run yet"
    return f"{last} still holds epoch {epochs_done}"


def _non_finite_tensors(module: nn.Module) -> list[str]:
    """Names of floating-point parameters and buffers holding NaN or inf (one host sync)."""
    named = [(name, t) for name, t in module.state_dict().items() if t.is_floating_point()]
    if not named:
        return []
    finite = torch.stack([torch.isfinite(t).all() for _, t in named]).tolist()
    return [name for (name, _), ok in zip(named, finite, strict=True) if not ok]


def _progress(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]],
    total: int,
    epoch: int,
    epochs: int,
    enabled: bool,
) -> Iterable[tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]]:
    if not enabled:
        return batches
    from tqdm import tqdm

    return tqdm(
        batches, total=total, desc=f"epoch {epoch + 1}/{epochs}", leave=False, dynamic_ncols=True
    )


def _maybe_validate(
    config: TrainConfig,
    dataset_val: Dataset | None,
    model: nn.Module,
    context: DistributedContext,
    epoch: int,
    class_names: Sequence[str],
) -> float | None:
    interval = config.eval.interval
    last = epoch + 1 == config.train.epochs
    if dataset_val is None or interval <= 0 or not ((epoch + 1) % interval == 0 or last):
        return None
    # Every rank predicts its share of the images and rank 0 scores them all: one rank alone
    # took world-size times as long while the others sat in a collective, which NCCL abandons
    # after 10 minutes (a large validation set, a slow GPU).
    if context.distributed:
        _take_rank_0_weights(model)
    failure: Exception | None = None
    try:
        detections, truth = predict_dataset(
            model,
            dataset_val,
            (config.model.input_size, config.model.input_size),
            context.device,
            config.eval.conf_threshold,
            config.eval.nms_threshold,
            config.eval.batch_size,
            shard=(context.rank, context.world_size),
        )
    except Exception as error:
        if not context.distributed:
            raise
        # Raised after the ranks have compared notes: alone, this rank would leave the others
        # waiting in the gather below until the collective times out.
        failure, detections, truth = error, {}, {}
    if context.distributed:
        _raise_on_every_rank_if_one_failed(failure, context)
        shares = [None] * context.world_size if context.is_main else None
        # Our own ranks' results (pickled between this job's processes; no file is loaded).
        torch.distributed.gather_object((detections, truth), shares, dst=0)
        if shares is not None:
            detections = {key: found for share in shares for key, found in share[0].items()}
            truth = {key: image for share in shares for key, image in share[1].items()}
    value = None
    if context.is_main:
        metrics = score_predictions(
            detections, truth, dataset_val, class_names, config.eval.iou_threshold
        )
        value = float(metrics["mAP"])
    if context.distributed:
        # Every rank needs the number to keep the best-checkpoint logic identical. float64:
        # float32 would round the mAP that log.csv and best_map record away from the value a
        # single-process run (or `togethernet eval`) computes for the same weights.
        shared = torch.tensor(
            [value if value is not None else 0.0], dtype=torch.float64, device=context.device
        )
        torch.distributed.broadcast(shared, src=0)
        value = float(shared)
    return value


def _check_same_samples_on_every_rank(dataset: Dataset, context: DistributedContext) -> None:
    """Refuse on every rank when the ranks built different training sets.

    Each rank indexes the data itself: a read error on one rank only (a network file system
    hiccup) would give it another sample count, another partition of the shuffled indices,
    and possibly another number of steps, whose collectives would then hang the run. Compared:
    the count, and the sample ids where the dataset lists them.
    """
    records = getattr(dataset, "records", None)
    ids = [str(getattr(record, "image_id", "")) for record in records] if records else []
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
    mine = (len(dataset), digest)
    everyone: list[tuple[int, str] | None] = [None] * context.world_size
    torch.distributed.all_gather_object(everyone, mine)
    if any(other != everyone[0] for other in everyone):
        sizes = ", ".join(
            f"rank {rank}: {entry[0] if entry else '?'}" for rank, entry in enumerate(everyone)
        )
        raise TrainSetupError(
            f"the processes built different training sets ({sizes} samples, or other sample "
            "ids): each reads the data itself; check that every one sees the same files"
        )


def _raise_on_every_rank_if_one_failed(
    failure: Exception | None, context: DistributedContext
) -> None:
    """Every rank raises when any rank's validation failed, naming each failed rank."""
    reports: list[str | None] = [None] * context.world_size
    report = None if failure is None else f"{type(failure).__name__}: {failure}"
    torch.distributed.all_gather_object(reports, report)
    failed = [f"rank {rank}: {text}" for rank, text in enumerate(reports) if text is not None]
    if failed:
        raise RuntimeError("validation failed on " + "; ".join(failed)) from failure


@torch.no_grad()
def _take_rank_0_weights(model: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers (what rank 0 validates and saves).

    The parameters agree already; BatchNorm's running statistics do not: each rank updates
    them from its own last batch, and an EMA copies them.
    """
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        torch.distributed.broadcast(tensor.data, src=0)


def _save(
    path: Path,
    model: TogetherNet,
    ema: ModelEMA | None,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    epoch: int,
    step: int,
    best_map: float | None,
    config: TrainConfig,
    class_names: Sequence[str],
    history: list[dict],
) -> Path:
    weights = ema.module if ema is not None else model
    metadata = {
        "epoch": epoch,
        "step": step,
        "best_map": best_map,
        "weights": "ema" if ema is not None else "model",
        "input_size": config.model.input_size,
    }
    state = _training_state(model, optimizer, ema, scaler, epoch, step, best_map, config, history)
    return save_checkpoint(path, weights, class_names, metadata, {TRAINING_STATE_KEY: state})
