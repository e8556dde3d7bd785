"""The label-free U-Net ("fnet") of Ounkomol et al., Nature Methods 2018, for 2D or 3D images.

MONAI has no network with this exact layout (two conv-BN-ReLU per level, a *learnt* stride-2
convolution instead of pooling, a stride-2 transposed convolution to go back up), so the recursion
is ours; every layer in it is a MONAI ``Convolution`` block or a MONAI ``Conv`` factory layer.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv
from torch import nn

__all__ = ["FNet"]


def _conv_bn_relu(
    spatial_dims: int, in_channels: int, out_channels: int, **kwargs: Any
) -> Convolution:
    """Convolution followed by batch norm and ReLU (MONAI's default N-D-A ordering)."""
    return Convolution(
        spatial_dims, in_channels, out_channels, act="RELU", norm="BATCH", **kwargs
    )


class _DoubleConv(nn.Sequential):
    """Two 3x3(x3) convolutions, each followed by batch norm and ReLU; spatial size unchanged."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__(
            _conv_bn_relu(spatial_dims, in_channels, out_channels, kernel_size=3),
            _conv_bn_relu(spatial_dims, out_channels, out_channels, kernel_size=3),
        )


class _Level(nn.Module):
    """One level of the U: double conv, and below it (if ``depth > 0``) the deeper levels.

    ``x -> conv_more -> [down -> sublevel -> up] -> concat -> conv_less``
    """

    def __init__(self, spatial_dims: int, in_channels: int, channels: int, depth: int) -> None:
        super().__init__()
        self.depth = depth
        self.conv_more = _DoubleConv(spatial_dims, in_channels, channels)
        if depth > 0:
            self.down = _conv_bn_relu(
                spatial_dims, channels, channels, kernel_size=2, strides=2, padding=0
            )
            self.sub = _Level(spatial_dims, channels, 2 * channels, depth - 1)
            # output_padding=0: MONAI's default (stride - 1) would give 2n + 1 instead of 2n here.
            self.up = _conv_bn_relu(
                spatial_dims,
                2 * channels,
                channels,
                kernel_size=2,
                strides=2,
                padding=0,
                output_padding=0,
                is_transposed=True,
            )
            self.conv_less = _DoubleConv(spatial_dims, 2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.conv_more(x)
        if self.depth == 0:
            return skip
        below = self.up(self.sub(self.down(skip)))
        # The skip and upsampled maps are dropped once concatenated: without a gradient to keep them
        # (prediction), a window needs 128 instead of 192 floats per pixel at the top level.
        merged = torch.cat((skip, below), dim=1)
        del skip, below
        return self.conv_less(merged)


class FNet(nn.Module):
    """The fnet U-Net of Ounkomol et al. (2018), "Label-free prediction of three-dimensional
    fluorescence images from transmitted-light microscopy", for 2D or 3D images.

    Each of the ``depth + 1`` levels applies two 3x3(x3) convolution-batchnorm-ReLU layers;
    between levels the image is halved by a stride-2 convolution and doubled again by a stride-2
    transposed convolution, whose output is concatenated with the level's skip features. Level
    ``k`` has ``mult_chan * 2**k`` channels; a final 1x1(x1) convolution maps ``mult_chan``
    channels to ``out_channels``.

    Unlike the original code, where the first level has ``in_channels * mult_chan`` channels,
    here it has ``mult_chan`` channels whatever ``in_channels`` is (identical for one input
    channel, the paper's case).

    Parameters
    ----------
    spatial_dims : int
        2 for ``(B, C, Y, X)`` input, 3 for ``(B, C, Z, Y, X)`` input.
    in_channels : int
        Channels of the input.
    out_channels : int
        Channels of the output.
    depth : int
        Number of down-sampling steps (the paper uses 4). Every spatial size of the input must
        be divisible by ``2**depth``.
    mult_chan : int
        Channels of the first level (the paper uses 32); doubled at each level below.

    Raises
    ------
    ValueError
        At construction, for a ``spatial_dims`` other than 2 or 3, a negative ``depth`` or
        non-positive channel numbers; in ``forward``, for an input of the wrong rank or a spatial
        size not divisible by ``2**depth``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        depth: int = 4,
        mult_chan: int = 32,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"FNet: spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        if depth < 0:
            raise ValueError(f"FNet: depth must be >= 0, got {depth!r}.")
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("mult_chan", mult_chan),
        ):
            if value < 1:
                raise ValueError(f"FNet: {name} must be >= 1, got {value!r}.")
        self.spatial_dims = spatial_dims
        self.depth = depth
        self.levels = _Level(spatial_dims, in_channels, mult_chan, depth)
        self.conv_out = Conv[Conv.CONV, spatial_dims](mult_chan, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, [Z], Y, X)`` to ``(B, out_channels, [Z], Y, X)``."""
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"FNet with spatial_dims={self.spatial_dims} expects a "
                f"{self.spatial_dims + 2}-D input (B, C, {'Z, ' if self.spatial_dims == 3 else ''}"
                f"Y, X), got shape {tuple(x.shape)}."
            )
        multiple = 2**self.depth
        spatial = tuple(x.shape[2:])
        if any(size % multiple for size in spatial):
            raise ValueError(
                f"FNet with depth={self.depth} needs every spatial size divisible by {multiple}; "
                f"got input spatial size {spatial}. Use patch sizes that are multiples of "
                f"{multiple}."
            )
        return self.conv_out(self.levels(x))
