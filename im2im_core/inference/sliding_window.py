"""Sliding-window inference that streams: bounded memory, any image size, 2D and 3D alike.

MONAI's ``sliding_window_inference`` holds the whole input, output and weight map in memory,
so it cannot predict an image larger than memory or write it as it goes; this module keeps
the same idea (overlapping windows, Gaussian or constant blending) but sweeps the image one
*band* of windows at a time along the first spatial axis. Only the band's input slab and an
output buffer one window thick are in memory; finished rows go to a ``sink`` (an in-memory
tensor, or an OME-Zarr store) as soon as no later window touches them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from im2im_core.inference.windows import BlendMode, auto_align, axis_profiles, axis_starts, axis_total, outer, window_profile

Predictor = Callable[[torch.Tensor], torch.Tensor]
#: ``sink(rows, block)``: rows ``rows`` of the first spatial axis are final; ``block`` is ``(C, rows, ...)``.
Sink = Callable[[slice, torch.Tensor], None]
PaddingMode = Literal["constant", "reflect", "replicate"]


def read_region(image: Any, region: tuple[slice, ...]) -> torch.Tensor:
    """``image[region]`` as a tensor, for a torch tensor, numpy, zarr or dask array."""
    if isinstance(image, torch.Tensor):
        return image[region]
    part = image[region]
    if hasattr(part, "compute"):
        part = part.compute()
    return torch.from_numpy(np.ascontiguousarray(part))


def _chunks(items: Iterator[tuple[int, ...]], size: int) -> Iterator[list[tuple[int, ...]]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


def _window(slab: torch.Tensor, offsets: Sequence[int], roi: Sequence[int], padding_mode: PaddingMode) -> torch.Tensor:
    """The window at ``offsets`` of ``slab`` (``(C, *spatial)``), padded at the end to ``roi``."""
    region = (slice(None), *(slice(o, o + r) for o, r in zip(offsets, roi)))
    window = slab[region]
    missing = [r - s for r, s in zip(roi, window.shape[1:])]
    if not any(missing):
        return window
    pad = [amount for m in reversed(missing) for amount in (0, m)]
    if padding_mode == "constant":
        return F.pad(window, pad)
    return F.pad(window[None].float(), pad, mode=padding_mode)[0]


@torch.no_grad()
def predict_windows(predictor: Predictor, image: Any, roi_size: Sequence[int], overlap: float = 0.25,
                    sw_batch_size: int = 4, mode: BlendMode = "gaussian", *, sigma_scale: float = 0.125,
                    edge_trim: float = 0.25, align: int | None = None, padding_mode: PaddingMode = "constant",
                    device: torch.device | str | None = None, prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    sink: Sink | None = None, progress: Callable[[int, int], None] | None = None) -> torch.Tensor | None:
    """Blend the predictions of overlapping windows of one image ``(C, *spatial)``.

    Parameters
    ----------
    predictor : callable
        Maps a batch of windows ``(B, C, *roi_size)`` to outputs ``(B, C_out, *roi_size)``.
    image : torch.Tensor, numpy.ndarray, zarr or dask array
        One image, channels first; read one band of windows at a time.
    roi_size : sequence of int
        Window size, one entry per spatial axis; an image smaller than a window is padded.
    overlap : float
        Fraction of a window shared with its neighbour along each axis, in ``[0, 1)``.
    sw_batch_size : int
        Windows passed to ``predictor`` at once.
    mode : {"gaussian", "constant"}
        Blending weights; ``gaussian`` gives less weight to window borders.
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
        Applied to each batch of windows on ``device`` before ``predictor`` (e.g. normalization).
    sink : callable, optional
        ``sink(rows, block)`` receives each finished band of rows; default: fill and return one
        output tensor (on the image's device).
    progress : callable, optional
        Called as ``progress(done, total)`` with the numbers of windows after each batch.

    Returns
    -------
    torch.Tensor or None
        The blended float32 output ``(C_out, *spatial)``, or None when ``sink`` is given.
    """
    spatial = tuple(int(s) for s in image.shape[1:])
    roi = [int(r) for r in roi_size]
    if len(roi) != len(spatial):
        raise ValueError(f"roi_size {roi} has {len(roi)} entries but the image has {len(spatial)} spatial axes {spatial}")
    align = auto_align(roi) if align is None else align
    starts = [axis_starts(s, r, overlap, align) for s, r in zip(spatial, roi)]
    extents = [st[-1] + r for st, r in zip(starts, roi)]
    profiles = [axis_profiles(st, window_profile(r, mode, sigma_scale), edge_trim) for st, r in zip(starts, roi)]
    totals = [axis_total(st, p, e) for st, p, e in zip(starts, profiles, extents)]
    index = [{start: k for k, start in enumerate(st)} for st in starts]
    out_device = image.device if isinstance(image, torch.Tensor) else torch.device("cpu")
    device = torch.device(device) if device is not None else out_device
    total_windows = int(np.prod([len(st) for st in starts]))
    result: list[torch.Tensor] = []
    buffer: torch.Tensor | None = None
    done = 0

    def keep(rows: slice, block: torch.Tensor) -> None:
        if not result:
            result.append(torch.empty((block.shape[0], *spatial), dtype=block.dtype, device=block.device))
        result[0][:, rows] = block

    emit = sink if sink is not None else keep
    for band, start in enumerate(starts[0]):
        stop = min(start + roi[0], spatial[0])
        slab = read_region(image, (slice(None), slice(start, stop)))
        for batch in _chunks(itertools.product(*starts[1:]), sw_batch_size):
            windows = torch.stack([_window(slab, (0, *o), roi, padding_mode) for o in batch]).to(device, torch.float32)
            if prepare is not None:
                windows = prepare(windows)
            outputs = predictor(windows).to(out_device, torch.float32)
            if buffer is None:
                buffer = torch.zeros((outputs.shape[1], roi[0], *extents[1:]), device=out_device)
            for o, output in zip(batch, outputs):
                region = (slice(None), slice(0, roi[0]), *(slice(s, s + r) for s, r in zip(o, roi[1:])))
                factors = [profiles[0][band], *(profiles[axis + 1][index[axis + 1][s]] for axis, s in enumerate(o))]
                buffer[region] += output * outer(factors).to(out_device, torch.float32)
            done += len(batch)
            if progress is not None:
                progress(done, total_windows)
        assert buffer is not None
        following = starts[0][band + 1] if band + 1 < len(starts[0]) else extents[0]
        finished = following - start
        rows = slice(start, min(following, spatial[0]))
        if rows.stop > rows.start:
            block = buffer[(slice(None), slice(0, rows.stop - rows.start), *(slice(0, s) for s in spatial[1:]))].clone()
            for axis, total in enumerate(totals):
                part = total[rows] if axis == 0 else total[: spatial[axis]]
                shape = [1] * (len(spatial) + 1)
                shape[axis + 1] = -1
                block /= part.float().to(out_device).view(shape)
            emit(rows, block)
        buffer[:, : roi[0] - finished] = buffer[:, finished:].clone()
        buffer[:, roi[0] - finished:] = 0
    return result[0] if sink is None else None


def predict_image(framework: Any, image: torch.Tensor, roi_size: Sequence[int], overlap: float = 0.25,
                  sw_batch_size: int = 4, mode: BlendMode = "gaussian") -> torch.Tensor:
    """Raw output of ``framework.predict_patch`` for a batch of whole images ``(B, C, [Z], Y, X)``.

    Windows of ``roi_size`` overlap by the fraction ``overlap`` and are blended with ``mode``;
    an image smaller than a window is padded and the padding cut off again.
    """
    outputs = [predict_windows(framework.predict_patch, item, roi_size, overlap, sw_batch_size, mode) for item in image]
    return torch.stack(outputs)  # type: ignore[arg-type]
