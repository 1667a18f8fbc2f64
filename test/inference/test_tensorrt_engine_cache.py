"""The TensorRT engine cache under interruption and concurrent builders, checked without a GPU.

onnxruntime's TensorRT provider writes a built engine with a plain ``std::ofstream`` under its
final name and, at the next session, fails with "TensorRT EP could not deserialize engine
from cache: PATH" on a file that is not a whole engine (onnxruntime
tensorrt_execution_provider.cc); it never rebuilds it. The fake session below does the same.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import onnxruntime
import pytest
import torch
from support.wait import wait_for

from togethernet_ros.inference.onnx_detector import OnnxRuntimeDetector
from togethernet_ros.inference.onnx_providers import CPU, CUDA, TENSORRT

from .test_onnx_gpu_providers import tiny_detect_file

ENGINE = b"serialized TensorRT engine " * 4000
ENGINE_NAME = "TensorrtExecutionProvider_TRTKernel_graph_tiny_123_0_0_fp16_sm90.engine"


class FakeTensorrtOrt:
    """onnxruntime-gpu whose TensorRT provider caches engines as the real one does."""

    def __init__(
        self,
        write_pause_s: float = 0.0,
        torn_engine_error: str = "TensorRT EP could not deserialize engine from cache: {path}",
    ) -> None:
        self.torn_engine_error = torn_engine_error
        self.builds = 0
        self.providers_used: list[str] = []
        fake = self

        class Session:
            def __init__(self, path, sess_options=None, providers=(), provider_options=(), **kw):
                self._providers = list(providers)
                if providers[0] == TENSORRT:
                    options = dict(provider_options[0])
                    if options.get("trt_engine_cache_enable"):
                        fake.cached_engine(Path(options["trt_engine_cache_path"]) / ENGINE_NAME)
                    else:
                        fake.builds += 1
                fake.providers_used.append(self._providers[0])

            def get_providers(self) -> list[str]:
                return list(self._providers)

        self.Session = Session
        self.write_pause_s = write_pause_s

    def cached_engine(self, path: Path) -> None:
        if path.exists():
            if path.read_bytes() != ENGINE:
                raise RuntimeError(
                    "[ONNXRuntimeError] : 1 : FAIL : " + self.torn_engine_error.format(path=path)
                )
            return
        self.builds += 1
        with path.open("wb") as file:  # std::ofstream: the final name from the first byte
            file.write(ENGINE[: len(ENGINE) // 2])
            file.flush()
            time.sleep(self.write_pause_s)
            file.write(ENGINE[len(ENGINE) // 2 :])

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(onnxruntime, "InferenceSession", self.Session)
        monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [TENSORRT, CUDA, CPU])
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _detector(model: Path, cache: Path) -> OnnxRuntimeDetector:
    return OnnxRuntimeDetector(model, device="cuda", precision="fp16", cache_dir=cache)


@pytest.mark.parametrize(
    "torn_engine_error",
    [
        "TensorRT EP could not deserialize engine from cache: {path}",  # onnxruntime 1.23-1.32
        # The same failure worded otherwise (another onnxruntime or TensorRT release).
        "TensorRT EP failed to deserialize the serialized engine {path}",
        "TensorRT EP: Engine deserialization failed for {path}",
    ],
)
def test_an_engine_torn_by_an_interrupted_build_is_rebuilt(
    tmp_path, monkeypatch, caplog, torn_engine_error
):
    fake = FakeTensorrtOrt(torn_engine_error=torn_engine_error)
    fake.install(monkeypatch)
    model = tiny_detect_file(tmp_path)
    cache = tmp_path / "engines"  # no "cache" in the path the message names
    assert _detector(model, cache).provider == TENSORRT
    (engine,) = (cache / "tensorrt").rglob("*.engine")
    # What a build killed while writing its engine (or a full disk) leaves under the final name.
    engine.write_bytes(ENGINE[:1000])
    with caplog.at_level("WARNING", logger="togethernet_ros"):
        detector = _detector(model, cache)
    # Was: TensorRT failed on the torn file at every start from then on; CUDA ran instead.
    assert detector.provider == TENSORRT
    assert engine.read_bytes() == ENGINE
    assert fake.builds == 2
    assert "deserializ" in caplog.text and "removed" in caplog.text


def test_a_second_process_waits_for_the_engine_being_written(tmp_path, monkeypatch):
    # Two nodes on one machine, same model, same cache, starting together.
    fake = FakeTensorrtOrt(write_pause_s=1.0)
    fake.install(monkeypatch)
    model = tiny_detect_file(tmp_path)
    cache = tmp_path / "cache"
    providers: dict[str, str] = {}

    def start(name: str) -> None:
        providers[name] = _detector(model, cache).provider

    first = threading.Thread(target=start, args=("first",))
    first.start()
    engine_dirs = cache / "tensorrt"
    wait_for(lambda: any(engine_dirs.rglob("*.engine")), 60, "the first build's engine file")
    start("second")  # while the first one's engine is half written
    first.join(timeout=60)
    assert not first.is_alive(), "the first detector never finished building"
    # Was: the second read the half-written engine, failed, and ran on CUDA instead.
    assert providers == {"first": TENSORRT, "second": TENSORRT}
    assert fake.builds == 1  # the second used the first one's engine


def test_engines_are_cached_in_the_user_cache_not_next_to_the_model(tmp_path, monkeypatch):
    # A downloaded model folder could ship a "cached" engine for TensorRT to deserialize, and
    # an installed package's folder is read-only: without a cache folder, engines go to
    # $XDG_CACHE_HOME/togethernet_ros. They went next to the model.
    fake = FakeTensorrtOrt()
    fake.install(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))
    (tmp_path / "downloaded").mkdir()
    model = tiny_detect_file(tmp_path / "downloaded")
    detector = OnnxRuntimeDetector(model, device="cuda", precision="fp16")
    assert detector.provider == TENSORRT
    assert list((tmp_path / "user_cache" / "togethernet_ros" / "tensorrt").rglob("*.engine"))
    assert not list((tmp_path / "downloaded").rglob("*.engine"))
