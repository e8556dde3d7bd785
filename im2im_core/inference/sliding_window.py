"""Sliding-window inference that streams: bounded memory, any image size, 2D and 3D alike.

MONAI's ``sliding_window_inference`` holds the whole input, output and weight map in memory,
so it cannot predict an image larger than memory or write it as it goes; this module keeps
the same idea (overlapping windows, Gaussian or constant blending) but sweeps the image one
*band* of windows at a time along one spatial axis (the one with the smallest bands). Only
the band's input slab and an output buffer one window thick are in memory; finished rows go
to a ``sink`` (an in-memory tensor, or an OME-Zarr store) as soon as no later window touches
them.

Windows are either blended (``gaussian`` or ``constant`` weights, MONAI's way) or cropped
(``crop``): neighbours overlap by twice a halo, and each window's output is kept only away
from the borders it shares (``windows.crop_cores``), copied without weights. Crop tiling is
exact, one whole-image pass up to float rounding, for a network whose receptive field fits in
the halo (``receptive_field.py`` measures it).
"""

from __future__ import annotations

import ctypes
import itertools
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from im2im_core.errors import DataError
from im2im_core.inference.windows import (
    BlendMode,
    auto_align,
    axis_profiles,
    axis_starts,
    axis_total,
    crop_cores,
    outer,
    window_profile,
)

Predictor = Callable[[torch.Tensor], torch.Tensor]
#: ``sink(region, block)``: ``block`` ``(C, ...)`` is the final output at ``region`` (one slice per spatial axis);
#: it may be a view of an internal buffer, valid until ``sink`` returns (copy what you keep).
Sink = Callable[[tuple[slice, ...], torch.Tensor], None]
PaddingMode = Literal["constant", "reflect", "replicate"]


def read_region(image: Any, region: tuple[slice, ...]) -> torch.Tensor:
    """``image[region]`` as a tensor, for a torch tensor, numpy, zarr or dask array."""
    if isinstance(image, torch.Tensor):
        return image[region]
    part = computed(image[region])  # may be strided (a lazy image read with its axes moved): windows copy it anyway
    return torch.from_numpy(part if all(stride > 0 for stride in part.strides) else np.ascontiguousarray(part))


def computed(part: Any) -> np.ndarray:
    """``part`` in memory (a lazy array computed); a file behind it that cannot be read is one clear error.

    A dask array's chunks are stored straight into one array allocated once (``dask.array.store``):
    computing it would concatenate them axis by axis, holding several copies of a band at once.
    """
    if not hasattr(part, "compute"):
        return np.asarray(part)
    try:
        if hasattr(part, "store"):
            target = np.empty(part.shape, part.dtype)
            part.store(target, lock=False)  # chunks fill disjoint regions
            return target
        return np.asarray(part.compute())
    except Exception as exc:  # the file behind a lazy image: truncated or damaged
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"cannot read the pixels of the image: truncated or damaged file ({type(exc).__name__}: "
                        f"{reason})") from None


