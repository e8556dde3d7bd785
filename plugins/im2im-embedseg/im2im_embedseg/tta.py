"""Test-time augmentation of EmbedSeg outputs: offsets are vectors, sigmas belong to axes.

The core's TTA (``im2im_core.inference.tta``) maps each output back by undoing the flips and
quarter turns of the image, which is right for scalar maps (the seed) but not for offsets:
after a flip of X the network's X offsets point the other way, and after a quarter turn in YX
its Y and X offsets (and sigmas) trade places. ``inverse`` undoes both the layout and the
vectors, so averaging over the symmetries is averaging embeddings of one frame.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from im2im_core.inference.tta import Symmetry, TTAMode, symmetries


def forward(x: torch.Tensor, symmetry: Symmetry) -> torch.Tensor:
    """Apply ``symmetry`` to a batch of windows: flip its axes, then turn YX ``k`` quarter turns."""
    flips, turns = symmetry
    x = torch.flip(x, flips) if flips else x
    return torch.rot90(x, turns, dims=(-2, -1)) if turns else x


def inverse(decoded: torch.Tensor, symmetry: Symmetry) -> torch.Tensor:
    """Map a decoded output ``(B, 2D+1, *spatial)`` of transformed windows back to the original frame.

    ``torch.rot90`` by one quarter turn moves the pixel at ``(y, x)`` of a ``W`` pixels wide
    window to ``(W - 1 - x, y)``: a displacement ``(dy, dx)`` becomes ``(-dx, dy)``. Undoing it
    maps an offset ``(a, b)`` of the turned frame to ``(b, -a)``, once per quarter turn; a flip
    of an axis negates that axis' offset. Sigmas of Y and X swap with each odd turn.
    """
    flips, turns = symmetry
    dims = (decoded.shape[1] - 1) // 2
    y, x = dims - 2, dims - 1  # channel of the Y and X offsets; sigmas follow at + dims
    out = torch.rot90(decoded, -turns, dims=(-2, -1)) if turns else decoded
    out = out.clone()
    for _ in range(turns % 4):
        offset_y, offset_x = out[:, y].clone(), out[:, x].clone()
        out[:, y], out[:, x] = offset_x, -offset_y
    if turns % 2:
        out[:, [dims + y, dims + x]] = out[:, [dims + x, dims + y]]
    for axis in flips:  # -1 is X, -2 Y, -3 Z: offset channel dims + axis
        out[:, dims + axis] = -out[:, dims + axis]
    return torch.flip(out, flips) if flips else out


def with_tta(predictor: Callable[[torch.Tensor], torch.Tensor], spatial_dims: int,
             mode: TTAMode = "none") -> Callable[[torch.Tensor], torch.Tensor]:
    """A predictor of decoded outputs averaged over the symmetries of ``mode`` (see the core's ``symmetries``)."""
    group = symmetries(spatial_dims, mode)
    if len(group) == 1:
        return predictor

    def averaged(x: torch.Tensor) -> torch.Tensor:
        total = predictor(x).float()
        for symmetry in group[1:]:
            total = total + inverse(predictor(forward(x, symmetry)).float(), symmetry)
        return total / len(group)

    return averaged
