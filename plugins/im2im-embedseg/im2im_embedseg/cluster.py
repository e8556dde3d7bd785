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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
    log_sigma, seed = decoded[dims:2 * dims].float(), decoded[2 * dims].float()
    reach = offsets.abs().amax().item() if offsets.numel() else 0.0
    reach = min(reach, offset_range) if offset_range is not None else reach
    foreground = seed > foreground_threshold
    remaining = foreground.clone()  # foreground pixels not yet in any proposal
    labels = torch.zeros(spatial, dtype=torch.int32, device=decoded.device)
    flat_seed = seed.reshape(-1)
    candidates = (foreground & (seed > seed_threshold)).reshape(-1).nonzero().squeeze(1)
    candidates = candidates[torch.sort(flat_seed[candidates], descending=True, stable=True).indices]
    # A candidate is alive while its pixel is remaining: walk the sorted list, skipping dead ones.
    alive_flat, flat_embedding, flat_sigma = remaining.view(-1), embedding.reshape(dims, -1), log_sigma.reshape(dims, -1)
    pointer, count = 0, 0
    while pointer < len(candidates):
        block = candidates[pointer:pointer + CANDIDATE_BLOCK]
        first = alive_flat[block].nonzero()
        if not len(first):
            pointer += len(block)
            continue
        pointer += int(first[0]) + 1
        flat = int(block[int(first[0])])
        centre, sigma = flat_embedding[:, flat], flat_sigma[:, flat].exp()
        box = _box(centre.tolist(), spatial, sizes, reach, sigma.tolist())
        shape = (dims,) + (1,) * dims
        exponent = ((embedding[(slice(None), *box)] - centre.view(shape)) ** 2 * (0.5 / sigma.view(shape) ** 2)).sum(0)
        proposal = (exponent < LOG_HALF) & foreground[box]
        region = remaining[box]
        new = proposal & region
        n_new, n_proposal = torch.stack([new.sum(), proposal.sum()]).tolist()
        if n_new >= max(min_size, 1) and 2 * n_new > n_proposal:
            count += 1
            labels[box].masked_fill_(new, count)
        region &= ~proposal  # a view: updates ``remaining``
        alive_flat[flat] = False
    return labels


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
