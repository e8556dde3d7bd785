"""Intensity normalization as dictionary transforms.

Percentile and z-score normalization are MONAI's (``ScaleIntensityRangePercentilesd``,
``NormalizeIntensityd``); :class:`PercentileNormalized` only names the output range the way
configs of this field do. MONAI has no normalization whose statistics come from the middle
of the stack along Z (fnet's), so :class:`CenterNormalized` is our own.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from monai.transforms import MapTransform, ScaleIntensityRangePercentilesd

from im2im_core.errors import ConfigError

OUT_RANGES = {"0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0)}


class PercentileNormalized(ScaleIntensityRangePercentilesd):
    """Map the ``lower`` and ``upper`` percentiles of each image to ``out_range``.

    Parameters
    ----------
    keys : str or list of str
        Sample keys to normalize.
    lower, upper : float
        Percentiles (0-100) mapped to the ends of the output range.
    out_range : {"0,1", "-1,1"}
        Output range; ``-1,1`` suits generators with a tanh output (GANs).
    clip : bool
        Clip values outside the range.
    """

    def __init__(self, keys: str | Sequence[str], lower: float = 0.5, upper: float = 99.5,
                 out_range: Literal["0,1", "-1,1"] = "0,1", clip: bool = False,
                 allow_missing_keys: bool = True) -> None:
        if out_range not in OUT_RANGES:
            raise ConfigError(f"out_range {out_range!r} is not one of {', '.join(OUT_RANGES)}")
        if not 0 <= lower < upper <= 100:
            raise ConfigError(f"percentiles lower={lower}, upper={upper}: expected 0 <= lower < upper <= 100")
        b_min, b_max = OUT_RANGES[out_range]
        super().__init__(keys, lower=lower, upper=upper, b_min=b_min, b_max=b_max, clip=clip,
                         allow_missing_keys=allow_missing_keys)


class CenterNormalized(MapTransform):
    """Z-score each image with the mean and std of its central ``z_chunk`` planes.

    Out-of-focus planes at the top and bottom of a stack then do not skew the statistics, as
    in fnet (Ounkomol et al. 2018). Arrays are channel-first; 2D images use all pixels.

    Parameters
    ----------
    keys : str or list of str
        Sample keys to normalize.
    z_chunk : int
        Number of central Z planes the statistics come from.
    spatial_dims : int
        3 for ``(C, Z, Y, X)`` arrays, 2 for ``(C, Y, X)``.
    """

    def __init__(self, keys: str | Sequence[str], z_chunk: int = 32, spatial_dims: int = 3,
                 allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)
        self.z_chunk, self.spatial_dims = z_chunk, spatial_dims

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return the sample with each key's image z-scored (float32) by its central planes' statistics."""
        sample = dict(data)
        for key in self.key_iterator(sample):
            image = np.asarray(sample[key], dtype=np.float32)
            chunk = image
            if self.spatial_dims == 3:
                depth = image.shape[1]
                start = max(0, (depth - self.z_chunk) // 2)
                chunk = image[:, start:start + self.z_chunk]
            std = float(chunk.std())
            sample[key] = (image - float(chunk.mean())) / (std if std > 0 else 1.0)
        return sample
