"""From raw (hazy, clean, boxes, labels) samples to augmented, collated training batches.

Augmentation randomness is drawn from a generator seeded by (seed, epoch, sample index), so a
batch does not depend on worker count, worker scheduling or on whether the run was resumed.
The sampler tags each index with its epoch, and one sampler spans the whole run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from togethernet_ros.training.paired_augmentation import (
    AugmentationConfig,
    paired_letterbox,
    paired_random_augment,
)


class EpochSpanSampler(Sampler):
    """Yields ``(epoch, index)`` for a run of epochs in a row, each cut to whole batches.

    One DataLoader iterator then spans the whole run, so its workers start on the next epoch's
    batches while the current epoch finishes. With one iterator per epoch, every epoch began
    with the GPU waiting while each worker built a whole batch (0.8 s of a 2 s epoch when
    distilling the demo weights on an H100). Each epoch's order is the wrapped sampler's for that
    epoch (``set_epoch``), and its last partial batch is dropped, as ``drop_last`` did.
    """

    def __init__(self, sampler: Sampler, batch_size: int, first_epoch: int, end_epoch: int):
        self.sampler = sampler
        self.batch_size = batch_size
        self.first_epoch = first_epoch
        self.end_epoch = end_epoch

    @property
    def steps_per_epoch(self) -> int:
        """Whole batches per epoch."""
        return len(self.sampler) // self.batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        whole = self.steps_per_epoch * self.batch_size
        for epoch in range(self.first_epoch, self.end_epoch):
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(epoch)
            indices = list(self.sampler)[:whole]
            yield from ((epoch, int(index)) for index in indices)

    def __len__(self) -> int:
        return max(0, self.end_epoch - self.first_epoch) * self.steps_per_epoch * self.batch_size


class AugmentedPairs(Dataset):
    """Turns raw samples into (hazy uint8 3×H×W, clean uint8 3×H×W, targets n×5) tensors.

    Targets are ``[class, cx, cy, w, h]`` in input pixels. Index with ``(epoch, i)``; a plain
    ``i`` means epoch 0.
    """

    def __init__(
        self,
        samples: Dataset,
        input_size: tuple[int, int],
        seed: int,
        augment: bool = True,
        augmentation: AugmentationConfig | None = None,
        keep_difficult: bool = False,
    ):
        self.samples = samples
        self.input_size = input_size
        self.seed = seed
        self.augment = augment
        self.augmentation = augmentation or AugmentationConfig()
        self.keep_difficult = keep_difficult

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(
        self, key: int | tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        # A dataset that draws per epoch (distill's synthetic fog) gets the epoch too.
        varies = getattr(self.samples, "varies_by_epoch", False)
        sample = self.samples[(epoch, index)] if varies else self.samples[index]
        hazy, clean, boxes, labels = sample[:4]
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        labels = np.asarray(labels, np.int64).reshape(-1)
        if not self.keep_difficult and len(sample) > 4:
            # Upstream's voc_annotation.py leaves difficult objects out of training.
            easy = ~np.asarray(sample[4], bool).reshape(-1)
            boxes, labels = boxes[easy], labels[easy]
        if self.augment:
            rng = np.random.default_rng([self.seed, epoch, index])
            hazy, clean, boxes, keep = paired_random_augment(
                hazy, clean, boxes, self.input_size, rng, self.augmentation
            )
        else:
            hazy, clean, boxes, keep = paired_letterbox(hazy, clean, boxes, self.input_size)
        labels = labels[keep]
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        sizes = boxes[:, 2:] - boxes[:, :2]
        targets = np.concatenate([labels[:, None].astype(np.float32), centres, sizes], axis=1)
        return (
            torch.from_numpy(np.ascontiguousarray(hazy.transpose(2, 0, 1))),
            torch.from_numpy(np.ascontiguousarray(clean.transpose(2, 0, 1))),
            torch.from_numpy(targets.reshape(-1, 5)),
        )


def collate_pairs(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Stack images; keep per-image target tensors in a list (object counts differ)."""
    hazy, clean, targets = zip(*batch, strict=True)
    return torch.stack(hazy), torch.stack(clean), list(targets)
