"""A training run's life on disk: interrupted, resumed, resumed differently, or started twice.

Every run is tiny (8 synthetic 128-px scenes, width 0.125, two steps an epoch): seconds on a CPU.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from support.stopped_runs import stop_during_second_save
from support.train_configs import small_config
from support.wait import wait_for

from togethernet_ros.model.checkpoint import load_checkpoint
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset
from togethernet_ros.training.trainer import TRAINING_STATE_KEY, TrainSetupError, train

REPO = Path(__file__).resolve().parents[2]
COMMON = ("train.epochs=3", "eval.interval=0", "train.seed=5")


def _data() -> SyntheticFogDataset:
    return SyntheticFogDataset(8, 128, 128, num_classes=3, seed=3)


def _quiet(_message: str) -> None:
    pass


def _logged_epochs(out: Path) -> list[int]:
    with (out / "log.csv").open() as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def _without_history(path: Path) -> None:
    """Rewrite a checkpoint the way the trainer wrote it before it recorded the log rows."""
    raw = torch.load(path, weights_only=True)
    raw[TRAINING_STATE_KEY].pop("history", None)
    torch.save(raw, path)


@pytest.mark.parametrize("older_format", [False, True], ids=["current", "without-history"])
def test_resuming_an_earlier_checkpoint_keeps_one_log_row_per_epoch(tmp_path, older_format):
    # Resuming from an earlier checkpoint (epoch 1 while the log already has epoch 2) appended
    # a second row for epoch 2: the log no longer said which run the numbers belong to.
    out, data = tmp_path / "run", _data()
    train(small_config(out, *COMMON, "train.stop_after_epochs=1"), data, log=_quiet)
    shutil.copy(out / "last.pt", out / "epoch1.pt")
    train(
        small_config(out, *COMMON, "train.stop_after_epochs=1", f"resume={out / 'last.pt'}"),
        data,
        log=_quiet,
    )
    assert _logged_epochs(out) == [1, 2]
    if older_format:
        _without_history(out / "epoch1.pt")
    train(small_config(out, *COMMON, f"resume={out / 'epoch1.pt'}"), data, log=_quiet)
    assert _logged_epochs(out) == [1, 2, 3]


def test_a_log_row_lost_to_an_interruption_comes_back_on_resume(tmp_path):
    # last.pt is written before the epoch's log row: a run killed between the two (or a power
    # loss before the appended row reached the disk) left the log without that epoch for good,
    # and a row torn in the middle was continued by the next run's first row.
    out, data = tmp_path / "run", _data()
    train(small_config(out, *COMMON, "train.stop_after_epochs=2"), data, log=_quiet)
    lines = (out / "log.csv").read_text().splitlines(keepends=True)
    (out / "log.csv").write_text(lines[0] + lines[1] + lines[2][:7])  # epoch 2 torn
    resumed = train(small_config(out, *COMMON, f"resume={out / 'last.pt'}"), data, log=_quiet)
    assert _logged_epochs(out) == [1, 2, 3]
    with (out / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[2]["loss"]) == pytest.approx(resumed.history[0]["loss"], rel=1e-5)
    assert all(
        None not in row and all(value != "" for key, value in row.items() if key != "val_mAP")
        for row in rows
    )


def test_resume_with_another_batch_size_continues_at_the_epoch_and_says_so(tmp_path):
    # The schedule runs in steps. The checkpoint's step counted 2 steps per epoch (batch 4);
    # resumed at batch 2 (4 steps per epoch) the run went on at step 2, the LR of epoch 1's
    # middle, instead of step 4 where epoch 2 begins, and said nothing.
    out, data = tmp_path / "run", _data()
    train(small_config(out, *COMMON, "train.stop_after_epochs=1"), data, log=_quiet)
    said: list[str] = []
    train(
        small_config(
            out,
            *COMMON,
            "train.batch_size=2",
            "train.stop_after_epochs=1",
            f"resume={out / 'last.pt'}",
        ),
        data,
        log=said.append,
    )
    assert load_checkpoint(out / "last.pt").metadata["step"] == 8  # 2 epochs of 4 steps
    warning = [line for line in said if "steps per epoch" in line]
    assert warning and "batch" in warning[0], said


def test_a_new_run_into_a_finished_runs_directory_is_refused(tmp_path):
    # A second run with the same output.dir (the default is runs/train) appended its rows to
    # the first run's log.csv (epochs 1, 2, 1, ...) and replaced its last.pt; an older best.pt
    # stayed next to them.
    out, data = tmp_path / "run", _data()
    train(small_config(out, *COMMON, "train.stop_after_epochs=1"), data, log=_quiet)
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    with pytest.raises(TrainSetupError, match=r"holds an earlier run.*resume="):
        train(small_config(out, *COMMON), data, log=_quiet)
    after = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    assert {name: after.get(name) for name in before} == before


def test_resuming_into_the_directory_of_another_run_is_refused(tmp_path):
    data = _data()
    for name in ("a", "b"):
        train(small_config(tmp_path / name, *COMMON, "train.stop_after_epochs=1"), data, log=_quiet)
    before = (tmp_path / "b" / "last.pt").read_bytes()
    resume_a_into_b = small_config(tmp_path / "b", *COMMON, f"resume={tmp_path / 'a' / 'last.pt'}")
    with pytest.raises(TrainSetupError, match="holds an earlier run"):
        train(resume_a_into_b, data, log=_quiet)
    assert (tmp_path / "b" / "last.pt").read_bytes() == before
    # Into a new directory it forks the run: the log there starts with the run's earlier rows.
    train(
        small_config(tmp_path / "c", *COMMON, f"resume={tmp_path / 'a' / 'last.pt'}"),
        data,
        log=_quiet,
    )
    assert _logged_epochs(tmp_path / "c") == [1, 2, 3]


def test_an_upstream_checkpoint_given_as_resume_points_to_model_init(tmp_path):
    from togethernet_ros.model import TogetherNetConfig, build_model

    weights = tmp_path / "upstream.pth"
    torch.save(
        build_model(config=TogetherNetConfig(num_classes=3, width=0.125)).state_dict(), weights
    )
    with pytest.raises(TrainSetupError, match=r"model\.init"):
        train(small_config(tmp_path / "run", *COMMON, f"resume={weights}"), _data(), log=_quiet)
    assert not (tmp_path / "run" / "log.csv").exists()


BLOCKED_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from support.train_configs import small_config
    from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset
    from togethernet_ros.training.trainer import train

    out, marker = Path(sys.argv[1]), Path(sys.argv[2])

    class Waiting(SyntheticFogDataset):
        def __getitem__(self, index):
            marker.touch()
            while not (marker.parent / "go").exists():
                time.sleep(0.05)
            return super().__getitem__(index)

    config = small_config(out, "train.epochs=1", "eval.interval=0", "train.seed=5")
    train(config, Waiting(8, 128, 128, num_classes=3, seed=3), log=lambda _m: None)
    print("first run finished")
    """
)


