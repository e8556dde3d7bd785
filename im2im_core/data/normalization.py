"""Intensity normalization as dictionary transforms.

Percentile and z-score normalization are MONAI's (``ScaleIntensityRangePercentilesd``,
``NormalizeIntensityd``); :class:`PercentileNormalized` only names the output range the way
configs of this field do. MONAI has no normalization whose statistics come from the middle
of the stack along Z (fnet's), so :class:`CenterNormalized` is our own; nor one whose
statistics are learned from a training set and kept with the model (CAREamics'), so
:class:`TrainingSetNormalized` is our own too.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from monai.transforms import MapTransform, ScaleIntensityRangePercentilesd

from im2im_core.errors import ConfigError, DataError

OUT_RANGES = {"0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0)}
#: Key of the data module's state (saved in checkpoints) that holds the statistics of its
#: :class:`TrainingSetNormalized` steps: a list, one ``{key: MeanStd.to_dict()}`` per step.
TRAINING_STATISTICS = "im2im_training_statistics"


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


@dataclass  # not frozen: Lightning's batch transfer rebuilds the dataclasses of a (predict) batch field by field
class MeanStd:
    """Fixed intensity statistics: ``(x - mean) / std``, one value for all channels or one per channel.

    It is what :class:`TrainingSetNormalized` learns at ``im2im fit`` and what prediction
    applies to every window (and undoes, for outputs in the input's units).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ConfigError(f"mean {list(self.mean)} and std {list(self.std)}: expected as many values, at least one")
        if not all(math.isfinite(m) for m in self.mean) or not all(math.isfinite(s) and s > 0 for s in self.std):
            raise ConfigError(f"mean {list(self.mean)} and std {list(self.std)}: expected finite values and std > 0")

    def shaped(self, ndim: int, like: torch.Tensor | np.ndarray) -> tuple[Any, Any]:
        """Mean and std shaped ``(C or 1, 1, ...)`` to broadcast over a channel-first array of ``ndim`` axes."""
        shape = (len(self.mean),) + (1,) * (ndim - 1)
        if isinstance(like, torch.Tensor):
            return (torch.tensor(self.mean, dtype=like.dtype, device=like.device).reshape(shape),
                    torch.tensor(self.std, dtype=like.dtype, device=like.device).reshape(shape))
        return np.reshape(np.array(self.mean, np.float32), shape), np.reshape(np.array(self.std, np.float32), shape)

    def to_dict(self) -> dict[str, list[float]]:
        """Plain lists, for a checkpoint (``weights_only`` loading accepts them)."""
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Sequence[float]]) -> MeanStd:
        """The inverse of :meth:`to_dict`."""
        return cls(tuple(float(v) for v in values["mean"]), tuple(float(v) for v in values["std"]))


