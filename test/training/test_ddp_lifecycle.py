"""Multi-process training as users run it: torchrun, 2 CPU processes, gloo, tiny runs.

Each torchrun test takes a few seconds of CPU; they start with --standalone (a free port each).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from support.train_configs import CLASSES, SMALL_SETTINGS

from togethernet_ros.cli import main
from togethernet_ros.model.checkpoint import load_checkpoint
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset
from togethernet_ros.training.validation import validation_map

TEST_DIR = Path(__file__).resolve().parents[1]
SETTINGS = (*SMALL_SETTINGS, "device=cpu")
TINY = [part for setting in SETTINGS for part in ("--set", setting)]


def _torchrun(script: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``script`` in 2 CPU processes under torchrun; args follow the script path."""
    path = tmp_path / "ddp_script.py"
    path.write_text(textwrap.dedent(script))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--standalone", str(path), *args]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,  # seconds of work; generous for a loaded 2-core machine
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _train_argv(tmp_path: Path, out: Path, *settings: str) -> list[str]:
    """`togethernet train` on a small VOC set, no validation, writing into ``out``."""
    extra = [
        f"data.root={_voc_root(tmp_path)}",
        "data.val_set=null",
        *settings,
        f"output.dir={out}",
    ]
    return ["train", *TINY, *[part for setting in extra for part in ("--set", setting)]]


def _val_set() -> SyntheticFogDataset:
    return SyntheticFogDataset(3, 128, 128, num_classes=3, seed=9)


SHARDED_RUN = """
    import json, os, sys
    import torch
    sys.path.insert(0, sys.argv[2])
    from support.train_configs import small_config
    from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset
    from togethernet_ros.training.trainer import train

    class Recording(torch.utils.data.Dataset):
        def __init__(self, inner):
            self.inner, self.seen = inner, []

        def __len__(self):
            return len(self.inner)

        def __getitem__(self, index):
            self.seen.append(int(index))
            return self.inner[index]

    torch.set_num_threads(1)
    out = sys.argv[1]
    data = Recording(SyntheticFogDataset(9, 128, 128, num_classes=3, seed=2))
    config = small_config(out, "train.epochs=2", "eval.interval=1", "device=cpu")
    validation = Recording(SyntheticFogDataset(3, 128, 128, num_classes=3, seed=9))
    result = train(config, data, validation)
    rank = os.environ["RANK"]
    with open(f"{out}/../seen{rank}.json", "w") as handle:
        json.dump(
            {"seen": data.seen, "validated": validation.seen, "best_map": result.best_map}, handle
        )
"""


