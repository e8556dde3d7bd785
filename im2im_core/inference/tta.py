"""Test-time augmentation: predict flipped and rotated copies of each window and average them."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Literal

import torch

TTAMode = Literal["none", "flips", "rot90", "flips_rot90"]
#: One symmetry: the spatial axes flipped (counted from the last), then the XY quarter turns.
Symmetry = tuple[tuple[int, ...], int]


def symmetries(spatial_dims: int, mode: TTAMode) -> list[Symmetry]:
    """The symmetries of ``mode``, identity first.

    ``none``: the identity. ``flips``: every combination of flips of the spatial axes (4 in
    2D, 8 in 3D). ``rot90``: the four quarter turns in YX. ``flips_rot90``: the quarter turns,
    each with and without a flip of X, and of Z in 3D (8 in 2D, the square's symmetry group;
    16 in 3D).
    """
    axes = tuple(range(-spatial_dims, 0))
    if mode == "none":
        return [((), 0)]
    if mode == "flips":
        return [(flips, 0) for n in range(spatial_dims + 1) for flips in itertools.combinations(axes, n)]
    if mode == "rot90":
        return [((), k) for k in range(4)]
    if mode == "flips_rot90":
        flippable = (-1, -3) if spatial_dims == 3 else (-1,)
        flip_sets = [f for n in range(len(flippable) + 1) for f in itertools.combinations(flippable, n)]
        return [(flips, k) for flips in flip_sets for k in range(4)]
    raise ValueError(f"tta {mode!r} is not one of none, flips, rot90, flips_rot90")


def apply_symmetry(x: torch.Tensor, symmetry: Symmetry) -> torch.Tensor:
    """Apply ``symmetry`` to a batch of windows: flip its axes, then turn YX ``k`` quarter turns."""
    flips, turns = symmetry
    x = torch.flip(x, flips) if flips else x
    return torch.rot90(x, turns, dims=(-2, -1)) if turns else x


def undo_symmetry(y: torch.Tensor, symmetry: Symmetry) -> torch.Tensor:
    """Map outputs of transformed windows back, as scalar maps (each channel moved with the pixels)."""
    flips, turns = symmetry
    y = torch.rot90(y, -turns, dims=(-2, -1)) if turns else y
    return torch.flip(y, flips) if flips else y


def with_tta(predictor: Callable[[torch.Tensor], torch.Tensor], spatial_dims: int, mode: TTAMode = "flips",
             inverse: Callable[[torch.Tensor, Symmetry], torch.Tensor] = undo_symmetry) -> Callable[[torch.Tensor], torch.Tensor]:
    """A predictor that averages ``predictor`` over the :func:`symmetries` of ``mode``.

    Raw outputs (logits or intensities) are averaged; a quarter turn needs a network that
    accepts the window with Y and X swapped (any square window does). ``inverse`` maps an
    output back; a framework whose channels are vectors (EmbedSeg's offsets) gives its own,
    as the ``tta_inverse`` method that :func:`~im2im_core.inference.predict` looks for.
    """
    group = symmetries(spatial_dims, mode)
    if len(group) == 1:
        return predictor

    def averaged(x: torch.Tensor) -> torch.Tensor:
        total = predictor(x).float()
        for symmetry in group[1:]:
            total += inverse(predictor(apply_symmetry(x, symmetry)).float(), symmetry)
        return total / len(group)

    return averaged
