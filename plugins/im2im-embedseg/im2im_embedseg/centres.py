"""Instance centres from a label image, computed on the fly on each (augmented) training patch.

EmbedSeg trains every pixel of an object to point at one centre of that object. The centroid
is cheapest, but for a non-convex object (a bent worm, a crescent, an object in two parts) it
can lie outside the object; the medoid (the object pixel with the smallest summed distance
to the other pixels of the object) always lies inside. Distances are Euclidean in the
physical coordinates given (anisotropic voxels scaled), so a medoid of a z-stack is found in
physical space.

Modes
-----
``centroid``
    Mean coordinate of the object's pixels.
``approximate_medoid``
    The medoid of an evenly spaced subsample (in raster order) of at most ``samples`` pixels
    of the object: exact for objects of at most ``samples`` pixels, and all objects of a
    patch are done in one batched distance computation.
``medoid``
    The exact medoid. On a pixel grid (the loss passes the voxel size) all objects at once by
    FFT convolution of their masks with the distance kernel; otherwise object by object
    (quadratic in the object's size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from scipy.fft import next_fast_len

CentreMode = Literal["centroid", "approximate_medoid", "medoid"]
CENTRE_MODES = ("centroid", "approximate_medoid", "medoid")

#: Entries of one chunk of a distance matrix (float32): 64 MiB.
CHUNK_ELEMENTS = 2**24


def _grouped(ids: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel indices sorted by instance (raster order kept within one), sizes and group starts."""
    order = torch.argsort(ids, stable=True)
    sizes = torch.bincount(ids, minlength=count)
    return order, sizes, sizes.cumsum(0) - sizes


def centroids(coords: torch.Tensor, ids: torch.Tensor, count: int) -> torch.Tensor:
    """Mean coordinates ``(count, D)`` of the pixels of each instance."""
    sums = coords.new_zeros(count, coords.shape[1]).index_add_(0, ids, coords)
    sizes = torch.bincount(ids, minlength=count).clamp(min=1).to(coords.dtype)
    return sums / sizes[:, None]