def _chunks(items: Iterator[tuple[int, ...]], size: int) -> Iterator[list[tuple[int, ...]]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


def window_of(slab: torch.Tensor, offsets: Sequence[int], roi: Sequence[int], padding_mode: PaddingMode,
              prepare: Callable[[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
    """The window at ``offsets`` of ``slab`` (``(C, *spatial)``) as float32, ``prepare``-d, then
    padded at the end to ``roi`` (so padding is in the units the network sees).
    """
    region = (slice(None), *(slice(o, o + r) for o, r in zip(offsets, roi)))
    window = slab[region].float()
    window = prepare(window) if prepare is not None else window
    missing = [r - s for r, s in zip(roi, window.shape[1:])]
    if not any(missing):
        return window
    pad = [amount for m in reversed(missing) for amount in (0, m)]
    if padding_mode == "constant":
        return F.pad(window, pad)
    return F.pad(window[None], pad, mode=padding_mode)[0]


def sweep_axis(spatial: Sequence[int], roi: Sequence[int]) -> int:
    """The spatial axis whose bands (one window thick, the image wide) are smallest."""
    return min(range(len(spatial)), key=lambda a: roi[a] * math.prod(s for b, s in enumerate(spatial) if b != a))


def _move_axis(image: Any, source: int, destination: int) -> Any:
    if source == destination:
        return image
    if isinstance(image, torch.Tensor):
        return image.movedim(source, destination)
    return np.moveaxis(image, source, destination)  # numpy, and dask through __array_function__


def _shift(buffer: torch.Tensor, finished: int) -> None:
    """Move rows ``finished:`` of ``buffer`` (axis 1) to the front and zero the rest, in place."""
    keep = buffer.shape[1] - finished
    for i in range(0, keep, finished):  # pieces no longer than the shift never overlap their source
        n = min(finished, keep - i)
        buffer[:, i:i + n].copy_(buffer[:, finished + i:finished + i + n])
    buffer[:, keep:] = 0


@torch.no_grad()
def predict_windows(predictor: Predictor, image: Any, roi_size: Sequence[int], overlap: float = 0.25,
                    sw_batch_size: int = 4, mode: BlendMode = "gaussian", *, sigma_scale: float = 0.125,
                    edge_trim: float = 0.25, align: int | None = None, padding_mode: PaddingMode = "constant",
                    device: torch.device | str | None = None, prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    sink: Sink | None = None, progress: Callable[[int, int], None] | None = None,
                    axis: int | None = None, block_bytes: int = 2**25,
                    emit_multiple: int | Sequence[int] = 1, halo: Sequence[int] | None = None) -> torch.Tensor | None:
    """Blend the predictions of overlapping windows of one image ``(C, *spatial)``.

    Parameters
    ----------
    predictor : callable
        Maps a batch of windows ``(B, C, *roi_size)`` to outputs ``(B, C_out, *roi_size)``.
    image : torch.Tensor, numpy.ndarray or dask array
        One image, channels first; read one band of windows at a time.
    roi_size : sequence of int
        Window size, one entry per spatial axis; an image smaller than a window is padded.
    overlap : float
        Fraction of a window shared with its neighbour along each axis, in ``[0, 1)``.
    sw_batch_size : int
        Windows passed to ``predictor`` at once.
    mode : {"gaussian", "constant", "crop"}
        Blending weights (``gaussian`` gives less weight to window borders), or crop tiling
        with ``halo`` (``overlap``, ``sigma_scale`` and ``edge_trim`` then do not apply).
    sigma_scale : float
        Standard deviation of the Gaussian as a fraction of the window size.
    edge_trim : float
        Fraction of each overlap, on either side, where a window gets weight 0 (its border
        pixels, which see the window's zero padding); in ``[0, 0.5)``.
    align : int, optional
        Window starts are multiples of ``align`` (default: the largest power of two up to 16
        dividing every window size), so stride-2 networks see one pixel grid everywhere.
    padding_mode : {"constant", "reflect", "replicate"}
        How windows that reach past the image end are filled (``constant``: zeros).
    device : torch.device or str, optional
        Where ``predictor`` runs; default: the image's device (tensors) or the CPU.
    prepare : callable, optional
        Applied to the pixels of each window before it is padded (e.g. normalization).
    sink : callable, optional
        ``sink(region, block)``: ``block`` ``(C_out, ...)`` is final output for ``region`` (one
        slice per spatial axis), valid until ``sink`` returns (it may be a view of an internal
        buffer); default: fill and return one tensor (on the image's device).
    progress : callable, optional
        Called as ``progress(done, total)`` with the numbers of windows after each batch.
    axis : int, optional
        Spatial axis swept band by band; default: :func:`sweep_axis`, the smallest bands.
    block_bytes : int
        Finished bands go to ``sink`` in blocks of about this many bytes.
    emit_multiple : int or sequence of int
        Blocks start and end at multiples of this along the swept axis (one entry per spatial
        axis, or one for all), except at the image end: finished rows wait until then. Zarr
        chunk sizes make writes whole-chunk, which is several times faster.
    halo : sequence of int, optional
        With ``mode="crop"``: pixels each window gives up at each border it shares with another
        window, one entry per spatial axis (the network's receptive-field radius for exact tiling).

    Returns
    -------
    torch.Tensor or None
        The blended float32 output ``(C_out, *spatial)``, or None when ``sink`` is given.
    """
    spatial = tuple(int(s) for s in image.shape[1:])
    if len(roi_size) != len(spatial):
        raise ValueError(f"roi_size {list(roi_size)} has {len(roi_size)} entries "
                         f"but the image has {len(spatial)} spatial axes {spatial}")
    axis = sweep_axis(spatial, roi_size) if axis is None else axis
    order = [axis, *(a for a in range(len(spatial)) if a != axis)]  # swept axis first, internally
    roi, size = [int(roi_size[a]) for a in order], [spatial[a] for a in order]
    align = auto_align(roi) if align is None else align
    crop = mode == "crop"
    if crop and (halo is None or len(halo) != len(spatial)):
        raise ValueError(f"crop tiling needs a halo per spatial axis ({len(spatial)}), got {halo}")
    halos = [int(halo[a]) for a in order] if crop and halo is not None else [None] * len(spatial)
    starts = [axis_starts(s, r, overlap, align, h) for s, r, h in zip(size, roi, halos)]
    extents = [st[-1] + r for st, r in zip(starts, roi)]
    if crop:
        cores = [crop_cores(st, r, e) for st, r, e in zip(starts, roi, extents)]
    else:
        profiles = [axis_profiles(st, window_profile(r, mode, sigma_scale), edge_trim) for st, r in zip(starts, roi)]
        totals = [axis_total(st, p, e).float() for st, p, e in zip(starts, profiles, extents)]
    index = [{start: k for k, start in enumerate(st)} for st in starts]
    out_device = image.device if isinstance(image, torch.Tensor) else torch.device("cpu")
    device = torch.device(device) if device is not None else out_device
    total_windows = math.prod(len(st) for st in starts)
    source = _move_axis(image, axis + 1, 1)
    result: list[torch.Tensor] = []

    def keep(region: tuple[slice, ...], block: torch.Tensor) -> None:
        if not result:
            result.append(torch.empty((block.shape[0], *spatial), dtype=block.dtype, device=block.device))
        result[0][(slice(None), *region)] = block

    multiple = emit_multiple if isinstance(emit_multiple, int) else int(emit_multiple[axis])
    pending: list[tuple[int, torch.Tensor]] = []  # finished rows not yet at a multiple

    def emit(first: int, block: torch.Tensor) -> None:
        if pending:
            first, block = pending[0][0], torch.cat([pending.pop()[1], block], dim=1)
        last = first + block.shape[1]
        cut = last if last == spatial[axis] else max(first, last // multiple * multiple)
        if cut < last:
            pending.append((cut, block[:, cut - first:].clone()))
        if cut > first:
            region = [slice(0, n) for n in spatial]
            region[axis] = slice(first, cut)
            (sink or keep)(tuple(region), _move_axis(block[:, : cut - first], 1, axis + 1))

    def run(batch: list[tuple[int, ...]], slab: torch.Tensor) -> torch.Tensor:
        windows = [window_of(slab, (0, *o), roi, padding_mode, prepare) for o in batch]
        windows = (windows[0][None] if len(windows) == 1 else torch.stack(windows)).to(device)  # one: not copied
        return _move_axis(predictor(_move_axis(windows, 2, axis + 2)), axis + 2, 2).to(out_device, torch.float32)

    buffer: torch.Tensor | None = None
    done = 0
    for band, start in enumerate(starts[0]):
        slab = read_region(source, (slice(None), slice(start, min(start + roi[0], size[0]))))
        for batch in _chunks(itertools.product(*starts[1:]), sw_batch_size):
            outputs = run(batch, slab)
            if buffer is None:
                buffer = torch.zeros((outputs.shape[1], roi[0], *extents[1:]), device=out_device)
            for o, output in zip(batch, outputs):
                if crop:  # the window's core, copied: cores tile the image
                    kept = [cores[0][band], *(cores[a + 1][index[a + 1][s]] for a, s in enumerate(o))]
                    region = (slice(None), *(slice(s + lo, s + hi) for s, (lo, hi) in zip((0, *o), kept)))
                    buffer[region] = output[(slice(None), *(slice(lo, hi) for lo, hi in kept))]
                    continue
                region = (slice(None), slice(0, roi[0]), *(slice(s, s + r) for s, r in zip(o, roi[1:])))
                factors = [profiles[0][band], *(profiles[a + 1][index[a + 1][s]] for a, s in enumerate(o))]
                buffer[region] += output * outer(factors).to(out_device, torch.float32)
            done += len(batch)
            if progress is not None:
                progress(done, total_windows)
        assert buffer is not None
        following = starts[0][band + 1] if band + 1 < len(starts[0]) else extents[0]
        row_bytes = 4 * buffer.shape[0] * math.prod(size[1:])
        step = max(1, block_bytes // row_bytes // multiple) * multiple
        for first in range(start, min(following, size[0]), step):
            last = min(first + step, following, size[0])
            block = buffer[(slice(None), slice(first - start, last - start), *(slice(0, n) for n in size[1:]))]
            if crop:  # a view of the buffer: the sink copies it before the buffer moves on
                emit(first, block)
                continue
            block = block / totals[0][first:last].to(out_device).view(1, -1, *[1] * (len(size) - 1))
            for a in range(1, len(size)):
                shape = [1] * (len(size) + 1)
                shape[a + 1] = -1
                block /= totals[a][: size[a]].to(out_device).view(shape)
            emit(first, block)
        _shift(buffer, following - start)
        del slab, outputs  # before the next band is read: never two slabs at once
        release_freed_memory()
    return result[0] if sink is None else None


def release_freed_memory() -> None:
    """Hand memory that was freed back to the operating system (glibc's ``malloc_trim``; elsewhere nothing).

    glibc keeps freed blocks under its mmap threshold (up to 32 MB: the chunk arrays of a lazy
    read, zarr's encode buffers) in its heaps, where the next band's larger blocks do not fit,
    so a streamed prediction's resident memory creeps up by about 0.1 GB on a 2 GB volume.
    Trimming once per band costs a few milliseconds. Dask's distributed workers do the same.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc() -> Any:
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # musl or another C library
        return None


_LIBC = _glibc()