@pytest.mark.slow
def test_each_rank_trains_on_its_own_shard_and_rank_0_alone_writes(tmp_path):
    out = tmp_path / "run"
    completed = _torchrun(SHARDED_RUN, str(out), str(TEST_DIR), tmp_path=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    seen = [json.loads((tmp_path / f"seen{rank}.json").read_text())["seen"] for rank in (0, 1)]
    # 9 samples, global batch 4 over 2 ranks: 2 steps of 2 images per rank and epoch.
    for epoch in (0, 1):
        shards = [set(ranked[4 * epoch : 4 * epoch + 4]) for ranked in seen]
        assert all(len(shard) == 4 for shard in shards), seen
        assert not shards[0] & shards[1], f"epoch {epoch + 1}: both ranks trained on {seen}"
        assert len(shards[0] | shards[1]) == 8  # the odd sample out is dropped, as one process does
    assert seen[0][:4] != seen[0][4:], "the shuffle did not change between epochs"
    assert sorted(path.name for path in out.iterdir()) == [
        ".togethernet_run.lock",
        "best.pt",
        "last.pt",
        "log.csv",
    ]


@pytest.mark.slow
def test_validation_map_of_a_two_process_run_equals_one_process_on_the_same_weights(tmp_path):
    # The mAP was broadcast to the other ranks as float32, so log.csv, best_map and best.pt's
    # choice all used a number rounded away from what one process computes for those weights.
    out = tmp_path / "run"
    completed = _torchrun(SHARDED_RUN, str(out), str(TEST_DIR), tmp_path=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    checkpoint = load_checkpoint(out / "last.pt")
    single = validation_map(checkpoint.model, _val_set(), CLASSES, (128, 128), torch.device("cpu"))[
        "mAP"
    ]
    assert single > 0  # a mAP of exactly 0 would compare equal after any rounding
    with (out / "log.csv").open() as handle:
        last_row = list(csv.DictReader(handle))[-1]
    assert float(last_row["val_mAP"]) == pytest.approx(single, rel=1e-5)
    runs = [json.loads((tmp_path / f"seen{rank}.json").read_text()) for rank in (0, 1)]
    # Each rank predicted its share of the 3 validation images, at both epochs' validations;
    # rank 0 scored them all.
    assert [run["validated"] for run in runs] == [[0, 2, 0, 2], [1, 1]]
    reported = [run["best_map"] for run in runs]
    best = load_checkpoint(out / "best.pt")
    best_single = validation_map(best.model, _val_set(), CLASSES, (128, 128), torch.device("cpu"))[
        "mAP"
    ]
    assert reported == [best_single, best_single]
    assert best.metadata["best_map"] == best_single


DIVERGING_ON_RANK_1 = """
    import os, sys
    import torch
    sys.path.insert(0, sys.argv[2])
    from support.train_configs import small_config
    from togethernet_ros.model import TogetherNetConfig, build_model
    from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset
    from togethernet_ros.training.trainer import train

    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    config = small_config(sys.argv[1], "train.epochs=3", "eval.interval=0", "device=cpu")
    model = build_model(config=TogetherNetConfig(num_classes=3, depth=0.33, width=0.125))
    forwards = []

    def diverge_on_rank_1(module, inputs, output):
        # From rank 1's first step of epoch 2 its loss is NaN; rank 0's stays finite.
        forwards.append(1)
        if rank == 1 and len(forwards) > 2:
            return output._replace(maps=[m * float("nan") for m in output.maps])
        return output

    model.register_forward_hook(diverge_on_rank_1)
    try:
        train(config, SyntheticFogDataset(8, 128, 128, num_classes=3, seed=2), model=model)
    except FloatingPointError as error:
        print(f"rank {rank}: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
"""


@pytest.mark.slow
def test_a_rank_that_diverges_names_the_checkpoint_rank_0_kept(tmp_path):
    # Only rank 0 recorded its saves, so every other rank said "no checkpoint written by this
    # run yet" while last.pt held the finished epochs: users thought the run was lost.
    out = tmp_path / "run"
    completed = _torchrun(DIVERGING_ON_RANK_1, str(out), str(TEST_DIR), tmp_path=tmp_path)
    assert completed.returncode != 0
    lines = [line for line in completed.stderr.splitlines() if line.startswith("rank 1: ")]
    assert lines, completed.stderr[-3000:]
    assert "loss became nan in epoch 2" in lines[0]
    assert f"{out / 'last.pt'} still holds epoch 1" in lines[0], lines[0]
    assert load_checkpoint(out / "last.pt").metadata["epoch"] == 1


VALIDATION_FAILING_ON_RANK_1 = """
    import os, sys
    import torch
    sys.path.insert(0, sys.argv[2])
    from support.train_configs import small_config
    from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset
    from togethernet_ros.training.trainer import train

    class BrokenOnRank1(SyntheticFogDataset):
        def __getitem__(self, index):
            if os.environ["RANK"] == "1":
                raise ValueError(f"sample {index} cannot be read")
            return super().__getitem__(index)

    torch.set_num_threads(1)
    config = small_config(sys.argv[1], "train.epochs=1", "eval.interval=1", "device=cpu")
    data = SyntheticFogDataset(8, 128, 128, num_classes=3, seed=2)
    try:
        train(config, data, BrokenOnRank1(3, 128, 128, num_classes=3, seed=9))
    except RuntimeError as error:
        print(f"rank {os.environ['RANK']}: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
"""


@pytest.mark.slow
def test_validation_failing_on_one_rank_fails_every_rank_at_once(tmp_path):
    # Each rank validates its share; one that failed alone left the others waiting in the
    # gather until the collective's timeout (NCCL: 10 minutes).
    completed = _torchrun(
        VALIDATION_FAILING_ON_RANK_1, str(tmp_path / "run"), str(TEST_DIR), tmp_path=tmp_path
    )
    assert completed.returncode != 0
    expected = "validation failed on rank 1: ValueError: sample 1 cannot be read"
    for rank in (0, 1):
        assert f"rank {rank}: {expected}" in completed.stderr, completed.stderr[-3000:]


DIFFERENT_DATA_PER_RANK = """
    import os, sys
    import torch
    sys.path.insert(0, sys.argv[2])
    from support.train_configs import small_config
    from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset
    from togethernet_ros.training.trainer import TrainSetupError, train

    torch.set_num_threads(1)
    config = small_config(sys.argv[1], "train.epochs=1", "eval.interval=0", "device=cpu")
    # Rank 1 lost two samples to a read error the other rank did not have.
    count = 8 if os.environ["RANK"] == "0" else 6
    try:
        train(config, SyntheticFogDataset(count, 128, 128, num_classes=3, seed=2))
    except TrainSetupError as error:
        print(f"rank {os.environ['RANK']}: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
"""


@pytest.mark.slow
def test_ranks_that_built_different_training_sets_are_refused_on_every_rank(tmp_path):
    # Another sample count partitions the shuffled indices differently and can give another
    # number of steps: the ranks' collectives would then no longer pair up.
    completed = _torchrun(
        DIFFERENT_DATA_PER_RANK, str(tmp_path / "run"), str(TEST_DIR), tmp_path=tmp_path
    )
    assert completed.returncode != 0
    for rank in (0, 1):
        assert (
            f"rank {rank}: the processes built different training sets (rank 0: 8, rank 1: 6"
            in (completed.stderr)
        ), completed.stderr[-3000:]


CLI_RUN = """
    import os, sys
    import torch
    from togethernet_ros.cli import main

    torch.set_num_threads(1)
    status = main(sys.argv[1:])
    joined = torch.distributed.is_initialized()
    print(f"rank {os.environ['RANK']} status {status} still in the group {joined}", flush=True)
"""


def _voc_root(tmp_path: Path) -> Path:
    root = tmp_path / "voc"
    write_voc_fog_dataset(root, SyntheticFogDataset(8, 128, 128, num_classes=3, seed=4), CLASSES)
    return root


@pytest.mark.slow
def test_the_train_command_leaves_the_process_group_when_it_finishes(tmp_path):
    # Left to process exit, every NCCL rank printed "destroy_process_group() was not called
    # before program exit, which can leak resources" at the end of each multi-GPU run.
    out = tmp_path / "run"
    argv = _train_argv(tmp_path, out, "train.epochs=1")
    completed = _torchrun(CLI_RUN, *argv, tmp_path=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    for rank in (0, 1):
        assert f"rank {rank} status 0 still in the group False" in completed.stdout, (
            completed.stdout[-3000:]
        )
    assert load_checkpoint(out / "last.pt").metadata["epoch"] == 1


@pytest.mark.slow
def test_sync_bn_without_gpus_is_refused_in_one_line(tmp_path):
    # DDP refused it deep in its constructor ("SyncBatchNorm layers only work with GPU
    # modules"), a traceback per rank that named no setting.
    out = tmp_path / "run"
    argv = _train_argv(tmp_path, out, "train.sync_bn=true")
    completed = _torchrun(CLI_RUN, *argv, tmp_path=tmp_path)
    for rank in (0, 1):
        assert f"rank {rank} status 2" in completed.stdout, completed.stderr[-3000:]
    assert "train: train.sync_bn needs CUDA GPUs, this run is on cpu" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (out / "last.pt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda", "train: device 'cuda' requested but no CUDA GPU is available"),
        ("cuda:1", "train: device 'cuda:1' requested but no CUDA GPU is available"),
        ("gpu0", "train: device must be auto, cpu, cuda or cuda:N, got 'gpu0'"),
    ],
)
def test_an_unusable_device_is_one_line_not_a_traceback(tmp_path, capsys, device, message):
    # Both ended in a RuntimeError traceback (torch's own for an unknown name).
    out = tmp_path / "run"
    argv = _train_argv(tmp_path, out, f"device={device}")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == message and "Traceback" not in err
    assert not (out / "last.pt").exists()
