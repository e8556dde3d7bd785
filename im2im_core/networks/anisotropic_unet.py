"""A U-Net for anisotropic z-stacks: the first levels downsample in Y and X only.

Microscope z-stacks usually have far fewer, coarser z-slices than pixels in Y and X; halving Z as
often as Y and X would use up the few z-slices after a level or two. Like the networks of the
Allen Cell Segmenter, this U-Net halves only Y and X for its first ``xy_only_levels`` levels
(stride ``(1, 2, 2)``) and all three axes below them. It is MONAI's ``DynUNet`` with per-axis
strides; this module only computes the strides and checks input sizes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import DynUNet

__all__ = ["AnisotropicUNet"]


class AnisotropicUNet(DynUNet):
    """MONAI ``DynUNet`` whose first ``xy_only_levels`` downsamplings skip the Z axis.

    Level ``k`` has ``channels[k]`` feature channels and two 3x3(x3) convolutions, each followed
    by the normalisation and a leaky ReLU; ``len(channels) - 1`` strided convolutions go down, as
    many transposed convolutions come back up, with skip connections between. With
    ``spatial_dims=2`` every stride is 2 and ``xy_only_levels`` is ignored, so one network serves
    2D and 3D configs.

    Parameters
    ----------
    spatial_dims : int
        3 for ``(B, C, Z, Y, X)`` input (the point of this network), or 2 for ``(B, C, Y, X)``.
    in_channels : int
        Channels of the input.
    out_channels : int
        Channels of the output.
    channels : sequence of int
        Feature channels of each level, top to bottom; at least 3 levels (a ``DynUNet`` rule).
    xy_only_levels : int
        Number of downsamplings, counted from the top, that halve Y and X but keep Z (3D only);
        at most ``len(channels) - 1``.
    dropout : float, optional
        Dropout probability after each convolution; ``None`` for none.
    norm : str or tuple
        Normalisation layer, by MONAI name with optional arguments, e.g. ``"batch"`` or
        ``("instance", {"affine": True})`` (the default).

    Notes
    -----
    With ``n = len(channels) - 1`` downsamplings, Y and X of the input must be divisible by
    ``2**n`` and Z (3D) by ``2**(n - xy_only_levels)``; the defaults need multiples of 8 in Y and X
    and of 2 in Z. ``forward`` raises a ``ValueError`` otherwise.

    Raises
    ------
    ValueError
        For ``spatial_dims`` other than 2 or 3, fewer than 3 levels, or ``xy_only_levels`` out of
        range.
    """

    def __init__(
        self,
        *,
        spatial_dims: int = 3,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (16, 32, 64, 128),
        xy_only_levels: int = 2,
        dropout: float | None = None,
        norm: str | tuple = ("instance", {"affine": True}),
    ) -> None:
        channels = tuple(int(c) for c in channels)
        if spatial_dims not in (2, 3):
            raise ValueError(
                f"AnisotropicUNet: spatial_dims must be 2 or 3, got {spatial_dims!r}."
            )
        if len(channels) < 3:
            raise ValueError(
                f"AnisotropicUNet: channels needs at least 3 levels, got {channels!r}."
            )
        n_down = len(channels) - 1
        if not 0 <= xy_only_levels <= n_down:
            raise ValueError(
                f"AnisotropicUNet: xy_only_levels must be between 0 and len(channels) - 1 = "
                f"{n_down}, got {xy_only_levels!r}."
            )
        if spatial_dims == 2:
            xy_only_levels = 0
            downs: list[int | tuple[int, ...]] = [2] * n_down
        else:
            downs = [(1, 2, 2)] * xy_only_levels + [2] * (n_down - xy_only_levels)
        super().__init__(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=[3] * len(channels),
            strides=[1, *downs],
            upsample_kernel_size=downs,
            filters=channels,
            dropout=dropout,
            norm_name=norm,
        )
        self.xy_only_levels = xy_only_levels
        # What each spatial size of the input must be divisible by, ([Z,] Y, X).
        xy_multiple = 2**n_down
        self.size_multiples: tuple[int, ...] = (xy_multiple, xy_multiple)
        if spatial_dims == 3:
            self.size_multiples = (2 ** (n_down - xy_only_levels), *self.size_multiples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, [Z], Y, X)`` to ``(B, out_channels, [Z], Y, X)``."""
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"AnisotropicUNet with spatial_dims={self.spatial_dims} expects a "
                f"{self.spatial_dims + 2}-D input, got shape {tuple(x.shape)}."
            )
        spatial = tuple(x.shape[2:])
        if any(size % m for size, m in zip(spatial, self.size_multiples)):
            raise ValueError(
                f"AnisotropicUNet needs spatial sizes divisible by {self.size_multiples} "
                f"({'Z, ' if self.spatial_dims == 3 else ''}Y, X); got input spatial size "
                f"{spatial}."
            )
        return super().forward(x)
