"""Each metric against a value computed by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from im2im_core.metrics import (
    average_precision,
    detect_kind,
    dice,
    iou,
    iou_matrix,
    matched_pairs,
    mean_average_precision,
    pearson,
    psnr,
    score,
    ssim,
)


def test_dice_and_iou_of_two_masks():
    pred = np.array([[1, 1], [0, 0]])
    target = np.array([[1, 0], [1, 0]])
    # one shared pixel, two pixels each: Dice 2*1/(2+2), IoU 1/3
    assert dice(pred, target) == pytest.approx(0.5)
    assert iou(pred, target) == pytest.approx(1 / 3)


def test_masks_use_foreground_and_two_empty_masks_score_one():
    assert dice(np.array([0, 7, 7]), np.array([0, 1, 1])) == pytest.approx(1.0)
    assert dice(np.zeros(4), np.zeros(4)) == 1.0
    assert iou(np.zeros(4), np.zeros(4)) == 1.0


def test_pearson():
    # x - mean = (-1, 0, 1); y - mean = (-7/3, -1/3, 8/3); cov 5, var 2 and 38/3
    assert pearson(np.array([1, 2, 3]), np.array([2, 4, 7])) == pytest.approx(5 / math.sqrt(2 * 38 / 3))


def test_psnr():
    target = np.array([0.0, 1.0, 2.0, 3.0])
    pred = np.array([0.0, 1.0, 2.0, 4.0])
    # range 3, MSE 1/4: 10 log10(9 / 0.25)
    assert psnr(pred, target) == pytest.approx(10 * math.log10(36))
    assert psnr(target, target) == math.inf


def test_ssim_single_window_matches_the_formula():
    """On a 7x7 image scikit-image's 7x7 window sees the whole image once: the textbook formula."""
    rng = np.random.default_rng(0)
    x, y = rng.random((7, 7)), rng.random((7, 7))
    n, c1, c2 = x.size, 0.01**2, 0.03**2
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(ddof=1), y.var(ddof=1)
    cxy = ((x - mx) * (y - my)).sum() / (n - 1)
    expected = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert ssim(x, y, data_range=1.0) == pytest.approx(expected, rel=1e-9)
    assert ssim(x, x, data_range=1.0) == pytest.approx(1.0)


def _labels() -> tuple[np.ndarray, np.ndarray]:
    target = np.zeros((4, 10), dtype=np.uint16)
    pred = np.zeros((4, 10), dtype=np.uint16)
    target[0, 0:4] = 1   # A, 4 pixels
    pred[0, 0:4] = 5     # A' == A: IoU 1
    target[1, 0:6] = 2   # B, 6 pixels
    pred[1, 1:6] = 9     # B': 5 pixels of B ...
    pred[2, 0:2] = 9     # ... and 2 more: IoU 5 / (6 + 7 - 5) = 0.625
    target[3, 0:2] = 3   # C: missed (false negative)
    pred[3, 8:10] = 4    # D': nothing there (false positive)
    return pred, target


def test_iou_matrix_follows_sorted_labels():
    pred, target = _labels()
    expected = np.array([[0, 0, 0], [1, 0, 0], [0, 0.625, 0]])  # rows: labels 4, 5, 9
    np.testing.assert_allclose(iou_matrix(pred, target), expected)


def test_average_precision_at_half_and_over_thresholds():
    pred, target = _labels()
    # IoU >= 0.5: A and B matched, D' false positive, C missed: 2 / (2 + 1 + 1)
    assert average_precision(pred, target, 0.5) == pytest.approx(0.5)
    # from 0.65 on only A matches: 1 / (1 + 2 + 2)
    assert average_precision(pred, target, 0.65) == pytest.approx(0.2)
    # 0.5, 0.55, 0.6 give 0.5; 0.65 ... 0.95 give 0.2
    assert mean_average_precision(pred, target) == pytest.approx((3 * 0.5 + 7 * 0.2) / 10)
    assert average_precision(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0


def test_matching_is_one_to_one_and_maximal_below_half():
    """Greedy matching by highest IoU pairs p0-g0 and stops; the Hungarian solver finds two pairs."""
    ious = np.array([[0.45, 0.35],
                     [0.40, 0.00]])
    assert matched_pairs(ious, 0.3) == 2
    assert matched_pairs(ious, 0.42) == 1
    assert matched_pairs(np.array([[0.9, 0.9]]), 0.5) == 1


def test_detect_kind_and_score_rows():
    assert detect_kind(np.zeros(3, np.float32)) == "intensity"
    assert detect_kind(np.array([0, 1], np.uint8)) == "mask"
    assert detect_kind(np.array([0, 2], np.uint16)) == "labels"
    pred, target = _labels()
    row = score(pred, target, "labels")
    assert row == pytest.approx({"ap50": 0.5, "ap50_95": 0.29, "n_pred": 3, "n_gt": 3})
    assert score(pred, target, "mask")["dice"] == pytest.approx(dice(pred, target))
    with pytest.raises(ValueError):
        score(pred, target, "boxes")
