"""The ONNX Runtime GPU provider path, checked without a GPU.

onnxruntime is replaced by a fake `InferenceSession` that records how it is called and behaves
as the GPU build does (onnxruntime-gpu 1.31.1): a provider whose library does not load is
skipped with only a log line, one that fails to initialise raises.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper
from onnxruntime.capi.onnxruntime_inference_collection import check_and_normalize_provider_args

from togethernet_ros.inference import onnx_detector
from togethernet_ros.inference.export import (
    DEHAZED_OUTPUT_NAME,
    INPUT_NAME,
    MAP_OUTPUT_NAMES,
    ONNX_FORMAT,
)
from togethernet_ros.inference.onnx_detector import OnnxRuntimeDetector
from togethernet_ros.inference.onnx_providers import CPU, CUDA, TENSORRT, provider_chains

# Every option name the Python binding of onnxruntime-gpu 1.31.1 accepts for the TensorRT
# provider (any other raises "Invalid TensorRT EP option"), read from its
# onnxruntime_pybind11_state .so, and the CUDA provider's names that we use (from
# libonnxruntime_providers_cuda.so; an unknown one raises "Unknown provider option").
TENSORRT_OPTIONS_1_31 = {
    "device_id", "trt_auxiliary_streams", "trt_bf16_enable", "trt_build_heuristics_enable",
    "trt_builder_optimization_level", "trt_context_memory_sharing_enable",
    "trt_cuda_graph_enable", "trt_detailed_build_log", "trt_dla_core", "trt_dla_enable",
    "trt_dump_ep_context_model", "trt_dump_subgraphs", "trt_engine_cache_enable",
    "trt_engine_cache_path", "trt_engine_cache_prefix", "trt_engine_decryption_enable",
    "trt_engine_decryption_lib_path", "trt_engine_hw_compatible", "trt_ep_context_embed_mode",
    "trt_ep_context_file_path", "trt_extra_plugin_lib_paths",
    "trt_force_sequential_engine_build", "trt_force_timing_cache", "trt_fp16_enable",
    "trt_int8_calibration_table_name", "trt_int8_enable",
    "trt_int8_use_native_calibration_table", "trt_layer_norm_fp32_fallback",
    "trt_max_partition_iterations", "trt_max_workspace_size", "trt_min_subgraph_size",
    "trt_onnx_model_folder_path", "trt_op_types_to_exclude", "trt_preview_features",
    "trt_profile_max_shapes", "trt_profile_min_shapes", "trt_profile_opt_shapes",
    "trt_sparsity_enable", "trt_tactic_sources", "trt_timing_cache_enable",
    "trt_timing_cache_path", "trt_weight_stripped_engine_enable",
}  # fmt: skip
CUDA_OPTIONS_1_31 = {"device_id", "cudnn_conv_algo_search", "do_copy_in_default_stream", "use_tf32"}
# The TensorRT binding takes exactly these for booleans ("should be 'True' or 'False'").
TENSORRT_BOOLEANS = {"True", "False", "true", "false"}


def tiny_detect_file(folder: Path, size: int = 32, restore: bool = False, **metadata: str) -> Path:
    """A detection-only file with our metadata (the fake session never runs it); with
    ``restore`` the with-restoration file of the pair, its dehazed output included."""
    images = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, size, size])
    names = [*MAP_OUTPUT_NAMES, *([DEHAZED_OUTPUT_NAME] if restore else [])]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in names]
    nodes = [helper.make_node("Identity", [INPUT_NAME], [name]) for name in names]
    model = helper.make_model(
        helper.make_graph(nodes, "tiny", [images], outputs),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    for key, value in {
        "format": ONNX_FORMAT,
        "input_size": f"{size}x{size}",
        "restore": "1" if restore else "0",
        "class_names": json.dumps(["a", "b"]),
        "untrained": "0",
        **metadata,
    }.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"togethernet.{key}", value
    path = folder / ("tiny.onnx" if restore else "tiny.detect.onnx")
    onnx.save(model, str(path))
    return path


class FakeOrt:
    """Stands in for onnxruntime-gpu: `drop` providers fail to load, `fail` ones raise (only
    for files named ``fail_only_for``, when given)."""

    def __init__(
        self,
        drop: set[str] = frozenset(),
        fail: set[str] = frozenset(),
        fail_only_for: str | None = None,
    ) -> None:
        self.built: list[dict[str, object]] = []
        fake = self

        class Session:
            def __init__(self, path, sess_options=None, providers=(), provider_options=(), **kw):
                fake.built.append(
                    {
                        "path": Path(path).name,
                        "providers": list(providers),
                        "options": [dict(o) for o in provider_options],
                        "kwargs": kw,
                    }
                )
                failing = fail_only_for is None or Path(path).name == fail_only_for
                if failing and fail & set(providers):
                    raise RuntimeError(f"{sorted(fail & set(providers))} failed to initialise")
                self._providers = [name for name in providers if name not in drop]

            def get_providers(self) -> list[str]:
                return list(self._providers)

        self.Session = Session

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(onnxruntime, "InferenceSession", self.Session)
        monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [TENSORRT, CUDA, CPU])
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_sessions_never_use_onnxruntimes_optionless_fallback(tmp_path, monkeypatch):
    # onnxruntime's own fallback (enable_fallback=1, the default) retries a session that
    # raised on CUDA (device 0) + CPU without any provider options, and prints to stdout.
    fake = FakeOrt(fail={TENSORRT})
    fake.install(monkeypatch)
    detector = OnnxRuntimeDetector(
        tiny_detect_file(tmp_path), device="cuda:1", cache_dir=tmp_path / "cache"
    )
    assert detector.provider == CUDA
    assert [build["providers"][0] for build in fake.built] == [TENSORRT, CUDA]
    assert all(build["kwargs"].get("enable_fallback") == 0 for build in fake.built)
    # The chain's own fallback keeps this detector's options (device 1, TF32 off for fp32).
    cuda_options = fake.built[1]["options"][0]
    assert cuda_options["device_id"] == 1 and cuda_options["use_tf32"] is False


def test_installed_onnxruntime_understands_enable_fallback(tmp_path):
    session = onnxruntime.InferenceSession(
        str(tiny_detect_file(tmp_path)), providers=[CPU], enable_fallback=0
    )
    assert session._enable_fallback is False  # the attribute Session.__init__ sets from it
    images = np.zeros((2, 3, 32, 32), np.float32)
    assert session.run([MAP_OUTPUT_NAMES[0]], {INPUT_NAME: images})[0].shape == images.shape


def test_tensorrt_library_missing_keeps_the_session_built_without_it(tmp_path, monkeypatch, caplog):
    # onnxruntime-gpu without libnvinfer: TensorRT is skipped with a log line, and the session
    # of the first chain IS the CUDA + CPU session of the second; it is not built twice.
    fake = FakeOrt(drop={TENSORRT})
    fake.install(monkeypatch)
    with caplog.at_level("WARNING", logger="togethernet_ros"):
        detector = OnnxRuntimeDetector(
            tiny_detect_file(tmp_path), device="cuda:1", precision="fp16", cache_dir=tmp_path
        )
    assert len(fake.built) == 1
    assert fake.built[0]["providers"] == [TENSORRT, CUDA, CPU]
    assert fake.built[0]["options"][1]["device_id"] == 1
    assert detector.provider == CUDA and detector.runs_on_gpu
    assert detector.backend == "onnxruntime-CUDAExecutionProvider"
    assert "TensorrtExecutionProvider did not initialise" in caplog.text
    assert "fp16 needs the TensorRT provider" in caplog.text


def test_gpu_libraries_missing_keeps_the_cpu_session(tmp_path, monkeypatch, caplog):
    # Neither GPU provider loads (no CUDA/cuDNN): what is left, [CPU], is the last chain.
    fake = FakeOrt(drop={CUDA, TENSORRT})
    fake.install(monkeypatch)
    with caplog.at_level("WARNING", logger="togethernet_ros"):
        detector = OnnxRuntimeDetector(
            tiny_detect_file(tmp_path), device="cuda", cache_dir=tmp_path
        )
    assert len(fake.built) == 1 and detector.provider == CPU and not detector.runs_on_gpu
    assert "device cuda requested, but onnxruntime falls back to the CPU" in caplog.text


def test_int8_export_does_not_try_tensorrt(tmp_path, monkeypatch, caplog):
    # Its activations are uint8 with non-zero zero points; TensorRT takes symmetric int8 only.
    fake = FakeOrt()
    fake.install(monkeypatch)
    with caplog.at_level("WARNING", logger="togethernet_ros"):
        detector = OnnxRuntimeDetector(
            tiny_detect_file(tmp_path, precision="int8"), device="cuda", cache_dir=tmp_path
        )
    assert [build["providers"] for build in fake.built] == [[CUDA, CPU]]
    assert detector.backend == "onnxruntime-CUDAExecutionProvider-int8"
    assert "TensorRT cannot run" in caplog.text
    assert not (tmp_path / "tensorrt").exists()  # no engine cache made for it either


def test_provider_options_pass_onnxruntimes_checks(tmp_path):
    chains = provider_chains(
        "cuda:1", "fp16", tmp_path, (384, 640), 8, [TENSORRT, CUDA, CPU], engine_dir=tmp_path
    )
    names = [name for name, _ in chains[0]]
    # What InferenceSession does to the options before the binding parses them: str() each.
    _, normalised = check_and_normalize_provider_args(
        names, [options for _, options in chains[0]], [TENSORRT, CUDA, CPU]
    )
    tensorrt, cuda, cpu = normalised
    assert set(tensorrt) <= TENSORRT_OPTIONS_1_31 and set(cuda) <= CUDA_OPTIONS_1_31 and not cpu
    for key, value in tensorrt.items():
        if key.endswith(("_enable", "_cache")):
            assert value in TENSORRT_BOOLEANS, (key, value)
    assert tensorrt["device_id"] == "1" and int(tensorrt["trt_max_workspace_size"]) == 4 << 30
    for key in ("trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes"):
        assert re.fullmatch(rf"{INPUT_NAME}:\d+x3x384x640", tensorrt[key]), tensorrt[key]
    # The CUDA provider parses booleans as 0/1/true/false/True/False and the search by name.
    assert cuda == {
        "device_id": "1",
        "cudnn_conv_algo_search": "EXHAUSTIVE",
        "do_copy_in_default_stream": "True",
        "use_tf32": "True",
    }


def test_a_restoration_model_on_another_provider_is_named_in_the_backend(
    tmp_path, monkeypatch, caplog
):
    # TensorRT builds the detection file but not the decoder: every batch with dehazed output
    # would run the whole model on CUDA (or the CPU) while /diagnostics said TensorRT.
    fake = FakeOrt(fail={TENSORRT}, fail_only_for="tiny.onnx")
    fake.install(monkeypatch)
    tiny_detect_file(tmp_path)
    tiny_detect_file(tmp_path, restore=True)
    with caplog.at_level("WARNING", logger="togethernet_ros"):
        detector = OnnxRuntimeDetector(
            tmp_path / "tiny.onnx", device="cuda", precision="fp16", cache_dir=tmp_path / "c"
        )
        assert detector.provider == TENSORRT
        detector._session(restore=True)
    assert detector.backend == (
        "onnxruntime-TensorrtExecutionProvider-fp16 (restoration: CUDAExecutionProvider)"
    )
    assert "the with-restoration model runs on CUDAExecutionProvider" in caplog.text
    assert caplog.text.count("with-restoration model runs on") == 1


def test_a_lone_restoration_file_is_loaded_once_for_both_outputs(tmp_path, monkeypatch):
    fake = FakeOrt()
    fake.install(monkeypatch)
    detector = OnnxRuntimeDetector(
        tiny_detect_file(tmp_path, restore=True), device="cuda", cache_dir=tmp_path / "c"
    )
    assert detector._session(restore=False) is detector._session(restore=True)
    assert [build["path"] for build in fake.built] == ["tiny.onnx"]
    assert detector.backend == "onnxruntime-TensorrtExecutionProvider"  # fp32 asked


def test_a_closed_detector_builds_no_session_again(tmp_path, monkeypatch):
    fake = FakeOrt()
    fake.install(monkeypatch)
    detector = OnnxRuntimeDetector(tiny_detect_file(tmp_path), device="cuda", cache_dir=tmp_path)
    assert detector.runs_on_gpu
    built = len(fake.built)
    detector.close()
    # Diagnostics may still ask where it ran; that must not load the model (and GPU memory).
    assert detector.provider == TENSORRT and detector.runs_on_gpu
    assert len(fake.built) == built
    with pytest.raises(RuntimeError, match="detector is closed"):
        detector._session(restore=False)


def test_cpu_sessions_get_a_thread_per_usable_cpu(tmp_path, monkeypatch):
    # os.cpu_count() counts the host's cores, not a taskset's or a container quota's.
    monkeypatch.setattr(onnx_detector, "usable_cpus", lambda: 1)
    detector = OnnxRuntimeDetector(tiny_detect_file(tmp_path), device="cpu", cache_dir=tmp_path)
    session = detector._session(restore=False)
    assert session.get_session_options().intra_op_num_threads == 1
    explicit = OnnxRuntimeDetector(
        tiny_detect_file(tmp_path), device="cpu", cache_dir=tmp_path, num_threads=3
    )
    assert explicit._session(restore=False).get_session_options().intra_op_num_threads == 3


@pytest.mark.parametrize(
    ("message", "about_the_cache"),
    [
        ("TensorRT EP could not deserialize engine from cache: /c/x.engine", True),
        ("TensorRT EP: Engine deserialization failed for /c/x.engine", True),
        ("TensorRT EP failed to load the timing cache /c/x.timing", True),
        ("TensorRT EP could not build engine for fused node: TRTKernel_graph_1", False),
        ("TensorRT EP failed to create engine from network (out of memory)", False),
    ],
)
def test_only_cache_load_errors_clear_the_engine_cache(message, about_the_cache):
    # A build failure is not cured by deleting the good engines: it fails the same way again.
    assert onnx_detector._about_engines(RuntimeError(message)) is about_the_cache
