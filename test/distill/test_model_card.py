"""write_model_card: fp16 weights, the card's margin over the teacher, and its scope notes."""

from __future__ import annotations

import torch

from togethernet_ros.distill.model_card import sha256_of, write_model_card
from togethernet_ros.model import TogetherNetConfig, build_model, load_checkpoint

NAMES = ("person", "bicycle", "car", "motorbike", "bus")


def _report() -> dict:
    def row(beta, student, teacher):
        return {
            "beta": beta,
            "student_map": student,
            "teacher_map": teacher,
            "dehazed_psnr": 20.0,
            "dehazed_ssim": 0.7,
            "hazy_psnr": None if beta == 0 else 14.0,
            "hazy_ssim": 1.0 if beta == 0 else 0.6,
            "student_ap": {"person": student, "car": 0.9, "bus": None},
            "teacher_ap": {"person": teacher, "car": 0.8, "bus": None},
            "student_at_score": {"score": 0.3, "precision": 0.75, "recall": 0.5},
            "teacher_at_score": {"score": 0.3, "precision": 0.6, "recall": 0.25},
        }

    return {
        "heldout_frames": 3,
        "num_gt": {"person": 7, "car": 2, "bus": 0},
        "airlight": 0.5,
        "operating_score": 0.3,
        "rows": [row(0.0, 0.62, 1.0), row(0.15, 0.55, 0.125), row(0.2, None, 0.1)],
    }


def test_card_states_margin_over_teacher_and_notes(tmp_path):
    model = build_model(config=TogetherNetConfig(num_classes=5, width=0.125, depth=0.33))
    recipe = {"input_size": 128, "epochs": 1, "class_mapping": {"truck": "car"}}
    weights, card, digest = write_model_card(
        tmp_path / "tiny.pt",
        model,
        NAMES,
        recipe,
        {"sources": "vtest.avi"},
        _report(),
        notes="Detects mostly people.",
    )
    text = card.read_text()
    assert digest == sha256_of(weights) and f"`{digest}`" in text
    assert "| 0.000 | 0.620 | 1.000 | -0.380 |" in text
    assert "| 0.150 | 0.550 | 0.125 | +0.425 |" in text
    assert "| 0.200 | – | 0.100 | – |" in text  # no student figure → no margin
    # Per-class AP only for classes with ground truth; precision/recall at the node's threshold.
    assert "| fog β | person: TogetherNet / teacher | car: TogetherNet / teacher |" in text
    assert "| 0.150 | 0.550 / 0.125 | 0.900 / 0.800 |" in text and "bus:" not in text
    assert "At score ≥ 0.3" in text and "| 0.000 | 0.750 / 0.500 | 0.600 / 0.250 |" in text
    assert "## Scope and limitations\n\nDetects mostly people.\n" in text
    assert text.index("## Scope and limitations") < text.index("## Licence notes")
    raw = torch.load(weights, weights_only=True)
    assert {v.dtype for v in raw["state_dict"].values() if v.is_floating_point()} == {torch.float16}
    loaded = load_checkpoint(weights)
    assert loaded.class_names == NAMES and loaded.metadata["input_size"] == 128
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(loaded.model.state_dict()[key], value.half().float())


def test_card_without_notes_has_no_scope_section(tmp_path):
    model = build_model(config=TogetherNetConfig(num_classes=5, width=0.125, depth=0.33))
    _, card, _ = write_model_card(tmp_path / "tiny.pt", model, NAMES, {}, {}, _report())
    assert "Scope and limitations" not in card.read_text()
