"""Reinhard colour normalization: match the per-channel mean and standard deviation in CIE Lab.

Reinhard et al., "Color transfer between images", IEEE CG&A 2001, matched statistics in the
l-alpha-beta space; like most histology tools we use CIE Lab, converted by scikit-image
(``skimage.color.rgb2lab`` / ``lab2rgb``), so only the statistics matching is ours. The
conversion runs on the CPU with numpy; torch tensors are converted there and back.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.utils import convert_to_dst_type, convert_to_numpy
from skimage.color import lab2rgb, rgb2lab

from im2im_core.errors import DataError
from im2im_stain.macenko import rgb_pixels

#: A standard deviation below this (in Lab units, L is 0..100) means a channel is flat.
MIN_STD = 1e-3


@dataclass(frozen=True)
class LabStats:
    """Mean and standard deviation of L, a and b over an image."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _to_lab(image: Any) -> np.ndarray:
    """``(3, *spatial)`` RGB 0..255 -> ``(N, 3)`` Lab (float64, as scikit-image returns it)."""
    pixels = convert_to_numpy(rgb_pixels(image), dtype=np.float32)  # checks the 3 channels
    return rgb2lab(np.clip(pixels.T / 255.0, 0.0, 1.0))


def _mean_std(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = lab.mean(axis=0), lab.std(axis=0)
    if (std < MIN_STD).any():
        flat = [name for name, s in zip("Lab", std) if s < MIN_STD]
        raise DataError(f"image is flat in Lab channel(s) {', '.join(flat)} (standard deviation below {MIN_STD}); "
                        f"expected a stained RGB image with values 0..255")
    return mean, std


def lab_stats(image: Any) -> LabStats:
    """Lab mean and standard deviation of a channel-first RGB image with values 0..255.

    Raises
    ------
    DataError
        If the image is not RGB, or one of its Lab channels is flat (a blank image).
    """
    mean, std = _mean_std(_to_lab(image))
    return LabStats(tuple(mean.tolist()), tuple(std.tolist()))


def reinhard_normalize(image: Any, target: LabStats) -> Any:
    """Give an RGB image the Lab mean and standard deviation of ``target``.

    Returns the image's type (numpy or torch, same device) and shape, float32 values 0..255;
    raises :class:`~im2im_core.errors.DataError` as :func:`lab_stats` does.
    """
    lab = _to_lab(image)
    mean, std = _mean_std(lab)
    matched = (lab - mean) * (np.asarray(target.std) / std) + np.asarray(target.mean)
    with warnings.catch_warnings():  # out-of-gamut colours are clipped: expected, not news
        warnings.filterwarnings("ignore", message=".*negative Z values", category=UserWarning)
        rgb = (lab2rgb(matched) * 255.0).astype(np.float32).T.reshape(tuple(image.shape))
    return convert_to_dst_type(rgb, dst=image, dtype=torch.float32)[0]