def test_a_second_run_on_a_directory_in_use_is_refused(tmp_path):
    # Two runs (say a job requeued while its first copy still runs) wrote the same last.pt and
    # log.csv in turn.
    script, marker, out = tmp_path / "first.py", tmp_path / "started", tmp_path / "run"
    script.write_text(BLOCKED_RUN)
    first = subprocess.Popen(
        [sys.executable, str(script), str(out), str(marker), str(REPO / "test")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        wait_for(lambda: marker.exists() or first.poll() is not None, 120, "the first run")
        assert first.poll() is None, first.communicate()
        with pytest.raises(TrainSetupError, match="in use by another run"):
            train(small_config(out, "train.epochs=1", "eval.interval=0"), _data(), log=_quiet)
        assert not (out / "log.csv").exists()
        (tmp_path / "go").touch()
        stdout, stderr = first.communicate(timeout=120)
    finally:
        (tmp_path / "go").touch()
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, stderr[-3000:]
    assert "first run finished" in stdout and _logged_epochs(out) == [1]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_run_stopped_while_writing_a_checkpoint_leaves_no_debris_and_resumes(tmp_path, signum):
    # SIGTERM (what `timeout`, schedulers and torchrun send) killed the process on the spot: no
    # cleanup ran, so the half-written checkpoint stayed behind as .last.pt.<pid>.<id>.tmp
    # (three model sizes with the optimizer state) and the loader's workers were not stopped.
    scenes = SyntheticFogDataset(8, 128, 128, num_classes=3, seed=3)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, ["a", "b", "c"])
    out = tmp_path / "run"
    settings = [
        f"data.root={root}",
        "data.val_set=null",
        "data.class_names=[a,b,c]",
        "data.workers=1",
        "model.input_size=128",
        "model.width=0.125",
        "train.batch_size=4",
        "train.epochs=2",
        "train.warmup_epochs=1",
        "train.flat_epochs=0",
        "eval.interval=0",
        f"output.dir={out}",
        "output.tensorboard=false",
        "output.progress_bar=false",
    ]
    argv = ["train", *[arg for s in settings for arg in ("--set", s)]]
    status, stderr = stop_during_second_save(tmp_path, argv, signum)
    assert status in (128 + signum, -signum), (status, stderr[-3000:])
    assert sorted(path.name for path in out.iterdir() if path.name.endswith(".tmp")) == []
    assert load_checkpoint(out / "last.pt").metadata["epoch"] == 1
    assert "Traceback" not in stderr and f"resume={out / 'last.pt'}" in stderr, stderr[-3000:]
    # The run goes on from there, and its log holds each epoch once.
    from togethernet_ros.cli import main

    assert main([*argv, "--set", f"resume={out / 'last.pt'}"]) == 0
    assert load_checkpoint(out / "last.pt").metadata["epoch"] == 2
    assert _logged_epochs(out) == [1, 2]


def test_a_later_run_removes_checkpoints_half_written_by_a_killed_one(tmp_path):
    # SIGKILL or a power loss while saving leaves write_atomically's temporary file (three model
    # sizes with the optimizer state); nothing removed them, one more per kill.
    out, data = tmp_path / "run", _data()
    train(small_config(out, *COMMON, "train.stop_after_epochs=1"), data, log=_quiet)
    debris = [out / ".last.pt.4242.0badc0de.tmp", out / ".best.pt.4243.0badc0de.tmp"]
    for path in debris:
        path.write_bytes(b"half a checkpoint")
    train(small_config(out, *COMMON, f"resume={out / 'last.pt'}"), data, log=_quiet)
    assert not any(path.exists() for path in debris)


REFUSED_UNDER_TORCHRUN = textwrap.dedent(
    """
    import os, sys
    import torch
    sys.path.insert(0, sys.argv[2])
    from support.train_configs import small_config
    from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset
    from togethernet_ros.training.trainer import train

    torch.set_num_threads(1)
    config = small_config(sys.argv[1], "train.epochs=1", "eval.interval=0", "device=cpu")
    train(config, SyntheticFogDataset(8, 128, 128, num_classes=3, seed=3))
    print(f"rank {os.environ['RANK']} trained")
    """
)


@pytest.mark.slow
def test_under_torchrun_a_refusal_on_rank_0_ends_every_rank(tmp_path):
    # Only rank 0 claims the directory; the other ranks must not wait for it for ever.
    out, data = tmp_path / "run", _data()
    train(small_config(out, *COMMON, "train.stop_after_epochs=1"), data, log=_quiet)
    before = (out / "last.pt").read_bytes()
    script = tmp_path / "ddp.py"
    script.write_text(REFUSED_UNDER_TORCHRUN)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    # --standalone: a free port of its own (a fixed one collides with a concurrent run).
    command += ["--standalone", str(script), str(out), str(REPO / "test")]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode != 0
    assert "holds an earlier run" in completed.stderr, completed.stderr[-3000:]
    assert "trained" not in completed.stdout
    assert (out / "last.pt").read_bytes() == before and _logged_epochs(out) == [1]


def test_a_resumed_run_drops_the_tensorboard_events_it_runs_again(tmp_path, monkeypatch):
    # TensorBoard got a second point for every epoch a resumed run ran again.
    import types

    opened: list[dict] = []

    class Writer:
        def __init__(self, log_dir, **options):
            opened.append(options)

        def add_scalar(self, *args):
            pass

        def flush(self):
            pass

        def close(self):
            pass

    monkeypatch.setitem(
        sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer)
    )
    out, data = tmp_path / "run", _data()
    first = small_config(out, *COMMON, "train.stop_after_epochs=2", "output.tensorboard=true")
    train(first, data, log=_quiet)
    shutil.copy(out / "last.pt", out / "epoch2.pt")
    train(
        small_config(out, *COMMON, f"resume={out / 'last.pt'}", "output.tensorboard=true"),
        data,
        log=_quiet,
    )
    resumed = small_config(out, *COMMON, f"resume={out / 'epoch2.pt'}", "output.tensorboard=true")
    train(resumed, data, log=_quiet)
    assert [options.get("purge_step") for options in opened] == [1, 3, 3]


