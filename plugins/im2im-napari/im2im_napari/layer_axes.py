"""Axes of napari layers for im2im: which axes are space, which are separate images.

napari layers carry no axis names, so the model decides: its last ``spatial_dims`` axes are
space (``YX`` or ``ZYX``), an RGB layer's last axis is its channels, and the axes before them
are separate images that are predicted (or trained on) one by one:

========================  ==========  ==============================================
layer (without RGB)       2D model    3D model
========================  ==========  ==============================================
2 axes (Y, X)             ``YX``      error: a 3D model needs a Z axis
3 axes                    ``TYX``     ``ZYX``
4 axes                    ``TZYX``    ``TZYX``
                          (plane by
                          plane)
========================  ==========  ==============================================

A 2D model applied to a 3- or 4-axis layer sees each plane on its own (its own normalization,
as in training on single images); more leading axes than these are an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from im2im_core.errors import DataError


@dataclass(frozen=True)
class LayerAxes:
    """How one layer's array is read for a model.

    Parameters
    ----------
    dims : str
        im2im axes of the array handed to ``predict`` (letters of ``TCZYX`` in order).
    channels_last : bool
        The layer is RGB: its last axis moves to the ``C`` position of ``dims``.
    slice_by_slice : bool
        A 2D model applied to each Z plane (4-axis layers with a 2D model).
    """

    dims: str
    channels_last: bool = False
    slice_by_slice: bool = False


def layer_axes(name: str, shape: tuple[int, ...], rgb: bool, spatial_dims: int) -> LayerAxes:
    """The :class:`LayerAxes` of layer ``name`` (array ``shape``) for a model of ``spatial_dims``.

    Raises
    ------
    DataError
        If the layer has too few axes for the model (a 3D model on a 2D layer) or too many.
    """
    space = len(shape) - (1 if rgb else 0)
    shown = "x".join(str(n) for n in shape)
    if space < spatial_dims:
        raise DataError(f"layer {name!r} ({shown}) has {space} spatial axes; the model is {spatial_dims}D and needs "
                        f"{'Z, Y and X' if spatial_dims == 3 else 'Y and X'} (choose a {space}D model or another layer)")
    options = {2: {2: ("YX", False), 3: ("TYX", False), 4: ("TZYX", True)}, 3: {3: ("ZYX", False), 4: ("TZYX", False)}}
    if space not in options[spatial_dims]:
        raise DataError(f"layer {name!r} ({shown}) has {space} axes besides colour; a {spatial_dims}D model takes "
                        f"{' or '.join(str(n) for n in options[spatial_dims])} (separate images go along the first axis)")
    dims, by_slice = options[spatial_dims][space]
    if rgb:
        dims = dims.replace("YX", "CYX") if "Z" not in dims else dims.replace("ZYX", "CZYX")
    return LayerAxes(dims, channels_last=rgb, slice_by_slice=by_slice)


def model_array(data: Any, axes: LayerAxes) -> Any:
    """The layer's ``data`` (numpy or dask, first level if multiscale) with axes ``axes.dims``."""
    if isinstance(data, (list, tuple)):  # multiscale: predict the full resolution
        data = data[0]
    if not axes.channels_last:
        return data
    channel = axes.dims.index("C")
    return np.moveaxis(data, -1, channel) if isinstance(data, np.ndarray) else _moved_lazy(data, channel)


def _moved_lazy(data: Any, channel: int) -> Any:
    import dask.array as da

    return da.moveaxis(da.asarray(data), -1, channel)


def layer_result(result: Any, out_dims: str, in_scale: tuple[float, ...]) -> tuple[Any, tuple[float, ...]]:
    """A prediction with axes ``out_dims`` as layer data, and its scale from the input layer's.

    ``in_scale`` is the input layer's scale (napari leaves an RGB layer's colour axis out of
    it). A single output channel is dropped; several channels stay where ``C`` is in
    ``out_dims``, with scale 1.
    """
    if "C" not in out_dims:
        return result, tuple(in_scale)
    channel = out_dims.index("C")
    if result.shape[channel] == 1:
        return result[(slice(None),) * channel + (0,)], tuple(in_scale)
    scale = list(in_scale)
    scale.insert(channel, 1.0)
    return result, tuple(scale)
