"""Prediction of one napari layer with im2im's streaming engine, with progress and cancel (no Qt here).

The predict widget runs :func:`predict_layer` in a worker thread. The result stays in memory
unless the input is large (or an output folder is given): then it streams window by window
into an OME-Zarr file, written under a temporary name and renamed when complete, and the
layer shows that file lazily.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from im2im_core.axes import spatial_of, with_channels
from im2im_core.errors import DataError, Im2ImError
from im2im_core.inference import Inference
from im2im_napari.layer_axes import layer_axes, layer_result, model_array
from im2im_napari.models import LoadedModel

#: Inputs above this many bytes (or lazy ones, such as dask arrays) stream to OME-Zarr when no
#: output folder is chosen: their output would not fit in memory beside them.
STREAM_BYTES = 2**30


class PredictionCancelled(Im2ImError):
    """The user pressed cancel; nothing was added or written."""


@dataclass(frozen=True)
class LayerInput:
    """What the widget reads from an image layer: its name, data, scale and whether it is RGB."""

    name: str
    data: Any
    scale: tuple[float, ...]
    rgb: bool = False


@dataclass
class LayerPrediction:
    """A finished prediction, ready to become a layer.

    Parameters
    ----------
    data : numpy array or dask array
        In memory, or read lazily from ``path``.
    scale : tuple of float
        The input layer's scale (1 for an added channel axis).
    kind : {"labels", "image"}
        Masks and instance labels (integer outputs) become a labels layer, intensities an image layer.
    name : str
        ``"<input> prediction"``.
    path : Path, optional
        The OME-Zarr file it was streamed to.
    """

    data: Any
    scale: tuple[float, ...]
    kind: str
    name: str
    path: Path | None = None


@dataclass
class PredictionRequest:
    """One prediction as the widget's fields give it."""

    layer: LayerInput
    inference: Inference = field(default_factory=Inference)
    output_dir: Path | None = None
    overwrite: bool = False


def _is_lazy(data: Any) -> bool:
    return not isinstance(data, np.ndarray)


def output_file(output_dir: Path, layer_name: str) -> Path:
    """``output_dir/<layer name>_pred.ome.zarr``, the name made safe for a file system."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in layer_name).strip("._") or "layer"
    return Path(output_dir) / f"{safe}_pred.ome.zarr"


def predict_layer(model: LoadedModel, request: PredictionRequest, progress: Callable[[int, int], None] | None = None,
                  cancel: threading.Event | None = None) -> LayerPrediction:
    """Predict ``request.layer`` with ``model``; see the module docstring.

    ``progress(done, total)`` gets the windows of the current image; setting ``cancel`` stops
    at the next window with :class:`PredictionCancelled`, leaving no output file.

    Raises
    ------
    DataError, ConfigError
        For a layer the model cannot read (see :func:`~im2im_napari.layer_axes.layer_axes`), an
        output that exists without ``overwrite``, or an unwritable output folder.
    """
    from im2im_core.inference import predict
    from im2im_core.inference.outputs import ZarrOutput, atomic_output

    layer = request.layer
    data = layer.data[0] if isinstance(layer.data, (list, tuple)) else layer.data
    axes = layer_axes(layer.name, tuple(int(n) for n in data.shape), layer.rgb, model.spatial_dims)
    array = model_array(data, axes)
    inference = request.inference
    if axes.slice_by_slice:
        inference = dataclasses.replace(inference, slice_by_slice=True)

    def on_window(done: int, total: int) -> None:
        if cancel is not None and cancel.is_set():
            raise PredictionCancelled("prediction cancelled")
        if progress is not None:
            progress(done, total)

    output_dir = request.output_dir
    if output_dir is None and (_is_lazy(data) or data.nbytes > STREAM_BYTES):
        raise DataError(f"layer {layer.name!r} is {'lazy' if _is_lazy(data) else 'larger than 1 GiB'}: choose an output "
                        f"folder, so that its prediction streams to an OME-Zarr file instead of memory")
    kwargs = dict(dims=axes.dims, inference=inference, normalize=model.normalize, device="cpu", progress=on_window)
    if output_dir is None:
        result = predict(model.module, array, **kwargs)
        out_dims = axes.dims if result.ndim == len(axes.dims) else with_channels(axes.dims)
        return _finished(result, out_dims, layer, None)
    path = output_file(output_dir, layer.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    spatial = spatial_of(axes.dims)
    sizes = dict(zip(spatial, (float(s) for s in layer.scale[-len(spatial):])))
    written: dict[str, str] = {}
    with atomic_output(path, request.overwrite) as partial:
        def store(shape: tuple[int, ...], out_dims: str, dtype: Any) -> ZarrOutput:
            written["dims"] = out_dims
            return ZarrOutput(partial, shape, out_dims, dtype, sizes)

        predict(model.module, array, store=store, **kwargs)
    return _finished(_open_lazily(path), written["dims"], layer, path)


def _finished(result: Any, out_dims: str, layer: LayerInput, path: Path | None) -> LayerPrediction:
    data, scale = layer_result(result, out_dims, layer.scale)
    kind = "labels" if np.issubdtype(np.dtype(data.dtype), np.integer) or data.dtype == bool else "image"
    if kind == "labels" and data.dtype == bool:
        data = data.astype(np.uint8)
    return LayerPrediction(data, scale, kind, f"{layer.name} prediction", path)


def _open_lazily(path: Path) -> Any:
    """The full-resolution array of the OME-Zarr file at ``path``, as a dask array."""
    import dask.array as da
    import zarr

    return da.from_zarr(zarr.open_group(str(path), mode="r")["0"])
