"""PR-curve plots name the IoU their AP was computed at (`eval --iou 0.75` is not AP@0.5)."""

import matplotlib.pyplot as plt

from togethernet_ros.evaluation.pr_curves import curve_figure
from togethernet_ros.evaluation.records import ImageDetections, ImageGroundTruth
from togethernet_ros.evaluation.voc_map import evaluate_voc


def test_the_title_states_the_iou_threshold_of_the_curve():
    truth = {"a": ImageGroundTruth([[0, 0, 9, 9]], [0])}
    # IoU 0.6 (+1 pixel): a hit at 0.5, a miss at 0.75.
    found = {"a": ImageDetections([[0, 0, 9, 5]], [0.9], [0])}
    for iou, ap in ((0.5, 1.0), (0.75, 0.0)):
        curve = evaluate_voc(found, truth, ["car"], iou, return_curves=True)["curves"]["car"]
        assert curve.ap == ap
        figure = curve_figure("car", curve, iou)
        try:
            assert figure.axes[0].get_title() == f"car: AP@{iou:g} = {ap:.4f} (1 objects)"
        finally:
            plt.close(figure)
