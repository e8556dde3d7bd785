"""Patch sampling: which MONAI crop transform draws the training patches."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from monai.transforms import (
    DeleteItemsd,
    FgBgToIndicesd,
    MapTransform,
    RandCropByPosNegLabeld,
    RandSpatialCropSamplesd,
    RandWeightedCropd,
    Transform,
)
from skimage.filters import threshold_otsu

Sampling = Literal["auto", "uniform", "foreground", "content", "weighted"]


def choose_sampling(sampling: Sampling, target: str, has_costmap: bool) -> str:
    """Resolve ``auto``: weighted by the cost map if there is one, foreground-balanced for
    masks and labels, uniform for intensity targets and unpaired or image-only data.
    """
    if sampling != "auto":
        return sampling
    if has_costmap:
        return "weighted"
    return "foreground" if target in ("mask", "labels") else "uniform"


FG_KEY, BG_KEY = "GT_fg_indices", "GT_bg_indices"
CONTENT_KEY = "content_mask"


class ContentMaskd(MapTransform):
    """``content_mask``: 1 where the image under ``keys[0]`` (its channel mean) is above
    Otsu's threshold, 0 elsewhere: where the content is, for images without a target
    (unpaired domains). MONAI has Otsu only as a whole-sample transform, so this is ours.
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return the sample with its ``content_mask`` added."""
        sample = dict(data)
        image = np.asarray(sample[self.keys[0]]).mean(axis=0)
        threshold = threshold_otsu(image) if image.min() < image.max() else image.max()
        sample[CONTENT_KEY] = (image > threshold)[None].astype(np.uint8)
        return sample


def sampling_precompute(sampling: str, keys: Sequence[str] = ("GT",)) -> list[Transform]:
    """Deterministic steps a sampler needs, placed in the cached part of the pipeline.

    Foreground sampling looks up foreground and background pixel indices once per image
    here, instead of for every patch (about 30x faster per image on 520x696 images).
    Content sampling first marks the content of the first of ``keys`` (Otsu).
    """
    if sampling == "foreground":
        return [FgBgToIndicesd("GT", fg_postfix="_fg_indices", bg_postfix="_bg_indices")]
    if sampling == "content":
        return [ContentMaskd(list(keys)[:1]), FgBgToIndicesd(CONTENT_KEY, fg_postfix="_fg", bg_postfix="_bg")]
    return []


def sampling_cleanup(sampling: str) -> list[Transform]:
    """Steps after the crop that drop what only the sampler needed (the whole-image content mask)."""
    if sampling == "content":
        return [DeleteItemsd([CONTENT_KEY, f"{CONTENT_KEY}_fg", f"{CONTENT_KEY}_bg"])]
    return []


def patch_sampler(sampling: str, keys: Sequence[str], patch_size: Sequence[int], num_samples: int,
                  foreground_fraction: float = 0.5, weight_key: str = "CM") -> Transform:
    """Return the crop transform drawing ``num_samples`` patches of ``patch_size`` per image.

    Parameters
    ----------
    sampling : {"uniform", "foreground", "weighted"}
        ``uniform``: anywhere; ``foreground``: centred on target foreground with probability
        ``foreground_fraction``, else on background (needs :func:`sampling_precompute`);
        ``content``: the same with the input's own content (above Otsu's threshold) as the
        foreground, for data without targets such as unpaired domains; ``weighted``: with
        probability proportional to the array under ``weight_key`` (a cost map, or the target).
    """
    keys = list(keys)
    if sampling == "uniform":
        return RandSpatialCropSamplesd(keys, roi_size=list(patch_size), num_samples=num_samples, random_size=False)
    if sampling == "foreground":
        return RandCropByPosNegLabeld(keys, label_key="GT", spatial_size=list(patch_size), pos=foreground_fraction,
                                      neg=1.0 - foreground_fraction, num_samples=num_samples, allow_smaller=True,
                                      fg_indices_key=FG_KEY, bg_indices_key=BG_KEY)
    if sampling == "content":
        return RandCropByPosNegLabeld(keys, label_key=CONTENT_KEY, spatial_size=list(patch_size), pos=foreground_fraction,
                                      neg=1.0 - foreground_fraction, num_samples=num_samples, allow_smaller=True,
                                      fg_indices_key=f"{CONTENT_KEY}_fg", bg_indices_key=f"{CONTENT_KEY}_bg")
    if sampling == "weighted":
        return RandWeightedCropd(keys, w_key=weight_key, spatial_size=list(patch_size), num_samples=num_samples)
    raise ValueError(f"sampling {sampling!r} is not one of auto, uniform, foreground, content, weighted")

