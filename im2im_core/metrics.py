"""Image metrics on whole images, thin wrappers over MONAI, torchmetrics, scikit-image and scipy.

Masks: :func:`dice` (= F1 of the foreground pixels) and :func:`iou`. Intensities: :func:`pearson`,
:func:`ssim`, :func:`psnr`. Instance labels: :func:`average_precision` with one-to-one matching.
Every function takes two arrays of equal shape (numpy or torch) and returns a float.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import compute_dice, compute_iou
from torchmetrics.functional import pearson_corrcoef

#: IoU thresholds of :func:`mean_average_precision`: 0.5, 0.55, ..., 0.95.
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def _foreground(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(1, 1, N)`` float tensor of ``array > 0``, the layout MONAI's metrics expect."""
    return torch.as_tensor(np.asarray(array) > 0).float().reshape(1, 1, -1)


def dice(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """Dice coefficient (F1 score of the pixels) of two masks (foreground = value > 0).

    Two empty masks score 1.
    """
    return float(compute_dice(_foreground(pred), _foreground(target), include_background=True, ignore_empty=False).item())


def iou(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """Intersection over union (Jaccard index) of two masks (foreground = value > 0).

    Two empty masks score 1.
    """
    return float(compute_iou(_foreground(pred), _foreground(target), include_background=True, ignore_empty=False).item())


def pearson(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """Pearson correlation of two intensity images of equal shape, over all pixels."""
    pred_t = torch.as_tensor(np.asarray(pred, dtype=np.float64)).flatten()
    target_t = torch.as_tensor(np.asarray(target, dtype=np.float64)).flatten()
    return float(pearson_corrcoef(pred_t, target_t).item())


def _data_range(target: np.ndarray) -> float:
    """Range of the target's values (max - min), the peak of SSIM and PSNR; 1 for a flat target."""
    value = float(np.max(target) - np.min(target))
    return value if value > 0 else 1.0


def ssim(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, data_range: float | None = None) -> float:
    """Structural similarity (scikit-image, 7-pixel uniform window) of two intensity images.

    The images are 2D or 3D (axes of length 1 are dropped first). ``data_range`` defaults to
    the target's ``max - min``. An image thinner than 7 pixels along an axis uses the largest
    odd window that fits (at least 3).
    """
    from skimage.metrics import structural_similarity

    pred_a, target_a = (np.asarray(a, dtype=np.float64).squeeze() for a in (pred, target))
    win_size = min(7, *(s if s % 2 else s - 1 for s in target_a.shape))
    if win_size < 3:
        raise ValueError(f"SSIM needs at least 3 pixels along every axis, got shape {target_a.shape}")
    span = _data_range(target_a) if data_range is None else data_range
    return float(structural_similarity(pred_a, target_a, data_range=span, win_size=win_size))


def psnr(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB (scikit-image); ``data_range`` defaults to the target's range.

    Identical images score ``inf``.
    """
    from skimage.metrics import peak_signal_noise_ratio

    pred_a, target_a = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    span = _data_range(target_a) if data_range is None else data_range
    if np.array_equal(pred_a, target_a):
        return float("inf")
    return float(peak_signal_noise_ratio(target_a, pred_a, data_range=span))


def iou_matrix(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """IoU of every predicted object (rows) with every target object (columns); 0 is background.

    Labels need not be consecutive; rows and columns follow the sorted nonzero labels.
    """
    pred_a, target_a = np.asarray(pred).ravel(), np.asarray(target).ravel()
    pred_ids, pred_idx = np.unique(pred_a, return_inverse=True)
    target_ids, target_idx = np.unique(target_a, return_inverse=True)
    pairs = pred_idx.astype(np.int64) * len(target_ids) + target_idx
    overlap = np.bincount(pairs, minlength=len(pred_ids) * len(target_ids)).reshape(len(pred_ids), len(target_ids))
    overlap = overlap[pred_ids != 0][:, target_ids != 0]
    pred_sizes = np.bincount(pred_idx, minlength=len(pred_ids))[pred_ids != 0]
    target_sizes = np.bincount(target_idx, minlength=len(target_ids))[target_ids != 0]
    union = pred_sizes[:, None] + target_sizes[None, :] - overlap
    return np.divide(overlap, union, out=np.zeros(overlap.shape), where=union > 0)


def matched_pairs(ious: np.ndarray, threshold: float) -> int:
    """Most one-to-one pairs of objects whose IoU is at least ``threshold``.

    scipy's Hungarian solver (``linear_sum_assignment``) maximizes the number of pairs above
    the threshold, ties broken by higher IoU; above 0.5 the pairs are unique anyway.
    """
    from scipy.optimize import linear_sum_assignment

    candidates = ious >= threshold
    rows, cols = np.flatnonzero(candidates.any(axis=1)), np.flatnonzero(candidates.any(axis=0))
    if len(rows) == 0:
        return 0
    sub_candidates, sub_ious = candidates[np.ix_(rows, cols)], ious[np.ix_(rows, cols)]
    cost = -(sub_candidates.astype(np.float64) + sub_ious / (2 * max(sub_ious.shape)))
    match_rows, match_cols = linear_sum_assignment(cost)
    return int(sub_candidates[match_rows, match_cols].sum())


def average_precision(pred: np.ndarray | torch.Tensor | None, target: np.ndarray | torch.Tensor | None, threshold: float = 0.5,
                      ious: np.ndarray | None = None) -> float:
    """Average precision of instance labels at one IoU threshold: ``TP / (TP + FP + FN)``.

    This is the object-level score of the 2018 Data Science Bowl, Cellpose and StarDist
    (there called accuracy): a predicted object is a true positive when matched one-to-one
    to a target object with IoU >= ``threshold``; unmatched predictions are false positives,
    unmatched targets false negatives. Neither torchmetrics (its mean average precision needs
    scores and boxes) nor scikit-image computes it, hence our own code. Two empty label
    images score 1. ``ious`` may pass a precomputed :func:`iou_matrix` (then ``pred`` and
    ``target`` are not used).
    """
    matrix = iou_matrix(np.asarray(pred), np.asarray(target)) if ious is None else ious  # type: ignore[arg-type]
    n_pred, n_target = matrix.shape
    if n_pred == 0 and n_target == 0:
        return 1.0
    true_positives = matched_pairs(matrix, threshold)
    return true_positives / (n_pred + n_target - true_positives)


def mean_average_precision(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor,
                           thresholds: Sequence[float] = IOU_THRESHOLDS) -> float:
    """Mean of :func:`average_precision` over IoU ``thresholds`` (default 0.5:0.05:0.95)."""
    matrix = iou_matrix(np.asarray(pred), np.asarray(target))
    return float(np.mean([average_precision(pred, target, t, ious=matrix) for t in thresholds]))


# --------------------------------------------------------------------- one row per image pair
#: Output kinds and the metrics :func:`score` reports for each.
METRICS: dict[str, tuple[str, ...]] = {
    "mask": ("dice", "iou"),
    "labels": ("ap50", "ap50_95", "n_pred", "n_gt"),
    "intensity": ("pearson", "ssim", "psnr"),
}


def detect_kind(pred: np.ndarray) -> str:
    """``intensity`` for a floating-point prediction, else ``mask`` (values 0/1) or ``labels``."""
    pred_a = np.asarray(pred)
    if np.issubdtype(pred_a.dtype, np.floating):
        return "intensity"
    return "mask" if pred_a.size == 0 or pred_a.max() <= 1 else "labels"


def score(pred: np.ndarray, target: np.ndarray, kind: str, spatial_dims: int | None = None) -> dict[str, float]:
    """The metrics of ``METRICS[kind]`` for one prediction and its target, of equal shape.

    Parameters
    ----------
    pred, target : numpy.ndarray
        Equal shapes; the last ``spatial_dims`` axes are spatial (default: all axes).
    kind : {"mask", "labels", "intensity"}
        ``mask``: foreground ``> 0`` of both; ``labels``: instance labels of both (0 is
        background), one-to-one matching per leading index; ``intensity``: SSIM is averaged
        over the leading (channel, time) axes, Pearson and PSNR use all pixels at once.
    """
    if kind not in METRICS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(METRICS)}")
    spatial = pred.ndim if spatial_dims is None else spatial_dims
    pred_s = pred.reshape(-1, *pred.shape[pred.ndim - spatial:])
    target_s = target.reshape(-1, *target.shape[target.ndim - spatial:])
    if kind == "mask":
        return {"dice": dice(pred, target), "iou": iou(pred, target)}
    if kind == "intensity":
        return {"pearson": pearson(pred, target), "psnr": psnr(pred, target),
                "ssim": float(np.mean([ssim(p, t) for p, t in zip(pred_s, target_s)]))}
    matrices = [iou_matrix(p, t) for p, t in zip(pred_s, target_s)]
    return {"ap50": float(np.mean([average_precision(None, None, 0.5, ious=m) for m in matrices])),
            "ap50_95": float(np.mean([average_precision(None, None, t, ious=m) for m in matrices for t in IOU_THRESHOLDS])),
            "n_pred": float(sum(m.shape[0] for m in matrices)), "n_gt": float(sum(m.shape[1] for m in matrices))}
