"""im2im's own dictionary transforms; everything else comes from MONAI by class path.

MONAI has no transform that reads through a pluggable reader with TCZYX axis selection and
checks input/target pairs with file names in its errors, so :class:`ReadImaged` is our own.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.transforms import MapTransform

from im2im_core.axes import spatial_of
from im2im_core.data.readers import BioioReader
from im2im_core.errors import DataError
from im2im_core.keys import TIMEPOINT, dims_key, path_key, pixel_sizes_key
from im2im_core.protocols import ImageData, Reader


def _pixels(image: Any, path: str) -> np.ndarray:
    """The pixels of ``image`` in memory; a file that opens but cannot be read whole (truncated) is named."""
    try:
        return image.numpy()
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"cannot read the pixels of {path}: truncated or damaged file ({type(exc).__name__}: {reason})") from None


def one_timepoint(image: ImageData, timepoint: int, path: str) -> ImageData:
    """Timepoint ``timepoint`` of an image read with a T axis (still lazy), its axes without T."""
    count = int(image.array.shape[image.dims.index("T")])
    if not 0 <= timepoint < count:
        raise DataError(f"{path}: timepoint {timepoint} is out of range: the file has {count} along T")
    index = (slice(None),) * image.dims.index("T") + (timepoint,)
    return ImageData(image.array[index], image.dims.replace("T", ""), image.physical_pixel_sizes)


class ReadImaged(MapTransform):
    """Replace file paths under ``keys`` by channel-first float32 arrays ``(C, [Z], Y, X)``.

    With ``keep_time`` a T axis is kept in front, ``(T, C, [Z], Y, X)``; every sample gets
    ``<key>_dims``, the axes of its array (``"CYX"``, ``"TCZYX"``, ...).

    Parameters
    ----------
    keys : str or list of str
        Sample keys holding paths, e.g. ``["IM", "GT"]``.
    reader : Reader, optional
        Defaults to :class:`~im2im_core.data.readers.BioioReader` with ``dims``.
    dims : str
        Axes to read when no reader is given, e.g. ``"YX"``, ``"ZYX"``, ``"CZYX"``.
    check_pairs : bool
        Require all keys of a sample to share one spatial shape.
    keep_time : bool
        Keep a T axis (prediction). Without it, an image read with T gives the timepoint the
        sample's ``timepoint`` names (training on a time series: each timepoint a sample),
        and is an error when the sample names none.
    lazy : bool
        Keep the reader's lazy (dask) array instead of reading the pixels, for prediction that
        reads window bands as it goes; the NaN check is then left out (it would read it all).
    """

    def __init__(self, keys: str | Sequence[str], reader: Reader | None = None, dims: str = "YX",
                 check_pairs: bool = True, allow_missing_keys: bool = True, keep_time: bool = False,
                 lazy: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reader = reader if reader is not None else BioioReader(dims=dims)
        self.check_pairs, self.keep_time, self.lazy = check_pairs, keep_time, lazy

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return the sample with each path replaced by its array, and ``<key>_path``, ``_dims``, ``_pixel_sizes``."""
        sample = dict(data)
        shapes: dict[str, tuple[str, tuple[int, ...]]] = {}
        for key in self.key_iterator(sample):
            path = str(sample[key])
            image = self.reader.read(path)
            timed = "T" in image.dims
            if timed and not self.keep_time:
                if TIMEPOINT not in sample:
                    raise DataError(f"{path}: dims {image.dims!r} keep the T axis; select one timepoint (T: 0) for training")
                image = one_timepoint(image, int(sample[TIMEPOINT]), path)
                timed = False
            array = image.array if self.lazy and hasattr(image.array, "compute") else _pixels(image, path)
            array = array.astype(np.float32, copy=False)
            lead = 1 if timed else 0  # the channel axis goes after T
            if image.dims.endswith("S"):  # RGB samples become channels
                array = np.moveaxis(array, -1, lead)
                if "C" in image.dims:
                    array = array.reshape(*array.shape[:lead], -1, *array.shape[lead + 2:])
            elif "C" not in image.dims:
                array = np.expand_dims(array, lead)
            if not hasattr(array, "compute") and not np.isfinite(array).all():
                raise DataError(f"{path}: image contains NaN or infinite values")
            sample[key] = array
            sample[path_key(key)] = path
            sample[dims_key(key)] = ("T" if timed else "") + "C" + spatial_of(image.dims)
            sample[pixel_sizes_key(key)] = {k: v for k, v in image.physical_pixel_sizes.items() if v is not None}
            shapes[str(key)] = (path, array.shape[lead + 1:])
        if self.check_pairs and len({shape for _, shape in shapes.values()}) > 1:
            listing = "; ".join(f"{path} has shape {shape}" for path, shape in shapes.values())
            raise DataError(f"input and target differ in spatial shape: {listing}")
        return sample


class Binarized(MapTransform):
    """Turn a label image into a 0/1 foreground mask (``label > 0``)."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return the sample with each key's image as a float32 0/1 mask."""
        sample = dict(data)
        for key in self.key_iterator(sample):
            sample[key] = (sample[key] > 0).astype(np.float32)
        return sample


class PerTimepointd(MapTransform):
    """Apply ``transforms`` to each timepoint of a sample read with ``keep_time`` in turn.

    Normalization then treats every timepoint as training treated one image, so bleaching
    over time does not shift the intensities the network sees. Samples without a T axis
    (``<key>_dims`` not starting with T) go through ``transforms`` once, as they are.
    """

    def __init__(self, keys: str | Sequence[str], transforms: Sequence[Any]) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.transforms = list(transforms)

    def _apply(self, sample: dict[Hashable, Any]) -> dict[Hashable, Any]:
        for transform in self.transforms:
            sample = transform(sample)
        return sample

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return the sample with ``transforms`` applied to each timepoint and the timepoints stacked again."""
        sample = dict(data)
        timed = [key for key in self.key_iterator(sample) if str(sample.get(dims_key(key), "")).startswith("T")]
        if not timed:
            return self._apply(sample)
        frames = [self._apply({**sample, **{key: sample[key][t] for key in timed}}) for t in range(len(sample[timed[0]]))]
        return {**frames[0], **{key: np.stack([frame[key] for frame in frames]) for key in timed}}
