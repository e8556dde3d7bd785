"""Task metrics on whole images, thin wrappers over MONAI and torchmetrics."""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import compute_dice
from torchmetrics.functional import pearson_corrcoef


def dice(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """Dice coefficient of two binary masks of equal shape (foreground = value > 0).

    Two empty masks score 1.
    """
    pred_t = torch.as_tensor(np.asarray(pred) > 0).float().reshape(1, 1, -1)
    target_t = torch.as_tensor(np.asarray(target) > 0).float().reshape(1, 1, -1)
    return float(compute_dice(pred_t, target_t, include_background=True, ignore_empty=False).item())


def pearson(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """Pearson correlation of two intensity images of equal shape, over all pixels."""
    pred_t = torch.as_tensor(np.asarray(pred, dtype=np.float64)).flatten()
    target_t = torch.as_tensor(np.asarray(target, dtype=np.float64)).flatten()
    return float(pearson_corrcoef(pred_t, target_t).item())
