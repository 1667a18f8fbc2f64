"""torch.compile of the torch backend: same detections as eager, clear errors when it cannot run.

Inductor really compiles here (C++ on the CPU, tens of seconds per shape), at 128x128 and batch
1 to keep it short; on a GPU the same path is checked by benchmarks/gpu_check.py.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from togethernet_ros.inference.factory import create_detector
from togethernet_ros.inference.model_compilation import check_compile_mode
from togethernet_ros.inference.torch_detector import TorchDetector
from togethernet_ros.model import DEFAULT_CLASS_NAMES

from .conftest import scene

SIZE = (128, 128)


@pytest.mark.skipif(
    not (shutil.which("g++") or shutil.which("c++")),
    reason="Inductor needs a C++ compiler on the CPU (the failure message is tested below)",
)
def test_compiled_detector_finds_what_the_eager_one_finds(informative_model, tmp_path, monkeypatch):
    # Inductor's cache would otherwise pile up ~150 MB per run under /tmp/torchinductor_<user>.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    frames = [scene(120, 160, seed=4)]
    options = dict(input_size=SIZE, conf_threshold=0.05, nms_threshold=0.45, max_batch_size=1)
    eager = TorchDetector(informative_model, DEFAULT_CLASS_NAMES, **options)
    compiled = TorchDetector(
        informative_model, DEFAULT_CLASS_NAMES, compile_mode="default", **options
    )
    assert compiled.backend == "torch-cpu-fp32-compiled"
    expected = eager.detect(frames)[0].detections
    found = compiled.detect(frames)[0].detections
    assert len(expected) > 0
    np.testing.assert_array_equal(found.class_ids, expected.class_ids)
    np.testing.assert_allclose(found.boxes, expected.boxes, atol=1e-3)
    np.testing.assert_allclose(found.scores, expected.scores, atol=1e-5)


def test_compile_failure_is_reported_when_the_detector_is_built(informative_model, monkeypatch):
    import torch._inductor.config as inductor_config

    # A machine without a C++ compiler: Inductor's CPU code cannot be built. No cached kernels
    # may stand in for the compiler, so the graph cache is off for this test.
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/g++",))
    with pytest.raises(
        RuntimeError,
        match=r"torch.compile of the model \(mode 'default'\) failed: .*C\+\+ compiler",
    ):
        TorchDetector(
            informative_model,
            DEFAULT_CLASS_NAMES,
            input_size=(128, 256),
            max_batch_size=1,
            compile_mode="default",
        )


def test_unsupported_modes_and_backends_are_refused():
    with pytest.raises(ValueError, match="Inductor's own CUDA graphs"):
        check_compile_mode("reduce-overhead")
    with pytest.raises(ValueError, match="compile_mode is a torch backend option"):
        create_detector(None, backend="onnxruntime", allow_untrained=True, compile_mode="default")
