"""`togethernet train --config YAML [--set section.key=value ...]` (also under torchrun)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from togethernet_ros.training.data_issues import DataError, DataIssues
from togethernet_ros.training.distributed_context import shutdown_distributed
from togethernet_ros.training.interruption import sigterm_as_interrupt, stop_status
from togethernet_ros.training.paired_dataset import RecordDataset, VocFogDataset, YoloFogDataset
from togethernet_ros.training.train_config import DataConfig, TrainConfig, load_train_config

HELP = "Train TogetherNet (published objective and schedule; multi-GPU via torchrun)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `train` options."""
    parser.add_argument(
        "--config",
        help="training YAML (optional: the built-in defaults equal config/train_default.yaml)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=50 --set data.root=/data/VOC-FOG",
    )
    parser.add_argument("--print-config", action="store_true", help="print the config and exit")


def build_datasets(data: DataConfig) -> tuple[RecordDataset, RecordDataset | None]:
    """Training and validation datasets named by the config (bad data summarised)."""
    issues = DataIssues(strict=data.strict)
    if data.format == "voc":
        if not data.root:
            raise SystemExit("train: set data.root to the VOC-FOG dataset root")
        common = {
            "class_names": data.class_names,
            "hazy_dir": data.hazy_dir,
            "clean_dir": data.clean_dir,
            "issues": issues,
        }
        train_set = VocFogDataset(data.root, data.train_set, **common)
        val_set = None
        if data.val_set:
            # Validation reads only the foggy images, as eval scores them: an image whose
            # clean original is missing (RTTS has none) must not drop out of the score.
            val_clean = None if data.hazy_dir else data.clean_dir
            val_set = VocFogDataset(data.root, data.val_set, **{**common, "clean_dir": val_clean})
    else:
        if not (data.train_images and data.train_labels):
            raise SystemExit("train: set data.train_images and data.train_labels (YOLO format)")
        if bool(data.val_images) != bool(data.val_labels):
            # One of the two would otherwise be dropped without a word: no validation at all.
            raise SystemExit(
                "train: set data.val_images and data.val_labels together (YOLO format), or "
                "neither to train without validation"
            )
        train_set = YoloFogDataset(
            data.train_images, data.train_labels, data.class_names, data.train_clean, issues=issues
        )
        val_set = None
        if data.val_images and data.val_labels:
            val_set = YoloFogDataset(
                data.val_images, data.val_labels, data.class_names, issues=issues
            )
    if data.verify_images:
        for dataset in (train_set, val_set):
            if dataset is not None:
                dataset.verify_images(issues)
    print(issues.summary())
    if val_set is not None and len(val_set) == 0:
        # An empty validation set would score NaN every time and still write a best.pt.
        print("warning: the validation set has no usable samples; training without validation")
        val_set = None
    return train_set, val_set


def run(args: argparse.Namespace) -> int:
    """Load the config, build the datasets and train."""
    from togethernet_ros.model.checkpoint import CheckpointError
    from togethernet_ros.training.trainer import TrainSetupError, train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        config: TrainConfig = load_train_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"train: {error}") from error
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config.to_dict(), sort_keys=False))
        return 0
    try:
        with sigterm_as_interrupt():
            train_set, val_set = build_datasets(config.data)
            result = train(config, train_set, val_set)
            # Every rank reached the end: leaving the process group now is collective and safe
            # (after a failure torchrun ends the ranks). Left to exit, each NCCL rank warns
            # that destroy_process_group() was not called.
            shutdown_distributed()
    except (DataError, TrainSetupError, CheckpointError) as error:
        raise SystemExit(f"train: {error}") from error
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM, after the trainer cleaned up
        name, status = stop_status(stop)
        last = Path(config.output.dir) / "last.pt"
        where = (
            f"go on from its last finished epoch with --set resume={last}"
            if last.is_file()
            else "no epoch finished, no checkpoint written"
        )
        print(f"train: stopped by {name}; {where}", file=sys.stderr)
        return status
    except FloatingPointError as error:
        # The run diverged: its result is bad, not its input, so 1 (a message in SystemExit is
        # exit 2, the usage error).
        print(f"train: {error}", file=sys.stderr)
        return 1
    if result.last_checkpoint is not None:
        print(f"last checkpoint: {result.last_checkpoint}")
    if result.best_checkpoint is not None:
        print(f"best checkpoint: {result.best_checkpoint} (val mAP {result.best_map:.4f})")
    return 0
