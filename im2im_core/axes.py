"""Axis strings: the letters ``T``, ``C``, ``Z``, ``Y``, ``X`` of an image's axes, in that order.

Every part of im2im that names the axes of an array goes through these few functions, so
2D and 3D (and time series) share one rule for where the channel and spatial axes are.
"""

from __future__ import annotations

#: Canonical order of the axes im2im works with.
ORDER = "TCZYX"
#: The spatial axes, outermost first.
SPATIAL = "ZYX"


def spatial_axes(spatial_dims: int) -> str:
    """The last ``spatial_dims`` letters of ``ZYX``: ``YX`` for 2, ``ZYX`` for 3."""
    if spatial_dims not in (1, 2, 3):
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}")
    return SPATIAL[-spatial_dims:]


def channels_first(ndim: int) -> str:
    """Axes of a channels-first image with ``ndim`` axes: ``CYX`` for 3, ``CZYX`` for 4."""
    return "C" + spatial_axes(ndim - 1)


def spatial_of(dims: str) -> str:
    """The spatial letters of ``dims``: ``ZYX`` of ``TCZYX``."""
    return "".join(axis for axis in dims if axis in SPATIAL)


def with_channels(dims: str) -> str:
    """``dims`` with a C axis before the spatial axes (unchanged if it has one)."""
    if "C" in dims:
        return dims
    first = next(i for i, axis in enumerate(dims) if axis in SPATIAL)
    return dims[:first] + "C" + dims[first:]


def is_ordered(dims: str) -> bool:
    """Whether ``dims`` is letters of ``TCZYX``, each once, in that order, ending in ``YX``."""
    return "".join(axis for axis in ORDER if axis in dims) == dims and dims.endswith("YX")
