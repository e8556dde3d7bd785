"""Scores of a prediction layer against a ground-truth layer, as ``im2im evaluate`` computes them (no Qt here)."""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from im2im_core.errors import DataError
from im2im_core.metrics import METRICS, detect_kind, score

#: What the evaluate widget's kind choice offers: ``auto`` as in ``im2im evaluate --kind``.
KINDS = ("auto", *METRICS)


def _normalized(array: np.ndarray) -> np.ndarray:
    low, high = np.percentile(array, (0.5, 99.5))
    return (array.astype(np.float64) - low) / (high - low if high > low else 1.0)


def score_layers(prediction: tuple[str, Any], target: tuple[str, Any], spatial_dims: int = 2, kind: str = "auto",
                 normalize: bool = False) -> tuple[str, list[str], list[list[float]]]:
    """Score layer ``prediction`` against layer ``target``, each ``(name, data)``.

    The last ``spatial_dims`` axes are space; each index of the axes before them is one image
    (a stack of crops, or the timepoints of a movie), scored on its own as ``im2im evaluate``
    scores one file. ``normalize`` maps the 0.5 and 99.5 percentiles of each intensity image
    to 0 and 1 first (``--normalize percentile``).

    Returns
    -------
    kind : str
        ``mask``, ``labels`` or ``intensity`` (``auto`` resolved as ``im2im evaluate`` does).
    names : list of str
        The metrics (``METRICS[kind]``).
    rows : list of list of float
        One row per image, then the mean over images.

    Raises
    ------
    DataError
        If the layers differ in shape, or have fewer axes than ``spatial_dims``.
    """
    (pred_name, pred_data), (gt_name, gt_data) = prediction, target
    pred, gt = np.asarray(pred_data), np.asarray(gt_data)
    if pred.shape != gt.shape:
        raise DataError(f"shape mismatch: prediction layer {pred_name!r} has shape {pred.shape}, ground-truth layer "
                        f"{gt_name!r} has {gt.shape}")
    if pred.ndim < spatial_dims:
        raise DataError(f"layer {pred_name!r} has {pred.ndim} axes; {spatial_dims}D scoring needs at least {spatial_dims}")
    if kind not in KINDS:
        raise DataError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
    kind = detect_kind(pred) if kind == "auto" else kind
    pred_images = pred.reshape(-1, *pred.shape[pred.ndim - spatial_dims:])
    gt_images = gt.reshape(-1, *gt.shape[gt.ndim - spatial_dims:])
    names = list(METRICS[kind])
    rows = []
    for p, t in zip(pred_images, gt_images):
        if kind == "intensity" and normalize:
            p, t = _normalized(p), _normalized(t)
        metrics = score(p, t, kind=kind, spatial_dims=spatial_dims)
        rows.append([float(metrics[n]) for n in names])
    rows.append([statistics.mean(column) for column in zip(*rows)])
    return kind, names, rows