def _as_values(value: float | Sequence[float] | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    return (float(value),) if isinstance(value, (int, float)) else tuple(float(v) for v in value)


class TrainingSetNormalized(MapTransform):
    """Z-score every image with the mean and std of the whole training set (CAREamics' normalization).

    Unlike a per-image normalization, every image keeps its brightness relative to the others,
    and prediction applies the same fixed map to any image and can undo it exactly. ``im2im
    fit`` computes the statistics from the training inputs before the first step (the data
    module calls :meth:`fit`), stores them in every checkpoint, and ``im2im predict``,
    :func:`~im2im_core.inference.predict_file` and ``predict(..., normalize="auto")`` read them
    from there. Give ``mean`` and ``std`` to fix them yourself.

    Parameters
    ----------
    keys : str or list of str
        Sample keys to normalize, each with statistics of its own (``IM``; ``GT`` too for an
        intensity target).
    mean, std : float or list of float, optional
        The statistics, one value or one per channel; default: computed at fit.
    channel_wise : bool
        Statistics per channel (channels differ in brightness; CAREamics' choice too) rather
        than one pair for all channels.
    """

    def __init__(self, keys: str | Sequence[str], mean: float | list[float] | None = None,
                 std: float | list[float] | None = None, channel_wise: bool = True,
                 allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)
        self.channel_wise = channel_wise
        means, stds = _as_values(mean), _as_values(std)
        if (means is None) != (stds is None):
            raise ConfigError("TrainingSetNormalized: give both mean and std, or neither (computed at fit)")
        self.statistics: dict[str, MeanStd] = {}
        if means is not None and stds is not None:
            self.statistics = {str(key): MeanStd(means, stds) for key in self.keys}

    @property
    def fitted(self) -> bool:
        """Whether every key has its statistics."""
        return all(str(key) in self.statistics for key in self.keys)

    def fit(self, samples: Iterable[Mapping[Hashable, Any]]) -> None:
        """Compute each key's mean and std over ``samples`` (channel-first arrays), in float64.

        Each image contributes at most :data:`STATISTICS_SAMPLE` pixels per channel, taken on a
        regular grid, so that a large image costs one read and little arithmetic.
        """
        sums: dict[str, np.ndarray] = {}
        squares: dict[str, np.ndarray] = {}
        counts: dict[str, int] = {}
        for sample in samples:
            for key in self.key_iterator(dict(sample)):
                image = np.asarray(sample[key])
                pixels = _grid_subsample(image.reshape(image.shape[0], -1)).astype(np.float64)
                if not self.channel_wise:
                    pixels = pixels.reshape(1, -1)
                name = str(key)
                if name in sums and sums[name].shape[0] != pixels.shape[0]:
                    raise DataError(f"TrainingSetNormalized(channel_wise=True): the training images of {name} differ "
                                    f"in their number of channels ({sums[name].shape[0]} and {pixels.shape[0]})")
                sums[name] = sums.get(name, 0) + pixels.sum(axis=1)
                squares[name] = squares.get(name, 0) + (pixels ** 2).sum(axis=1)
                counts[name] = counts.get(name, 0) + pixels.shape[1]
        for name, total in sums.items():
            mean = total / counts[name]
            variance = np.maximum(squares[name] / counts[name] - mean ** 2, 0.0)
            std = np.sqrt(variance)
            if not (std > 0).all():
                raise DataError(f"TrainingSetNormalized: the training images of {name} are constant (std 0): "
                                f"nothing to normalize by; check data.data_path")
            self.statistics[name] = MeanStd(tuple(mean.tolist()), tuple(std.tolist()))
        missing = [str(key) for key in self.keys if str(key) not in self.statistics and not self.allow_missing_keys]
        if missing:
            raise DataError(f"TrainingSetNormalized: no training image has {', '.join(missing)}")

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return the sample with each key's image z-scored (float32) by that key's statistics."""
        sample = dict(data)
        for key in self.key_iterator(sample):
            stats = self.statistics.get(str(key))
            if stats is None:
                raise ConfigError(f"TrainingSetNormalized has no statistics for {key}: they are computed by im2im fit "
                                  f"and stored in its checkpoints (predict with --ckpt_path of one), or give mean and std")
            image = np.asarray(sample[key], dtype=np.float32)
            if len(stats.mean) not in (1, image.shape[0]):
                raise DataError(f"TrainingSetNormalized: {key} has {image.shape[0]} channels but the statistics have "
                                f"{len(stats.mean)} (trained on images with another number of channels)")
            mean, std = stats.shaped(image.ndim, image)
            sample[key] = (image - mean) / std
        return sample


#: Pixels per channel of one image that :meth:`TrainingSetNormalized.fit` uses at most.
STATISTICS_SAMPLE = 2**22


def _grid_subsample(pixels: np.ndarray) -> np.ndarray:
    """``(C, N)`` pixels, every k-th along N so that at most :data:`STATISTICS_SAMPLE` remain."""
    step = max(1, math.ceil(pixels.shape[1] / STATISTICS_SAMPLE))
    return pixels[:, ::step]
