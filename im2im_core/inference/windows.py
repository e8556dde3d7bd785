"""Where the windows of sliding-window inference go, and how much each pixel of one weighs.

The windows form a grid that is the product of one list of starts per axis, and the blending
weight of a window is the product of one 1D profile per axis. So the summed weight at any
pixel is the product of per-axis sums: no image-sized weight map is ever needed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch

BlendMode = Literal["gaussian", "constant"]

#: Largest default alignment of window starts: 2**4 suits networks that halve the image 4 times.
MAX_AUTO_ALIGN = 16


def auto_align(roi_size: Sequence[int]) -> int:
    """The largest power of two, at most 16, that divides every window size above 1."""
    align = MAX_AUTO_ALIGN
    while align > 1 and any(size % align for size in roi_size if size > 1):
        align //= 2
    return align


def padded_extent(size: int, window: int, align: int) -> int:
    """Length the windows cover along one axis: ``size`` rounded up to ``align``, at least ``window``."""
    return max(window, math.ceil(size / align) * align)


def axis_starts(size: int, window: int, overlap: float, align: int = 1, halo: int | None = None) -> list[int]:
    """Starts of the windows along one axis of length ``size``.

    Starts are multiples of ``align`` (so a network that downsamples sees every window on the
    pixel grid of the whole image) and spread evenly from 0 to ``padded_extent - window``;
    neighbours overlap by at least ``overlap * window`` pixels, or by ``2 * halo`` pixels when
    ``halo`` is given (crop tiling, see :func:`crop_cores`). Where a step of ``align`` would
    already be too long for a blending overlap, ``align`` is halved until it is not; crop tiling
    keeps ``align`` (its exactness needs it) and raises instead.

    Parameters
    ----------
    size : int
        Image length along the axis.
    window : int
        Window length, a multiple of ``align``.
    overlap : float
        Fraction of the window shared by neighbours, in ``[0, 1)``; unused with ``halo``.
    align : int
        Multiple that every start is.
    halo : int, optional
        Pixels each window gives up at a border it shares with a neighbour.
    """
    if window == 1:
        return list(range(size))
    if window % align:
        raise ValueError(f"window size {window} is not a multiple of the alignment {align}")
    if halo is not None:
        longest = window - 2 * halo
        if (padded_extent(size, window, align) - window) // align == 0:
            return [0]  # one window covers the axis: no border is shared, whatever the halo
        if longest < align:
            raise ValueError(f"a window of {window} pixels keeps no aligned core inside a halo of {halo} on both sides "
                             f"(alignment {align})")
    else:
        if not 0 <= overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        longest = int(window * (1 - overlap))
        while align > 1 and longest < align:
            align //= 2
    units = (padded_extent(size, window, align) - window) // align
    if units == 0:
        return [0]
    max_step_units = max(1, longest // align)
    steps = math.ceil(units / max_step_units)
    small, extra = divmod(units, steps)
    starts, position = [0], 0
    for i in range(steps):
        position += small + (1 if i < extra else 0)
        starts.append(position * align)
    return starts


def crop_cores(starts: Sequence[int], window: int, extent: int) -> list[tuple[int, int]]:
    """The part of each window that crop tiling keeps, ``(first, end)`` relative to its start.

    Neighbouring windows hand over in the middle of their overlap, so each keeps at least half
    of it as margin from its inner border; the first window keeps its start, the last its end
    (at ``extent``, the image's end or its padding). The kept parts tile ``0..extent`` exactly.
    """
    cuts = [(starts[k + 1] + starts[k] + window) // 2 for k in range(len(starts) - 1)]
    bounds = [0, *cuts, extent]
    return [(bounds[k] - start, bounds[k + 1] - start) for k, start in enumerate(starts)]


def window_profile(window: int, mode: BlendMode = "gaussian", sigma_scale: float = 0.125) -> torch.Tensor:
    """1D blending weights of one window along one axis (float64).

    ``gaussian``: ``exp(-d**2 / (2 sigma**2))`` with ``d`` the distance to the window centre and
    ``sigma = sigma_scale * window`` (MONAI's default scale); ``constant``: ones.
    """
    if mode == "constant" or window == 1:
        return torch.ones(window, dtype=torch.float64)
    if mode != "gaussian":
        raise ValueError(f"blending mode {mode!r} is not 'gaussian' or 'constant'")
    distance = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    return torch.exp(-(distance**2) / (2 * (sigma_scale * window) ** 2))


def axis_profiles(starts: Sequence[int], profile: torch.Tensor, edge_trim: float = 0.25) -> list[torch.Tensor]:
    """The blending profile of each window along one axis, its overlapped edges trimmed.

    Where a window overlaps its neighbour by ``n`` pixels, its outermost
    ``floor(edge_trim * n)`` pixels on that side get weight 0: those pixels see the window's
    own padding (zeros beyond its border) and so differ most from a whole-image pass. Sides
    at the image border keep their weight, as no other window covers them.

    Parameters
    ----------
    starts : sequence of int
        Window starts along the axis, increasing.
    profile : torch.Tensor
        The untrimmed 1D profile (:func:`window_profile`).
    edge_trim : float
        Fraction of each overlap, in ``[0, 0.5)``, given weight 0 on either side.
    """
    if not 0 <= edge_trim < 0.5:
        raise ValueError(f"edge_trim must be in [0, 0.5), got {edge_trim}")
    window = len(profile)
    profiles = []
    for k, start in enumerate(starts):
        trimmed = profile.clone()
        if k > 0:
            trimmed[: int(edge_trim * (starts[k - 1] + window - start))] = 0
        if k + 1 < len(starts):
            cut = int(edge_trim * (start + window - starts[k + 1]))
            if cut:
                trimmed[window - cut:] = 0
        profiles.append(trimmed)
    return profiles


def axis_total(starts: Sequence[int], profiles: Sequence[torch.Tensor], extent: int) -> torch.Tensor:
    """Summed weight of all windows at each position ``0..extent-1`` along one axis."""
    total = torch.zeros(extent, dtype=torch.float64)
    for start, profile in zip(starts, profiles):
        total[start:start + len(profile)] += profile
    return total


def outer(vectors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Outer product of 1D tensors: ``out[i, j, ...] = v0[i] * v1[j] * ...``."""
    result = vectors[0]
    for vector in vectors[1:]:
        result = result[..., None] * vector
    return result


def _axis_options(size: int, smallest: int, overlap: float, align: int, halo: int | None = None) -> list[tuple[int, int]]:
    """``(window, count)`` for each count of windows along an axis: the smallest aligned window
    of at least ``smallest`` pixels that covers ``size`` with that many windows.
    """
    full = max(align, math.ceil(size / align) * align)
    if halo is not None:
        smallest = max(smallest, 2 * halo + align)
    options: dict[int, int] = {}
    for window in range(full, min(full, max(align, smallest)) - 1, -align):
        options[len(axis_starts(size, window, overlap, align, halo))] = window
    return sorted((w, n) for n, w in options.items())


def auto_window(shape: Sequence[int], max_voxels: int, overlap: float = 0.25, align: int = MAX_AUTO_ALIGN,
                min_side: int = 64, halo: Sequence[int] | None = None) -> list[int]:
    """The window of at most ``max_voxels`` pixels that covers ``shape`` with the least work.

    Work is the number of windows times their size (pixels computed, overlaps included).
    Sides are multiples of ``align``; a side that splits its axis is at least ``min_side``
    and a quarter of the window's longest side, so that deep networks see enough context
    everywhere (a whole axis may be thinner: a 16-plane stack stays one window deep). Among
    windows of equal work the largest wins, then the one with the thinnest band (one window
    thick, the image wide: what streaming prediction holds in memory). With ``halo`` (one
    entry per axis), neighbours overlap by twice the halo instead of ``overlap`` (crop tiling),
    and the quarter rule does not apply: the halo gives every kept pixel its whole context.

    Raises
    ------
    ValueError
        If no such window fits in ``max_voxels``.
    """
    halos = list(halo) if halo is not None else [None] * len(shape)
    options = [_axis_options(size, min_side, overlap, align, h) for size, h in zip(shape, halos)]
    best: tuple[int, int, int, tuple[int, ...]] | None = None
    for combo in itertools.product(*options):
        voxels = math.prod(w for w, _ in combo)
        longest = max(w for w, _ in combo)
        if voxels > max_voxels or halo is None and any(n > 1 and 4 * w < longest for w, n in combo):
            continue
        band = min(w * math.prod(size for b, size in enumerate(shape) if b != a) for a, (w, _) in enumerate(combo))
        key = (math.prod(w * n for w, n in combo), -voxels, band, tuple(w for w, _ in combo))
        if best is None or key < best:
            best = key
    if best is None:
        raise ValueError(f"no window of multiples of {align} pixels, sides of at least {min_side}, fits in {max_voxels} pixels")
    return list(best[3])


def tiling_work(shape: Sequence[int], window: Sequence[int], overlap: float, align: int,
                halo: Sequence[int] | None = None) -> int:
    """Pixels computed to cover ``shape`` with ``window``: windows times their size, overlaps included."""
    halos = list(halo) if halo is not None else [None] * len(shape)
    return math.prod(len(axis_starts(s, w, overlap, align, h)) * w for s, w, h in zip(shape, window, halos))
