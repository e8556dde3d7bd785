"""Blind-spot masking of Noise2Void (N2V), N2V2 and structN2V, on a batch of patches in torch.

Each patch (and each channel) gets a stratified random set of pixels: the patch is cut into a
grid of boxes that each hold ``1 / share`` pixels, and one random pixel of every box is masked.
A masked pixel's input is replaced by a random pixel of its window other than itself (N2V,
``uniform``) or by the median of the window without its centre (N2V2, ``median``). structN2V
also hides a line (or a cross) of pixels around each masked pixel, with random values, so that
noise correlated along that line cannot leak its value; the replacement then comes from outside
the line. The loss is computed at the masked pixels only (:func:`masked_loss`).

MONAI and Lightning have no blind-spot masking; CAREamics has one in numpy inside its own
dataset. This one works on the batch where it already is (CPU or GPU) and is vectorized over
all masked pixels of the batch, so it is our own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

Replacement = Literal["uniform", "median"]
StructShape = Literal["none", "line", "cross"]
AXES = "ZYX"


@dataclass(frozen=True)
class BlindSpotMasking:
    """How pixels are masked.

    Attributes
    ----------
    share : float
        Share of the pixels masked, in ``(0, 0.5]`` (N2V: about 0.002, i.e. 0.2 %).
    window : int
        Side of the neighbourhood the replacement comes from, odd, at least 3.
    replacement : {"uniform", "median"}
        A random neighbour (N2V) or the median of the neighbourhood without its centre (N2V2).
    struct : {"none", "line", "cross"}
        structN2V: also hide a line along ``struct_axis``, or a cross along Y and X, of
        ``struct_span`` pixels on each side of every masked pixel.
    struct_axis : {"X", "Y", "Z"}
        Direction of the line (that of the camera's correlated noise).
    struct_span : int
        Pixels hidden on each side of the masked pixel.
    """

    share: float = 0.002
    window: int = 11
    replacement: Replacement = "uniform"
    struct: StructShape = "none"
    struct_axis: Literal["X", "Y", "Z"] = "X"
    struct_span: int = 2

    def __post_init__(self) -> None:
        """Refuse values that cannot mask (the message names the argument and what fits)."""
        from im2im_core.errors import ConfigError

        if not 0 < self.share <= 0.5:
            raise ConfigError(f"N2V mask_share {self.share} must be in (0, 0.5]: the share of pixels masked per patch "
                              f"(N2V uses about 0.002); 0 masks nothing and above half leaves too little context")
        if self.window < 3 or self.window % 2 == 0:
            raise ConfigError(f"N2V window {self.window} must be an odd number of at least 3 (the neighbourhood "
                              f"a masked pixel's replacement comes from)")
        if self.replacement not in ("uniform", "median"):
            raise ConfigError(f"N2V replacement {self.replacement!r} is not 'uniform' (N2V) or 'median' (N2V2)")
        if self.struct not in ("none", "line", "cross"):
            raise ConfigError(f"N2V struct_mask {self.struct!r} is not 'none', 'line' or 'cross'")
        if self.struct != "none" and not 1 <= self.struct_span:
            raise ConfigError(f"N2V struct_span {self.struct_span} must be at least 1")

    def struct_offsets(self, spatial_dims: int) -> torch.Tensor:
        """``(K, d)`` offsets of the pixels structN2V hides around a masked pixel (not the pixel itself)."""
        if self.struct == "none":
            return torch.zeros((0, spatial_dims), dtype=torch.long)
        axes = ["Y", "X"] if self.struct == "cross" else [self.struct_axis]
        offsets = []
        for axis in axes:
            position = AXES[-spatial_dims:].find(axis)
            if position < 0:
                from im2im_core.errors import ConfigError

                raise ConfigError(f"N2V struct_axis {axis!r} is not an axis of {spatial_dims}D patches")
            for step in range(1, self.struct_span + 1):
                for sign in (-1, 1):
                    offset = [0] * spatial_dims
                    offset[position] = sign * step
                    offsets.append(offset)
        return torch.tensor(offsets, dtype=torch.long)

    def candidate_offsets(self, spatial_dims: int) -> torch.Tensor:
        """``(K, d)`` offsets a replacement may come from: the window without its centre (and the struct mask)."""
        radius = self.window // 2
        axis = torch.arange(-radius, radius + 1)
        grid = torch.stack(torch.meshgrid(*[axis] * spatial_dims, indexing="ij"), dim=-1).reshape(-1, spatial_dims)
        hidden = {tuple(o) for o in self.struct_offsets(spatial_dims).tolist()} | {(0,) * spatial_dims}
        return torch.stack([o for o in grid if tuple(o.tolist()) not in hidden])

    def check_patch(self, spatial: Sequence[int]) -> None:
        """Refuse patches smaller than the window (a replacement must come from inside the patch)."""
        from im2im_core.errors import ConfigError

        if min(spatial) < self.window:
            raise ConfigError(f"N2V: patches of {'x'.join(map(str, spatial))} pixels are smaller than the masking window "
                              f"{self.window}: raise data.patch_size or lower model.init_args.window")


def stratified_positions(shape: Sequence[int], share: float, generator: torch.Generator | None = None,
                         device: torch.device | str = "cpu") -> torch.Tensor:
    """Indices ``(N, 2 + d)`` (batch, channel, *spatial) of masked pixels: one random pixel per box.

    ``shape`` is ``(B, C, *spatial)``; boxes are cubes of side ``round((1 / share) ** (1 / d))``,
    laid on a grid over every patch and channel, each with an offset of its own.
    """
    batch, channels, *spatial = (int(n) for n in shape)
    dims = len(spatial)
    side = max(1, round((1 / share) ** (1 / dims)))
    grid = [math.ceil(n / side) for n in spatial]
    origins = torch.stack(torch.meshgrid(*[torch.arange(g, device=device) * side for g in grid], indexing="ij"),
                          dim=-1).reshape(-1, dims)
    offsets = torch.randint(0, side, (batch, channels, origins.shape[0], dims), generator=generator, device=device)
    points = origins + offsets
    limits = torch.tensor(spatial, device=device)
    lead = torch.stack(torch.meshgrid(torch.arange(batch, device=device), torch.arange(channels, device=device),
                                      torch.arange(origins.shape[0], device=device), indexing="ij"), dim=-1)[..., :2]
    positions = torch.cat([lead, points], dim=-1).reshape(-1, 2 + dims)
    return positions[(positions[:, 2:] < limits).all(dim=1)]


def _gather(image: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``image`` values at ``positions`` ``(..., 2 + d)``."""
    return image[tuple(positions[..., i] for i in range(positions.shape[-1]))]


def _neighbours(positions: torch.Tensor, offsets: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
    """``(N, K, 2 + d)`` positions of each masked pixel's neighbours at ``offsets``; an offset that would leave
    the patch is taken the other way along that axis (never onto the pixel itself, which a clamp could be).
    """
    centre = positions[:, None, 2:]
    moved = centre + offsets[None]
    outside = (moved < 0) | (moved >= spatial)
    moved = torch.where(outside, centre - offsets[None], moved)
    lead = positions[:, None, :2].expand(-1, offsets.shape[0], -1)
    return torch.cat([lead, moved], dim=-1)


def mask_batch(batch: torch.Tensor, masking: BlindSpotMasking,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The masked copy of ``batch`` ``(B, C, *spatial)`` and the positions ``(N, 2 + d)`` masked.

    Positions and replacements are drawn per patch and per channel, from ``generator`` (on the
    batch's device) or torch's global random state.
    """
    masking.check_patch(batch.shape[2:])
    positions = stratified_positions(batch.shape, masking.share, generator, batch.device)
    return replaced(batch, positions, masking, generator), positions


def replaced(batch: torch.Tensor, positions: torch.Tensor, masking: BlindSpotMasking,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """A copy of ``batch`` with the pixels at ``positions`` ``(N, 2 + d)`` replaced (and structN2V's lines hidden)."""
    dims = batch.ndim - 2
    spatial = torch.tensor(batch.shape[2:], device=batch.device)
    candidates = masking.candidate_offsets(dims).to(batch.device)
    masked = batch.clone()
    struct = masking.struct_offsets(dims).to(batch.device)
    if struct.shape[0]:
        hidden = _neighbours(positions, struct, spatial).reshape(-1, 2 + dims)
        low = batch.flatten(2).amin(dim=2)[hidden[:, 0], hidden[:, 1]]
        high = batch.flatten(2).amax(dim=2)[hidden[:, 0], hidden[:, 1]]
        noise = torch.rand(hidden.shape[0], generator=generator, device=batch.device, dtype=batch.dtype)
        masked[tuple(hidden.T)] = low + (high - low) * noise
    if masking.replacement == "median":
        values = _gather(batch, _neighbours(positions, candidates, spatial))
        replacement = values.median(dim=1).values  # of an even count, the lower of the two middle values
    else:
        choice = torch.randint(0, candidates.shape[0], (positions.shape[0],), generator=generator, device=batch.device)
        chosen = _neighbours(positions, candidates, spatial)[torch.arange(positions.shape[0], device=batch.device), choice]
        replacement = _gather(batch, chosen)
    masked[tuple(positions.T)] = replacement
    return masked


def masked_loss(output: torch.Tensor, original: torch.Tensor, positions: torch.Tensor,
                kind: Literal["mse", "l1"] = "mse") -> torch.Tensor:
    """Mean squared (or absolute) error of ``output`` against ``original`` at the masked ``positions`` only."""
    error = _gather(output, positions) - _gather(original, positions)
    return error.abs().mean() if kind == "l1" else error.square().mean()
