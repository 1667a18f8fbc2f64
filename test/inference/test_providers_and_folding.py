"""Execution-provider chains and BatchNorm folding."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from togethernet_ros.inference.batch_norm_folding import fold_batch_norms
from togethernet_ros.inference.onnx_providers import CPU, CUDA, TENSORRT, provider_chains


def test_cpu_device_uses_only_the_cpu_provider():
    chains = provider_chains("cpu", "fp32", Path("/c"), (640, 640), 16, [TENSORRT, CUDA, CPU])
    assert chains == [[(CPU, {})]]


def test_gpu_chain_prefers_tensorrt_then_cuda_then_cpu():
    chains = provider_chains("cuda:1", "fp16", Path("/c"), (384, 640), 8, [TENSORRT, CUDA, CPU])
    assert [[name for name, _ in chain] for chain in chains] == [
        [TENSORRT, CUDA, CPU],
        [CUDA, CPU],
        [CPU],
    ]
    tensorrt = chains[0][0][1]
    assert tensorrt["device_id"] == 1 and tensorrt["trt_fp16_enable"] is True
    assert tensorrt["trt_engine_cache_enable"] is True
    assert tensorrt["trt_engine_cache_path"] == str(Path("/c") / "tensorrt")
    assert tensorrt["trt_profile_min_shapes"] == "images:1x3x384x640"
    assert tensorrt["trt_profile_max_shapes"] == "images:8x3x384x640"
    fp32 = provider_chains("cuda", "fp32", Path("/c"), (640, 640), 8, [TENSORRT, CUDA, CPU])
    assert fp32[0][0][1]["trt_fp16_enable"] is False
    assert fp32[1][0] == (CUDA, fp32[1][0][1]) and fp32[1][0][1]["use_tf32"] is False
    # "auto" (the node's default): TensorRT in fp16, the CUDA provider with TF32.
    auto = provider_chains("cuda", "auto", Path("/c"), (640, 640), 8, [TENSORRT, CUDA, CPU])
    assert auto[0][0][1]["trt_fp16_enable"] is True and auto[1][0][1]["use_tf32"] is True


def test_gpu_request_without_gpu_providers_ends_on_the_cpu():
    assert provider_chains("cuda", "fp16", Path("/c"), (640, 640), 8, [CPU]) == [[(CPU, {})]]
    only_cuda = provider_chains("cuda", "fp32", Path("/c"), (640, 640), 8, [CUDA, CPU])
    assert [[name for name, _ in chain] for chain in only_cuda] == [[CUDA, CPU], [CPU]]


def test_batch_norm_folding_keeps_the_function(informative_model):
    folded = copy.deepcopy(informative_model)
    assert fold_batch_norms(folded) == 80
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    images = torch.randn(1, 3, 128, 256, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected, got = informative_model(images), folded(images)
    for want, have in zip(expected.maps, got.maps, strict=True):
        torch.testing.assert_close(have, want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got.dehazed, expected.dehazed, rtol=1e-4, atol=2e-4)


def test_batch_norm_folding_needs_eval_mode():
    block = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match="eval-mode"):
        fold_batch_norms(block)
    assert fold_batch_norms(block.eval()) == 1
    assert isinstance(block[1], nn.Identity)
