"""Training samples for the trainer: (hazy, clean, boxes, labels, difficult, image_id).

Each clear pseudo-labelled frame is fogged with the atmospheric scattering model at a random
density. The dataset lists every frame ``fog_variants`` times, each copy with its own density
drawn from (seed, frame, variant): the fog is random per sample yet reproducible, independent of
DataLoader workers, and resumable (the trainer only passes an index).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from torch.utils.data import Dataset

from togethernet_ros.distill.pseudo_labels import LabelledFrame, PseudoLabelSet
from togethernet_ros.vision.fog import DepthCache, add_fog


@dataclass(frozen=True)
class FogSettings:
    """Density range (β of t = exp(−β·d)), atmospheric light and its jitter."""

    beta_min: float = 0.02
    beta_max: float = 0.16
    airlight: float = 0.5
    airlight_jitter: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta_min <= self.beta_max:
            raise ValueError(
                f"need 0 <= beta_min <= beta_max, got {self.beta_min}, {self.beta_max}"
            )
        if not 0.0 <= self.airlight <= 1.0 or self.airlight_jitter < 0:
            raise ValueError(f"airlight {self.airlight} ± {self.airlight_jitter} is not in [0, 1]")

    def draw(self, rng: np.random.Generator) -> tuple[float, float]:
        """A random (β, A) pair."""
        beta = float(rng.uniform(self.beta_min, self.beta_max))
        jitter = float(rng.uniform(-1.0, 1.0)) * self.airlight_jitter
        return beta, float(np.clip(self.airlight + jitter, 0.0, 1.0))


class FoggyPseudoLabelled(Dataset):
    """Fogged copies of pseudo-labelled frames; images RGB uint8 at source size."""

    def __init__(
        self,
        label_set: PseudoLabelSet,
        frames: list[LabelledFrame],
        fog: FogSettings,
        seed: int = 0,
        fog_variants: int = 1,
    ):
        if fog_variants < 1:
            raise ValueError(f"fog_variants must be >= 1, got {fog_variants}")
        if not frames:
            raise ValueError("no frames to train on (every frame is held out or the set is empty)")
        self.label_set = label_set
        self.frames = frames
        self.fog = fog
        self.seed = seed
        self.fog_variants = fog_variants
        self._depth = DepthCache()

    def __len__(self) -> int:
        return len(self.frames) * self.fog_variants

    # Indexed by (epoch, index) by AugmentedPairs: each epoch fogs a frame anew.
    varies_by_epoch = True

    def fog_parameters(self, index: int, epoch: int = 0) -> tuple[float, float]:
        """(β, A) of sample ``index`` in ``epoch``: a pure function of (seed, epoch, frame,
        variant). Drawn per epoch, so over a run each frame meets many fog densities, not
        only its ``fog_variants`` (default 2) fixed ones."""
        frame_index, variant = divmod(index, self.fog_variants)
        return self.fog.draw(np.random.default_rng([self.seed, epoch, frame_index, variant]))

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range 0..{len(self) - 1}")
        frame = self.frames[index // self.fog_variants]
        clean = cv2.cvtColor(self.label_set.read_clear_bgr(frame), cv2.COLOR_BGR2RGB)
        beta, airlight = self.fog_parameters(index, epoch)
        hazy = add_fog(clean, beta, airlight, self._depth.get(*clean.shape[:2]))
        difficult = np.zeros(len(frame.labels), bool)
        image_id = f"{frame.source}_{frame.frame_index:06d}_v{index % self.fog_variants}"
        return hazy, clean, frame.boxes.copy(), frame.labels.copy(), difficult, image_id
