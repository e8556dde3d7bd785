"""A framework's ``predict_step`` in one call: each image of a predict batch, streamed when it can be.

The ``prediction:`` writer (:class:`~im2im_core.inference.writer.PredictionWriter`) sets on the
module what this reads: ``inference`` (window options), ``prediction_postprocess``,
``prediction_progress`` (the window progress bar) and, for OME-Zarr outputs,
``prediction_output`` (which opens an output as a store). With a store, the output is written
band by band while the input is read lazily, and the step returns None for that image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from im2im_core.inference.options import Inference
from im2im_core.inference.postprocess import Postprocess
from im2im_core.inference.predict_array import predict

#: ``postprocess`` default of :func:`predict_batch`: what the writer set on the module
FROM_MODULE: Any = object()


def predict_batch(module: nn.Module, batch: dict[str, Any], inference: Inference | None = None,
                  postprocess: Postprocess | str | None = FROM_MODULE) -> list[np.ndarray | None]:
    """Predict every image of ``batch`` (the data module's predict batch) with ``module``.

    Parameters
    ----------
    module : torch.nn.Module
        The framework; its ``predict_patch`` (or forward) maps windows.
    batch : dict
        ``IM``: images ``([T], C, [Z], Y, X)``, in memory or lazy; ``IM_dims`` their axes;
        ``IM_normalize``: percentiles to normalize with (lazy inputs) or None; ``IM_path`` and
        ``IM_pixel_sizes`` name and scale the outputs.
    inference, postprocess : optional
        Default: what the writer set on ``module`` (``inference``, ``prediction_postprocess``),
        else :class:`Inference` defaults and ``"auto"``.

    Returns
    -------
    list
        The output of each image, or None where it went straight to the writer's store.
    """
    inference = inference if inference is not None else getattr(module, "inference", None)
    postprocess = getattr(module, "prediction_postprocess", "auto") if postprocess is FROM_MODULE else postprocess
    open_output = getattr(module, "prediction_output", None)
    images = list(batch["IM"])
    count = len(images)
    all_dims = batch.get("IM_dims") or ["C" + "ZYX"[-(np.ndim(image) - 1):] for image in images]
    normalize = batch.get("IM_normalize") or [None] * count
    paths = batch.get("IM_path") or [None] * count
    sizes = batch.get("IM_pixel_sizes") or [{}] * count
    outputs: list[np.ndarray | None] = []
    for image, dims, percentiles, path, pixel_sizes in zip(images, all_dims, normalize, paths, sizes):
        options = {"dims": dims, "inference": inference, "postprocess": postprocess, "normalize": percentiles,
                   "progress": getattr(module, "prediction_progress", None)}
        if open_output is None or path is None:
            outputs.append(predict(module, image, **options))
            continue
        with open_output(path, pixel_sizes) as store:
            predict(module, image, store=store, **options)
        outputs.append(None)
    return outputs
