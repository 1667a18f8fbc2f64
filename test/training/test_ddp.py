"""DistributedDataParallel smoke test: torchrun, 2 CPU processes, gloo."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset
    from togethernet_ros.training.train_config import load_train_config
    from togethernet_ros.training.trainer import train

    torch.set_num_threads(1)
    out = sys.argv[1]
    config = load_train_config(None, [
        f"output.dir={out}", "data.class_names=[a,b,c]", "data.workers=0",
        "model.input_size=128", "model.width=0.125", "train.batch_size=4", "train.epochs=1",
        "train.warmup_epochs=1", "train.flat_epochs=0", "eval.interval=1",
        "output.progress_bar=false", "output.tensorboard=false", "device=cpu",
    ])
    data = SyntheticFogDataset(8, 128, 128, num_classes=3, seed=2)
    result = train(config, data, SyntheticFogDataset(2, 128, 128, num_classes=3, seed=9))
    rank = int(os.environ["RANK"])
    assert torch.distributed.get_world_size() == 2 and torch.distributed.get_backend() == "gloo"
    torch.save(dict(result.model.named_parameters()), f"{out}/rank{rank}.pt")
    print(f"rank {rank} steps {len(result.step_losses)} map {result.best_map}")
    """
)


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--standalone",  # a free port: a fixed one can still be held by an earlier run
            str(script),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    # 8 samples, global batch 4 over 2 ranks: each rank runs 2 steps of 2 images.
    assert "rank 0 steps 2" in completed.stdout and "rank 1 steps 2" in completed.stdout
    # 2 images per process for BatchNorm: said once, by rank 0.
    output = completed.stdout + completed.stderr
    assert output.count("warning: 2 images per process for BatchNorm") == 1, output[-3000:]
    # Gradients were all-reduced: both ranks end with identical weights (BN statistics are
    # rank-local between DDP's buffer broadcasts, so parameters are what must agree).
    weights = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key
    # Only rank 0 writes the log and checkpoints.
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "log.csv").is_file()