def test_resuming_a_finished_run_says_there_is_nothing_left_to_train(tmp_path):
    out, data = tmp_path / "run", _data()
    train(small_config(out, "train.epochs=1", "eval.interval=0", "train.seed=5"), data, log=_quiet)
    resumed = small_config(out, "train.epochs=1", "eval.interval=0", f"resume={out / 'last.pt'}")
    with pytest.raises(TrainSetupError, match=r"finished epoch 1 and train\.epochs is 1"):
        train(resumed, data, log=_quiet)


def test_a_checkpoint_from_more_gpus_restores_the_generators_this_machine_has(monkeypatch):
    """A 4-GPU torchrun checkpoint resumed on one GPU: set_rng_state_all would index past it."""
    from togethernet_ros.training import trainer

    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(
        torch.cuda, "set_rng_state", lambda state, device: restored.append((state, device))
    )
    states = [torch.full((4,), index, dtype=torch.uint8) for index in range(4)]
    trainer.restore_cuda_rng(states)
    assert [(state.tolist(), device) for state, device in restored] == [([0, 0, 0, 0], 0)]
    trainer.restore_cuda_rng([])  # a CPU run's checkpoint
    assert len(restored) == 1


def test_a_best_map_scored_by_older_rules_is_not_compared_on_resume(tmp_path):
    # Validation now scores as `togethernet eval` does; a checkpoint's best_map from before
    # (another metric for the same weights) must not decide whether best.pt is replaced.
    out, data = tmp_path / "run", _data()
    validated = ("train.epochs=2", "eval.interval=1", "train.seed=5")
    train(small_config(out, *validated, "train.stop_after_epochs=1"), data, data, log=_quiet)
    raw = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    state = raw[TRAINING_STATE_KEY]
    assert state["map_scoring"] == 2 and state["best_map"] is not None
    del state["map_scoring"]  # as written before the scoring changed
    state["best_map"] = 2.0  # no mAP reaches it: best.pt would never be replaced
    torch.save(raw, out / "last.pt")
    said: list[str] = []
    resumed = train(
        small_config(out, *validated, f"resume={out / 'last.pt'}"), data, data, log=said.append
    )
    assert any("scored by older rules" in line for line in said)
    assert resumed.best_map is not None and resumed.best_map < 2.0
    assert load_checkpoint(out / "best.pt").metadata["epoch"] == 2