def subsample_medoids(coords: torch.Tensor, ids: torch.Tensor, count: int, samples: int = 256) -> torch.Tensor:
    """Medoids ``(count, D)`` of evenly spaced subsamples of at most ``samples`` pixels per instance."""
    order, sizes, starts = _grouped(ids, count)
    sorted_ids = ids[order]
    rank = torch.arange(len(ids), device=ids.device) - starts[sorted_ids]
    step = ((sizes + samples - 1) // samples).clamp(min=1)[sorted_ids]
    keep = rank % step == 0
    slot = (rank // step)[keep]  # < samples, since size <= step * samples
    chosen_ids = sorted_ids[keep]
    points = coords.new_zeros(count, samples, coords.shape[1])
    valid = torch.zeros(count, samples, dtype=torch.bool, device=coords.device)
    points[chosen_ids, slot] = coords[order[keep]]
    valid[chosen_ids, slot] = True
    centres = []
    per_chunk = max(1, CHUNK_ELEMENTS // (samples * samples))
    for first in range(0, count, per_chunk):
        p, v = points[first:first + per_chunk], valid[first:first + per_chunk]
        summed = (torch.cdist(p, p) * v[:, None, :]).sum(-1).masked_fill(~v, float("inf"))
        centres.append(p[torch.arange(len(p), device=p.device), summed.argmin(dim=1)])
    return torch.cat(centres) if centres else coords.new_zeros(0, coords.shape[1])


def exact_medoids(coords: torch.Tensor, ids: torch.Tensor, count: int) -> torch.Tensor:
    """Exact medoids ``(count, D)``, instance by instance, distance rows in bounded chunks."""
    order, sizes, starts = _grouped(ids, count)
    centres = coords.new_zeros(count, coords.shape[1])
    for k, (start, size) in enumerate(zip(starts.tolist(), sizes.tolist())):
        if size == 0:
            continue
        points = coords[order[start:start + size]]
        rows = max(1, CHUNK_ELEMENTS // size)
        summed = torch.cat([torch.cdist(points[i:i + rows], points).sum(1) for i in range(0, size, rows)])
        centres[k] = points[summed.argmin()]
    return centres


def grid_medoids(coords: torch.Tensor, ids: torch.Tensor, count: int, spacing: Sequence[float]) -> torch.Tensor:
    """Exact medoids ``(count, D)`` of objects on a pixel grid, all objects at once.

    The summed distance from every pixel of an object's bounding box to the object's pixels is
    the convolution of the object's mask with the distance kernel, computed by FFT in float64
    for a batch of boxes (padded to the largest): no object-by-object distance matrix, so a
    patch's medoids cost a few FFTs instead of one ``n x n`` matrix per object. A pixel listed
    twice counts twice, as in :func:`exact_medoids`.

    Parameters
    ----------
    coords : torch.Tensor
        ``(N, D)`` coordinates, each a whole number of ``spacing`` (``index * spacing``).
    ids, count
        As for :func:`instance_centres`.
    spacing : sequence of float
        Physical size of a pixel per axis.
    """
    dims = coords.shape[1]
    step = torch.tensor(list(spacing), dtype=torch.float64, device=coords.device)
    positions = torch.round(coords.double() / step).long()  # (N, D) pixel indices
    lowest = positions.new_full((count, dims), torch.iinfo(torch.int64).max).scatter_reduce(
        0, ids[:, None].expand(-1, dims), positions, "amin")
    local = positions - lowest[ids]
    box = [int(n) + 1 for n in local.max(dim=0).values.tolist()]  # the largest object's box
    # FFT lengths of at least 2n - 1: the circular convolution's wrapped part lands only on indices
    # below n - 1, which are not kept (the box's pixels are outputs n - 1 .. 2n - 2)
    size = [next_fast_len(2 * n - 1, real=True) for n in box]
    if math.prod(size) > CHUNK_ELEMENTS:  # one box alone too large to transform at once: object by object
        return exact_medoids(coords, ids, count)
    axes = [torch.arange(-(n - 1), n, dtype=torch.float64, device=coords.device) * step[d] for d, n in enumerate(box)]
    kernel = torch.sqrt(sum(a**2 for a in torch.meshgrid(*axes, indexing="ij")))
    kernel_spectrum = torch.fft.rfftn(kernel, s=size)
    per_chunk = max(1, CHUNK_ELEMENTS // math.prod(size))
    summed = torch.empty(len(ids), dtype=torch.float64, device=coords.device)
    for first in range(0, count, per_chunk):
        last = min(count, first + per_chunk)
        chosen = ((ids >= first) & (ids < last)).nonzero().squeeze(1)
        masks = torch.zeros((last - first, *box), dtype=torch.float64, device=coords.device)
        masks.index_put_((ids[chosen] - first, *local[chosen].T), torch.ones(len(chosen), dtype=torch.float64,
                                                                              device=coords.device), accumulate=True)
        sums = torch.fft.irfftn(torch.fft.rfftn(masks, s=size) * kernel_spectrum, s=size)
        inside = (slice(None), *(slice(n - 1, 2 * n - 1) for n in box))  # output index p + n - 1 is box pixel p
        summed[chosen] = sums[inside][(ids[chosen] - first, *local[chosen].T)]
    least = summed.new_full((count,), float("inf")).scatter_reduce(0, ids, summed, "amin")
    slack = 1e-9 * (1.0 + least[ids].abs())  # FFT rounding: a lone pixel's own sum, 0, can come out as -1e-13
    candidate = torch.arange(len(ids), device=ids.device).masked_fill(summed > least[ids] + slack, len(ids))
    best = candidate.new_full((count,), len(ids)).scatter_reduce(0, ids, candidate, "amin")  # first pixel of the least sum
    return coords[best.clamp(max=len(ids) - 1)]


def instance_centres(coords: torch.Tensor, ids: torch.Tensor, count: int, mode: CentreMode = "approximate_medoid",
                     samples: int = 256, spacing: Sequence[float] | None = None) -> torch.Tensor:
    """The centre of each instance.

    Parameters
    ----------
    coords : torch.Tensor
        ``(N, D)`` physical coordinates of the instance pixels (background excluded).
    ids : torch.Tensor
        ``(N,)`` int64 instance index of each pixel, in ``[0, count)``.
    count : int
        Number of instances.
    mode : {"centroid", "approximate_medoid", "medoid"}
        See the module docstring.
    samples : int
        Subsample size of ``approximate_medoid``.
    spacing : sequence of float, optional
        The pixel size per axis when ``coords`` lie on a pixel grid (``index * spacing``): then
        ``medoid`` is computed for all objects at once (:func:`grid_medoids`).

    Returns
    -------
    torch.Tensor
        ``(count, D)`` centres, in the coordinates of ``coords``.
    """
    if mode == "centroid":
        return centroids(coords, ids, count)
    if mode == "approximate_medoid":
        return subsample_medoids(coords, ids, count, samples)
    if mode == "medoid":
        return exact_medoids(coords, ids, count) if spacing is None else grid_medoids(coords, ids, count, spacing)
    raise ValueError(f"centre mode {mode!r} is not one of {', '.join(CENTRE_MODES)}")
