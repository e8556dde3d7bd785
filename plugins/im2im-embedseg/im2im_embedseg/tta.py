"""Test-time augmentation of EmbedSeg outputs: offsets are vectors, sigmas belong to axes.

The core's TTA (``im2im_core.inference.tta``) maps each output back by undoing the flips and
quarter turns of the image (``undo_symmetry``), which is right for scalar maps (the seed) but not for offsets:
after a flip of X the network's X offsets point the other way, and after a quarter turn in YX
its Y and X offsets (and sigmas) trade places. ``inverse`` undoes both the layout and the
vectors, so averaging over the symmetries is averaging embeddings of one frame; the framework's
``tta_inverse`` hands it to the core's TTA.
"""

from __future__ import annotations

import torch

from im2im_core.inference.tta import Symmetry


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

