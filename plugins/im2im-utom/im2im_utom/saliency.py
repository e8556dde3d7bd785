"""UTOM's saliency constraint (Li et al., Light: Science & Applications, 2021).

A soft threshold marks content (1) against background (0) in each domain; an L1 loss keeps the
content mask of an image equal to that of its translation, in both directions, with a weight
that decays exponentially as training progresses.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["Polarity", "otsu_threshold", "rho", "saliency_loss", "soft_mask"]

#: ``bright``: content brighter than the background (fluorescence, masks); ``dark``: darker
#: (brightfield, H&E, IHC).
Polarity = Literal["bright", "dark"]


def soft_mask(image: torch.Tensor, threshold: float | torch.Tensor, steepness: float, polarity: Polarity) -> torch.Tensor:
    """Soft content mask ``T(x)`` of a batch ``(B, C, [Z], Y, X)``, shape ``(B, 1, [Z], Y, X)``.

    ``T(x) = sigmoid(k (x - t))`` for ``bright`` content, ``sigmoid(k (t - x))`` for ``dark``,
    where ``x`` is the mean over channels (grey value of RGB, as in UTOM), ``t`` the threshold
    in the intensity units of ``image`` and ``k`` the steepness.
    """
    if polarity not in ("bright", "dark"):
        raise ValueError(f"polarity {polarity!r} is not 'bright' or 'dark'")
    grey = image.mean(dim=1, keepdim=True)
    distance = grey - threshold if polarity == "bright" else threshold - grey
    return torch.sigmoid(steepness * distance)


def saliency_loss(real_a: torch.Tensor, fake_b: torch.Tensor, real_b: torch.Tensor, fake_a: torch.Tensor,
                  thresholds: tuple[float | torch.Tensor, float | torch.Tensor], polarities: tuple[Polarity, Polarity],
                  steepness: float) -> torch.Tensor:
    """``L1(T_A(a), T_B(G_AB(a))) + L1(T_B(b), T_A(G_BA(b)))``, each L1 a mean over pixels.

    Images of domain A (``real_a``, ``fake_a``) are thresholded with A's threshold and polarity,
    images of domain B with B's.
    """
    (t_a, t_b), (p_a, p_b) = thresholds, polarities
    forward = F.l1_loss(soft_mask(fake_b, t_b, steepness, p_b), soft_mask(real_a, t_a, steepness, p_a))
    backward = F.l1_loss(soft_mask(fake_a, t_a, steepness, p_a), soft_mask(real_b, t_b, steepness, p_b))
    return forward + backward


def rho(progress: float, rho0: float, decay: float) -> float:
    """Weight of the saliency loss, ``rho0 * exp(-decay * progress)``; progress 0 at the start, 1 at the end."""
    return rho0 * math.exp(-decay * progress)


def otsu_threshold(values: np.ndarray | torch.Tensor) -> float:
    """Otsu's threshold (``skimage.filters.threshold_otsu``) of ``values``.

    Two-valued data (masks) get the midpoint of their two values, so that both classes are
    half a unit away from it: Otsu on a histogram returns the lower value there, where the
    sigmoid would be 0.5 on the whole background.
    """
    from skimage.filters import threshold_otsu

    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    array = array.astype(np.float64).ravel()
    distinct = np.unique(array)
    if distinct.size <= 2:
        return float(distinct.mean())
    return float(threshold_otsu(array))
