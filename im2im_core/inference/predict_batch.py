"""Predict every image of a predict batch, streamed to its output store when one is given.

``im2im predict``'s writer (:class:`~im2im_core.inference.writer.PredictionWriter`) calls
:func:`predict_batch` with the framework and its :class:`~im2im_core.inference.options.PredictionSettings`;
with ``open_output`` (OME-Zarr outputs) each output is written band by band while its input is
read lazily, and None stands in the returned list for it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from torch import nn

from im2im_core import keys
from im2im_core.axes import channels_first
from im2im_core.errors import DataError
from im2im_core.inference.options import PredictionSettings
from im2im_core.inference.predict_array import predict
from im2im_core.protocols import is_framework


def predict_batch(framework: nn.Module, batch: dict[str, Any],
                  settings: PredictionSettings | None = None) -> list[np.ndarray | None]:
    """Predict every image of ``batch`` (the data module's predict batch) with ``framework``.

    Parameters
    ----------
    framework : torch.nn.Module
        A framework (:class:`~im2im_core.protocols.Framework`) or a bare network.
    batch : dict
        ``IM``: images ``([T], C, [Z], Y, X)``, in memory or lazy; ``IM_dims`` their axes;
        ``IM_normalize``: percentiles or training-set statistics (``MeanStd``) to normalize
        with (lazy inputs), or None; ``IM_path`` and
        ``IM_pixel_sizes`` name and scale the outputs (see :mod:`im2im_core.keys`).
    settings : PredictionSettings, optional
        Default: ``PredictionSettings()``.

    Returns
    -------
    list
        The output of each image, or None where it went to its store.
    """
    settings = settings if settings is not None else PredictionSettings()
    images = list(batch[keys.IMAGE])
    count = len(images)
    all_dims = batch.get(keys.IMAGE_DIMS) or [channels_first(np.ndim(image)) for image in images]
    normalize = batch.get(keys.IMAGE_NORMALIZE) or [None] * count
    paths = batch.get(keys.IMAGE_PATH) or [None] * count
    sizes = batch.get(keys.IMAGE_PIXEL_SIZES) or [{}] * count
    if keys.IMAGE_NORMALIZE in batch and None in normalize and _in_input_units(framework):
        warnings.warn(f"{type(framework).__name__} gives outputs in the input's units, but data.normalize is neither the "
                      "default percentile normalization nor TrainingSetNormalized, the ones prediction can undo: "
                      "outputs are in the units the input had after data.normalize", stacklevel=2)
    outputs: list[np.ndarray | None] = []
    for image, dims, percentiles, path, pixel_sizes in zip(images, all_dims, normalize, paths, sizes):
        options = {"dims": dims, "inference": settings.inference, "postprocess": settings.postprocess,
                   "normalize": percentiles, "progress": settings.progress}
        try:
            if settings.open_output is None or path is None:
                outputs.append(predict(framework, image, **options))
                continue
            with settings.open_output(path, pixel_sizes) as store:
                predict(framework, image, store=store, **options)
        except DataError as exc:
            raise DataError(f"{path}: {exc}" if path is not None and str(path) not in str(exc) else str(exc)) from None
        outputs.append(None)
    return outputs


def _in_input_units(framework: nn.Module) -> bool:
    """Whether ``framework`` (not a bare network) maps its outputs back to the input's units."""
    return is_framework(framework) and bool(framework.output_in_input_units())
