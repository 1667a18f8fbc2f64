"""Batch-1 latency experiment on a GPU: how much of `detect()` can one CUDA graph absorb?

On an H100 (2026-11-26) batch-1 `detect()` of a real 768×576 frame at 640×640 took 3.89 ms, of
which the forward pass (already a CUDA graph) is 2.34 ms; the rest is ~15 kernels of
pre-processing and ~25 of decoding launched one by one from Python, plus host syncs. This script
times, on the same frame and weights:

  current   `Detector.detect()` as shipped;
  graphed   one CUDA graph per source size holding upload buffer → letterbox → normalise →
            forward → decode → per-anchor score and class; only the upload copy (from pinned
            memory), thresholding, NMS and the copy of the kept boxes run eagerly.

and checks that both give the same detections. If `graphed` wins clearly, fold it into
`TorchDetector` (keyed by batch size, restore flag and the batch's source sizes).

    python benchmarks/gpu_latency_experiment.py --weights models/togethernet_vtest_384.pt \\
        --source vtest.avi [--size 640] [--iterations 200]

`--device cpu` runs both paths eagerly (no graph) to check the plumbing without a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from togethernet_ros.inference.factory import create_detector
from togethernet_ros.inference.int8_quantization import calibration_frames
from togethernet_ros.vision.decode import decode_outputs
from togethernet_ros.vision.letterbox import PAD_VALUE, LetterboxInfo, letterbox_into
from togethernet_ros.vision.nms import batched_nms
from togethernet_ros.vision.postprocess import unletterbox_boxes
from togethernet_ros.vision.preprocess import normalize_canvas

STRIDES = (8, 16, 32)


class GraphedDetector:
    """Batch 1, fixed source size: everything up to per-anchor scores in one CUDA graph."""

    def __init__(self, detector, frame_shape: tuple[int, int, int], use_graph: bool) -> None:
        self.detector = detector
        self.device = detector.device
        height, width = frame_shape[:2]
        self.info = LetterboxInfo.compute((height, width), detector.input_size)
        self.host = torch.empty(frame_shape, dtype=torch.uint8, pin_memory=use_graph)
        self.frame = torch.empty(frame_shape, dtype=torch.uint8, device=self.device)
        self.graph = None
        if use_graph:
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream), torch.inference_mode():
                for _ in range(2):  # cuDNN autotuning and lazy allocations, outside the capture
                    self.outputs = self._static_part()
            torch.cuda.current_stream(self.device).wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph), torch.inference_mode():
                self.outputs = self._static_part()

    def _static_part(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        height, width = self.detector.input_size
        canvas = torch.full(
            (1, 3, height, width), PAD_VALUE, dtype=torch.uint8, device=self.device
        ).contiguous(memory_format=torch.channels_last)
        image = self.frame.permute(2, 0, 1).unsqueeze(0)
        letterbox_into(canvas[0], image, self.info)
        batch = normalize_canvas(canvas, "bgr").to(
            dtype=self.detector.dtype, memory_format=self.detector.memory_format
        )
        output = self.detector.model(batch, restore=False)
        decoded = decode_outputs(output.maps, STRIDES, self.detector.input_size)[0]
        class_conf, class_ids = decoded[:, 5:].max(dim=-1)
        return decoded[:, :4], decoded[:, 4] * class_conf, class_ids

    def detect(self, frame: np.ndarray, conf: float, nms: float):
        self.host.numpy()[...] = frame
        self.frame.copy_(self.host, non_blocking=True)
        if self.graph is not None:
            self.graph.replay()
            boxes, scores, class_ids = self.outputs
        else:
            with torch.inference_mode():
                boxes, scores, class_ids = self._static_part()
        keep_mask = scores >= conf
        index = keep_mask.nonzero().squeeze(1)
        rows = boxes[index]
        corners = torch.cat((rows[:, :2] - rows[:, 2:] / 2, rows[:, :2] + rows[:, 2:] / 2), 1)
        kept = batched_nms(corners, scores[index], class_ids[index], nms)
        packed = torch.cat(
            (corners[kept], scores[index][kept, None], class_ids[index][kept, None].float()), 1
        ).cpu()
        packed = packed.numpy()
        return unletterbox_boxes(packed[:, :4], self.info), packed[:, 4], packed[:, 5]


def same_detections(reference, boxes, scores, class_ids, box_tolerance: float = 1.0) -> bool:
    """Same count, and after sorting by score the same classes and boxes within tolerance."""
    if len(boxes) != len(reference):
        return False
    if len(boxes) == 0:
        return True
    mine, theirs = np.argsort(-scores), np.argsort(-reference.scores)
    return bool(
        np.array_equal(class_ids[mine].astype(np.int64), reference.class_ids[theirs])
        and np.abs(boxes[mine] - reference.boxes[theirs]).max() <= box_tolerance
    )


def timed(function, iterations: int, device: str) -> float:
    for _ in range(10):
        function()
    samples = []
    for _ in range(iterations):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return 1e3 * float(np.median(samples))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--source", required=True, help="image, folder or video")
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    on_gpu = args.device.startswith("cuda")
    detector = create_detector(
        args.weights,
        device=args.device,
        precision="fp16" if on_gpu else "fp32",
        input_size=(args.size, args.size),
        conf_threshold=0.3,
        nms_threshold=0.45,
        max_batch_size=1,
    )
    frames = calibration_frames(args.source, 3)
    frame = frames[len(frames) // 2]
    graphed = GraphedDetector(detector, frame.shape, use_graph=on_gpu)
    (reference,) = detector.detect([frame])
    boxes, scores, class_ids = graphed.detect(frame, 0.3, 0.45)
    agree = same_detections(reference.detections, boxes, scores, class_ids)
    iterations = args.iterations if on_gpu else 3
    result = {
        "device": torch.cuda.get_device_name() if on_gpu else "cpu",
        "input": args.size,
        "frame": list(frame.shape),
        "detections": len(reference.detections),
        "same_detections": bool(agree),
        "current_ms": timed(lambda: detector.detect([frame]), iterations, args.device),
        "graphed_ms": timed(lambda: graphed.detect(frame, 0.3, 0.45), iterations, args.device),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
