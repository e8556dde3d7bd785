"""The spatial embedding of a pixel: its position plus a predicted offset, in physical units.

Neven et al., "Instance segmentation by jointly optimizing spatial embeddings and clustering
bandwidth", CVPR 2019, and EmbedSeg (Lalit, Tomancak and Jug, MIDL 2021): the network
predicts for each pixel an offset vector to its object's centre, a clustering bandwidth
sigma per axis, and a seed score (how close the pixel's embedding lands to its centre).

Channels of a network output for ``D`` spatial axes (``D = 2`` or ``3``), axes in ``(Z,) Y, X``
order: ``0 .. D-1`` offsets, ``D .. 2D-1`` bandwidths, ``2D`` seed: ``2D + 1`` channels.

Units: the coordinate of a pixel along an axis is its index times that axis' voxel size
divided by the X voxel size, so distances are in X pixels also in anisotropic z-stacks.
Offsets are bounded (``tanh``) by ``offset_range`` such units; the bandwidth is
``sigma = sigma_init * exp(raw)``. Decoded outputs are ``[offsets, log(sigma), seed in 0..1]``;
they are what sliding-window prediction blends: offsets are relative to the pixel, so a
blend of the offsets of overlapping windows plus the whole image's coordinate grid is the
blend of the windows' absolute embeddings, and objects cut by window borders stitch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def output_channels(spatial_dims: int) -> int:
    """Channels of the raw network output: offsets and sigma per axis, and one seed map."""
    return 2 * spatial_dims + 1


def relative_voxel_size(voxel_size: Sequence[float] | None, spatial_dims: int) -> tuple[float, ...]:
    """Voxel size per axis ``(Z,) Y, X`` divided by the X size; ``None`` is isotropic.

    Raises
    ------
    ValueError
        If the number of entries is not ``spatial_dims`` or a size is not positive.
    """
    if voxel_size is None:
        return (1.0,) * spatial_dims
    sizes = tuple(float(v) for v in voxel_size)
    if len(sizes) != spatial_dims:
        raise ValueError(f"voxel_size {list(sizes)} has {len(sizes)} entries for {spatial_dims} spatial axes ((Z,) Y, X)")
    if min(sizes) <= 0:
        raise ValueError(f"voxel_size {list(sizes)}: every size must be > 0")
    return tuple(s / sizes[-1] for s in sizes)


def coordinate_grid(shape: Sequence[int], voxel_size: Sequence[float], device: torch.device | str | None = None,
                    origin: Sequence[int] | None = None) -> torch.Tensor:
    """``(D, *shape)`` float32: the physical coordinate of each pixel along each axis.

    ``origin`` is the index of the first pixel in a larger image (default: 0 on every axis).
    """
    origin = origin or [0] * len(shape)
    axes = [(torch.arange(n, device=device, dtype=torch.float32) + o) * v for n, o, v in zip(shape, origin, voxel_size)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def decode(raw: torch.Tensor, offset_range: float, sigma_init: float) -> torch.Tensor:
    """Raw network output ``(B, 2D+1, *spatial)`` to ``[offsets, log(sigma), seed]`` (same shape)."""
    dims = raw.ndim - 2
    if raw.shape[1] != output_channels(dims):
        raise ValueError(f"an EmbedSeg network output needs {output_channels(dims)} channels for {dims}D images "
                         f"(offset and sigma per axis, one seed), got {raw.shape[1]}")
    offsets = torch.tanh(raw[:, :dims]) * offset_range
    log_sigma = raw[:, dims:2 * dims] + math.log(sigma_init)
    seed = torch.sigmoid(raw[:, 2 * dims:])
    return torch.cat([offsets, log_sigma, seed], dim=1)


def split(decoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Offsets ``(B, D, ...)``, log-sigma ``(B, D, ...)`` and seed ``(B, ...)`` of a decoded output."""
    dims = (decoded.shape[1] - 1) // 2
    return decoded[:, :dims], decoded[:, dims:2 * dims], decoded[:, 2 * dims]


def ideal_output(labels: np.ndarray | torch.Tensor, sigma: float = 2.0, voxel_size: Sequence[float] | None = None,
                 centre: str = "medoid") -> torch.Tensor:
    """The decoded output ``(2D+1, *spatial)`` of a network that learned ``labels`` perfectly.

    Offsets from each object pixel to its object's centre (``centres.py``), bandwidth ``sigma``
    everywhere, seed 1 on objects and 0 elsewhere. Clustering it gives ``labels`` back (an
    upper bound for the clustering settings, and a fixture for tests and benchmarks).
    """
    from im2im_embedseg.centres import instance_centres

    lab = torch.as_tensor(np.asarray(labels).astype(np.int64))
    dims = lab.ndim
    spacing = relative_voxel_size(voxel_size, dims)
    grid = coordinate_grid(lab.shape, spacing).reshape(dims, -1)
    flat = lab.reshape(-1)
    foreground = (flat > 0).nonzero().squeeze(1)
    offsets = torch.zeros(dims, flat.numel())
    if len(foreground):
        _, ids = torch.unique(flat[foreground], return_inverse=True)
        centres = instance_centres(grid[:, foreground].T, ids, int(ids.max()) + 1, centre,  # type: ignore[arg-type]
                                   spacing=spacing)
        offsets[:, foreground] = (centres[ids] - grid[:, foreground].T).T
    log_sigma = torch.full((dims, flat.numel()), math.log(sigma))
    return torch.cat([offsets, log_sigma, (flat > 0).float()[None]]).reshape(2 * dims + 1, *lab.shape)
