"""How many CPU threads inference may use: one rule for `predict`, the node and `bag run`."""

from __future__ import annotations


def limit_cpu_threads(num_threads: int | None) -> int | None:
    """Bound torch's CPU threads to ``num_threads``; return the count for `create_detector`.

    None or 0 leaves torch's default (every core) and returns None, which gives ONNX Runtime
    its default too. torch's intra-op thread pool is one per process, so the limit holds for
    every torch operation in the process, not only this model's. It is set for both backends:
    the onnxruntime backend letterboxes and runs NMS in torch, and its sessions take the
    returned count (`create_detector(num_threads=...)`, intra_op_num_threads).
    """
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, type(None))):
        raise ValueError(f"num_threads must be an integer (0: every core), got {num_threads!r}")
    if num_threads is not None and num_threads < 0:
        raise ValueError(f"num_threads must be >= 0 (0: every core), got {num_threads!r}")
    if not num_threads:
        return None
    import torch  # here: importing the inference package must stay cheap

    torch.set_num_threads(num_threads)
    return num_threads
