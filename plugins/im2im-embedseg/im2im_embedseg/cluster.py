"""Clustering of a whole image's embeddings into instances, on CPU or GPU (torch).

The clustering of Neven et al. (CVPR 2019) as EmbedSeg uses it, greedy by seed score:

1. Foreground: pixels whose seed score exceeds ``foreground_threshold``. Candidates: foreground
   pixels whose seed score exceeds ``seed_threshold``.
2. Take the unvisited candidate with the highest seed; its embedding is the centre and its
   sigma the bandwidth. The proposal is every foreground pixel whose embedding lies within
   the bandwidth (``phi > 0.5``).
3. Accept it as a new object when at least ``min_size`` of its pixels are not yet in an object
   and these are more than half of it (otherwise it is a duplicate of an object found
   before); either way its pixels are visited and stop being candidates. Repeat from 2.

Speed: the image-wide work is done once (embeddings, masks, one list of candidates). Each
object then touches only a box around its centre: an embedding is the pixel's position plus an
offset, and no offset in the image is longer than its largest one, so only pixels within that
length plus the bandwidth radius of the centre (per axis) can be in the proposal. The result
is exactly that of evaluating every pixel for every seed. Candidates are sorted by seed once.
The loop over objects runs on numpy views of the CPU tensors (small operations cost about 4x
less than in torch), on torch tensors on a GPU: one code path, either array type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from im2im_embedseg.embedding import coordinate_grid, relative_voxel_size

#: ``phi > 0.5`` is ``sum_d (e_d - c_d)**2 / (2 sigma_d**2) < ln 2``; per axis ``|e_d - c_d| < RADIUS * sigma_d``.
LOG_HALF = math.log(2.0)
RADIUS = math.sqrt(2.0 * LOG_HALF)
#: Candidates checked at once for the next one still unvisited.
CANDIDATE_BLOCK = 256


@torch.no_grad()
def cluster(decoded: torch.Tensor, voxel_size: Sequence[float] | None = None, offset_range: float | None = None,
            seed_threshold: float = 0.9, foreground_threshold: float = 0.5, min_size: int = 10) -> torch.Tensor:
    """Instance labels of one whole image from its decoded EmbedSeg output.

    Parameters
    ----------
    decoded : torch.Tensor
        ``(2D+1, *spatial)``: offsets (``D`` channels, physical units), ``log(sigma)`` (``D``),
        seed score in 0..1 (``embedding.decode``, blended over windows).
    voxel_size : list of float, optional
        Physical voxel size per axis ``(Z,) Y, X`` used in training; ``None``: isotropic.
    offset_range : float, optional
        A bound on the offsets, e.g. the network's ``tanh`` scale; ``None``: the largest offset
        in ``decoded``. It bounds the box searched around each centre; ``float("inf")``
        searches the whole image for every object (same result, slower).
    seed_threshold : float
        Lowest seed score of an object's centre.
    foreground_threshold : float
        Lowest seed score of a pixel that belongs to an object.
    min_size : int
        Fewest pixels of an object.

    Returns
    -------
    torch.Tensor
        ``spatial`` int32 labels, 0 background, objects 1..N in the order found; on the
        device of ``decoded``.
    """
    dims = (decoded.shape[0] - 1) // 2
    spatial = tuple(decoded.shape[1:])
    if decoded.shape[0] != 2 * dims + 1 or len(spatial) != dims:
        raise ValueError(f"expected a decoded output (2D+1, *spatial) with D spatial axes, got shape {tuple(decoded.shape)}")
    sizes = relative_voxel_size(voxel_size, dims)
    offsets = decoded[:dims].float()
    embedding = coordinate_grid(spatial, sizes, decoded.device) + offsets
    log_sigma, seed = decoded[dims:2 * dims].float().contiguous(), decoded[2 * dims].float()
    reach = offsets.abs().amax().item() if offsets.numel() else 0.0
    if offset_range is not None:
        reach = math.inf if math.isinf(offset_range) else min(reach, offset_range)
    foreground = seed > foreground_threshold
    labels = torch.zeros(spatial, dtype=torch.int32, device=decoded.device)
    flat_seed = seed.reshape(-1)
    candidates = (foreground & (seed > seed_threshold)).reshape(-1).nonzero().squeeze(1)
    candidates = candidates[torch.sort(flat_seed[candidates], descending=True, stable=True).indices]
    arrays = [embedding, log_sigma, foreground, foreground.clone(), candidates, labels]
    if decoded.device.type == "cpu":  # numpy views of the same memory: small operations cost ~4x less
        arrays = [a.numpy() for a in arrays]
    _greedy(*arrays, sizes, reach, max(min_size, 1))
    return labels


def _greedy(embedding: Any, log_sigma: Any, foreground: Any, remaining: Any, candidates: Any, labels: Any,
            sizes: Sequence[float], reach: float, min_size: int) -> None:
    """The greedy loop on numpy arrays or torch tensors alike; fills ``labels`` in place.

    ``remaining``: foreground pixels not yet in any proposal (updated in place);
    ``candidates``: flat indices of seed pixels, best first. A candidate is alive while its
    pixel is remaining: the sorted list is walked, dead candidates skipped.
    """
    dims = len(sizes)
    alive, flat_embedding, flat_sigma = remaining.reshape(-1), embedding.reshape(dims, -1), log_sigma.reshape(dims, -1)
    pointer, count = 0, 0
    while pointer < len(candidates):
        block = candidates[pointer:pointer + CANDIDATE_BLOCK]
        first = _first_true(alive[block])
        if first < 0:
            pointer += len(block)
            continue
        pointer += first + 1
        flat = int(block[first])
        centre = flat_embedding[:, flat].tolist()
        sigma = [math.exp(v) for v in flat_sigma[:, flat].tolist()]
        box = _box(centre, tuple(labels.shape), sizes, reach, sigma)
        exponent = sum((embedding[d][box] - centre[d]) ** 2 * (0.5 / sigma[d] ** 2) for d in range(dims))
        proposal = (exponent < LOG_HALF) & foreground[box]
        region = remaining[box]
        new = proposal & region
        n_new, n_proposal = int(new.sum()), int(proposal.sum())
        if n_new >= min_size and 2 * n_new > n_proposal:
            count += 1
            labels[box][new] = count
        region &= ~proposal  # a view: updates ``remaining`` and so ``alive``
        alive[flat] = False


def _first_true(mask: Any) -> int:
    """Index of the first true entry of a 1D boolean numpy array or tensor, -1 if none."""
    if isinstance(mask, np.ndarray):
        found = np.flatnonzero(mask)
        return int(found[0]) if len(found) else -1
    found = mask.nonzero()
    return int(found[0, 0]) if len(found) else -1


def _box(centre: Sequence[float], spatial: tuple[int, ...], sizes: Sequence[float], reach: float,
         sigma: Sequence[float]) -> tuple[slice, ...]:
    """The pixels whose embedding can lie within the bandwidth of ``centre`` (physical units).

    A member's embedding is within ``RADIUS * sigma`` of the centre and within ``reach`` (the
    largest offset) of the member itself, per axis.
    """
    if math.isinf(reach):
        return tuple(slice(0, n) for n in spatial)
    box = []
    for c, s, v, n in zip(centre, sigma, sizes, spatial):
        extent = (reach + RADIUS * s) / v
        box.append(slice(max(0, math.floor(c / v - extent)), max(0, min(n, math.ceil(c / v + extent) + 1))))
    return tuple(box)
