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
        Share of the pixels masked, in ``(0, 0.25]`` (N2V: about 0.002, i.e. 0.2 %); one pixel
        per box of ``1 / share`` pixels, so in 3D at most 1/8 (boxes of at least 2 x 2 x 2).
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
    off_axis : bool
        Take replacements only from pixels off every axis through the masked pixel (never its
        own row, column or Z line), as CAREamics does: the neighbours where noise correlated
        along camera rows or columns is strongest.
    """

    share: float = 0.002
    window: int = 11
    replacement: Replacement = "uniform"
    struct: StructShape = "none"
    struct_axis: Literal["X", "Y", "Z"] = "X"
    struct_span: int = 2
    off_axis: bool = False

    def __post_init__(self) -> None:
        """Refuse values that cannot mask (the message names the argument and what fits)."""
        from im2im_core.errors import ConfigError

        if not 0 < self.share <= 0.25:
            raise ConfigError(f"N2V mask_share {self.share} must be in (0, 0.25]: the share of pixels masked per patch "
                              f"(N2V uses about 0.002); 0 masks nothing, and at most one pixel of each 2 x 2 box "
                              f"(2 x 2 x 2 in 3D) is masked, so that every masked pixel keeps unmasked neighbours")
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
        return torch.stack([o for o in grid if tuple(o.tolist()) not in hidden and (not self.off_axis or bool(o.all()))])

    def fits(self, spatial: Sequence[int]) -> bool:
        """Whether patches of this size hold the window and structN2V's lines on both sides of any pixel."""
        reach = self.struct_offsets(len(spatial)).abs().amax(dim=0) if self.struct != "none" else None
        return min(spatial) >= self.window and (reach is None or all(n >= 2 * r + 1 for n, r in zip(spatial, reach.tolist())))

    def check_patch(self, spatial: Sequence[int]) -> None:
        """Refuse patches smaller than the window or the struct mask (replacements and lines must stay inside)."""
        from im2im_core.errors import ConfigError

        if not self.fits(spatial):
            span = f" or than the struct mask (2 x {self.struct_span} + 1)" if self.struct != "none" else ""
            raise ConfigError(f"N2V: patches of {'x'.join(map(str, spatial))} pixels are smaller than the masking window "
                              f"{self.window}{span}: raise data.patch_size or lower model.init_args.window")


def stratified_positions(shape: Sequence[int], share: float, generator: torch.Generator | None = None,
                         device: torch.device | str = "cpu") -> torch.Tensor:
    """Indices ``(N, 2 + d)`` (batch, channel, *spatial) of masked pixels: one random pixel per box.

    ``shape`` is ``(B, C, *spatial)``; boxes are cubes of side ``max(2, round((1 / share) ** (1 / d)))``,
    laid on a grid over every patch and channel, each with an offset of its own. Boxes cut by
    the patch's border draw inside the part that is in the patch, so every patch has at least
    one masked pixel per channel.
    """
    batch, channels, *spatial = (int(n) for n in shape)
    dims = len(spatial)
    side = max(2, round((1 / share) ** (1 / dims)))
    grid = [math.ceil(n / side) for n in spatial]
    origins = torch.stack(torch.meshgrid(*[torch.arange(g, device=device) * side for g in grid], indexing="ij"),
                          dim=-1).reshape(-1, dims)
    extent = torch.minimum(torch.tensor(spatial, device=device) - origins, torch.tensor(side, device=device))
    fraction = torch.rand((batch, channels, origins.shape[0], dims), generator=generator, device=device)
    points = origins + (fraction * extent).long().clamp(max=side - 1)
    lead = torch.stack(torch.meshgrid(torch.arange(batch, device=device), torch.arange(channels, device=device),
                                      torch.arange(origins.shape[0], device=device), indexing="ij"), dim=-1)[..., :2]
    return torch.cat([lead, points], dim=-1).reshape(-1, 2 + dims)


def _gather(image: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``image`` values at ``positions`` ``(..., 2 + d)``."""
    return image[tuple(positions[..., i] for i in range(positions.shape[-1]))]


def _shifted(centres: torch.Tensor, shifts: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
    """``centres + shifts``; along an axis where that leaves the patch, ``centres - shifts`` (never the centre
    itself, which a clamp could give; inside when the patch holds the window, see :meth:`BlindSpotMasking.fits`).
    """
    moved = centres + shifts
    return torch.where((moved < 0) | (moved >= spatial), centres - shifts, moved)


def _neighbours(positions: torch.Tensor, offsets: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
    """Positions ``(N, K, 2 + d)`` of each masked pixel's neighbours at the ``offsets`` ``(K, d)``."""
    moved = _shifted(positions[:, None, 2:], offsets[None], spatial)
    return torch.cat([positions[:, None, :2].expand(-1, offsets.shape[0], -1), moved], dim=-1)


def _neighbour(positions: torch.Tensor, offsets: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
    """Positions ``(N, 2 + d)`` of one neighbour of each masked pixel, at its own offset ``(N, d)``."""
    return torch.cat([positions[:, :2], _shifted(positions[:, 2:], offsets, spatial)], dim=-1)


#: Masked pixels whose neighbourhoods are gathered at once for the median (bounds the memory of large images).
MEDIAN_CHUNK = 2**14


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
    """A copy of ``batch`` with the pixels at ``positions`` ``(N, 2 + d)`` replaced (and structN2V's lines hidden).

    Replacements come from the original batch; structN2V's lines are written last, so that no
    value from a hidden line reaches the input, not even as another masked pixel's replacement.
    """
    dims = batch.ndim - 2
    spatial = torch.tensor(batch.shape[2:], device=batch.device)
    candidates = masking.candidate_offsets(dims).to(batch.device)
    masked = batch.clone()
    if masking.replacement == "median":
        replacement = torch.cat([_gather(batch, _neighbours(chunk, candidates, spatial)).median(dim=1).values
                                 for chunk in positions.split(MEDIAN_CHUNK)]) if len(positions) else batch.new_zeros(0)
        # (of an even count of values, torch's median is the lower of the two middle ones)
    else:
        choice = torch.randint(0, candidates.shape[0], (positions.shape[0],), generator=generator, device=batch.device)
        replacement = _gather(batch, _neighbour(positions, candidates[choice], spatial))
    masked[tuple(positions.T)] = replacement
    struct = masking.struct_offsets(dims).to(batch.device)
    if struct.shape[0]:
        hidden = _neighbours(positions, struct, spatial).reshape(-1, 2 + dims)
        low = batch.flatten(2).amin(dim=2)[hidden[:, 0], hidden[:, 1]]
        high = batch.flatten(2).amax(dim=2)[hidden[:, 0], hidden[:, 1]]
        noise = torch.rand(hidden.shape[0], generator=generator, device=batch.device, dtype=batch.dtype)
        masked[tuple(hidden.T)] = low + (high - low) * noise
    return masked


def masked_loss(output: torch.Tensor, original: torch.Tensor, positions: torch.Tensor,
                kind: Literal["mse", "l1"] = "mse") -> torch.Tensor:
    """Mean squared (or absolute) error of ``output`` against ``original`` at the masked ``positions`` only
    (0, with the graph kept, when there are none).
    """
    if not len(positions):
        return output.sum() * 0.0
    error = _gather(output, positions) - _gather(original, positions)
    return error.abs().mean() if kind == "l1" else error.square().mean()
