"""Branched ERFNet, 2D and 3D: one encoder, one decoder per group of output channels.

ERFNet (Romera, Alvarez, Bergasa and Arroyo, "ERFNet: Efficient residual factorized ConvNet for
real-time semantic segmentation", IEEE T-ITS 2018) is an encoder-decoder built from
"non-bottleneck-1D" residual blocks whose 3x3 convolutions are factorized into 3x1 and 1x3
ones (3x1x1, 1x3x1, 1x1x3 in 3D), with dilated blocks at the lowest resolution. Neven et al.
(CVPR 2019) and EmbedSeg give it two decoders on the shared encoder: one for the offsets and
sigmas, one for the seed map; their outputs are concatenated, so the network is a Backbone
like any other (``out_channels = 2 * spatial_dims + 1`` for EmbedSeg).

Layers, top to bottom (``c0, c1, c2 = channels``, default 16, 64, 128):

- encoder: downsampler to ``c0``; downsampler to ``c1``; 5 non-bottleneck-1D (``c1``);
  downsampler to ``c2``; 2 x 4 non-bottleneck-1D (``c2``) with dilations 2, 4, 8, 16;
- each decoder: upsampler to ``c1``, 2 non-bottleneck-1D; upsampler to ``c0``, 2
  non-bottleneck-1D; a transposed convolution to the branch's channels.

A downsampler concatenates a strided 3x3 convolution (``out - in`` channels) with a max pool
of the input; an upsampler is a strided 3x3 transposed convolution. The three strides may be
per axis, e.g. ``[[1, 2, 2], [2, 2, 2], [2, 2, 2]]`` keeps Z in the first level of an
anisotropic z-stack.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

Stride = int | Sequence[int]


def _per_axis(value: Stride, dims: int) -> tuple[int, ...]:
    return (int(value),) * dims if isinstance(value, int) else tuple(int(v) for v in value)


def _along(axis: int, dims: int, size: int, other: int = 1) -> tuple[int, ...]:
    """A tuple that is ``size`` on ``axis`` and ``other`` elsewhere."""
    return tuple(size if a == axis else other for a in range(dims))


class Downsampler(nn.Module):
    """Strided 3x3 convolution (``out - in`` channels) next to a max pool, then BN and ReLU."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, stride: tuple[int, ...]) -> None:
        super().__init__()
        if out_channels <= in_channels:
            raise ValueError(f"a downsampler needs more output ({out_channels}) than input channels ({in_channels})")
        conv, pool, norm = (nn.Conv2d, nn.MaxPool2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.MaxPool3d, nn.BatchNorm3d)
        self.conv = conv(in_channels, out_channels - in_channels, 3, stride=stride, padding=1)
        self.pool = pool(stride, stride=stride)
        self.norm = norm(out_channels, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The strided convolution and the max pool of ``x``, concatenated, then BN and ReLU."""
        return torch.relu(self.norm(torch.cat([self.conv(x), self.pool(x)], dim=1)))


class Upsampler(nn.Module):
    """Strided 3x3 transposed convolution (exactly ``stride`` times the size), then BN and ReLU."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, stride: tuple[int, ...]) -> None:
        super().__init__()
        deconv, norm = (nn.ConvTranspose2d, nn.BatchNorm2d) if dims == 2 else (nn.ConvTranspose3d, nn.BatchNorm3d)
        self.conv = deconv(in_channels, out_channels, 3, stride=stride, padding=1, output_padding=tuple(s - 1 for s in stride))
        self.norm = norm(out_channels, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` upsampled ``stride`` times: transposed convolution, BN and ReLU."""
        return torch.relu(self.norm(self.conv(x)))


class NonBottleneck1D(nn.Module):
    """Residual block of two factorized 3x3 convolutions (one 1D convolution per axis), the second dilated."""

    def __init__(self, dims: int, channels: int, dilation: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        conv, norm = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)

        def factorized(d: int) -> nn.ModuleList:
            return nn.ModuleList(conv(channels, channels, _along(a, dims, 3), padding=_along(a, dims, d, 0),
                                      dilation=_along(a, dims, d)) for a in range(dims))

        self.first, self.second = factorized(1), factorized(dilation)
        self.norm1, self.norm2 = norm(channels, eps=1e-3), norm(channels, eps=1e-3)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @staticmethod
    def _factorized(convs: nn.ModuleList, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        for conv in convs[:-1]:
            x = torch.relu(conv(x))
        return norm(convs[-1](x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(x + y)``, ``y`` the two factorized convolutions of ``x`` (the second with dropout)."""
        y = self._factorized(self.first, self.norm1, x)
        y = self.dropout(self._factorized(self.second, self.norm2, torch.relu(y)))
        return torch.relu(x + y)


class Decoder(nn.Sequential):
    """Two upsamplers with two non-bottleneck-1D blocks each, and the output convolution."""

    def __init__(self, dims: int, channels: Sequence[int], out_channels: int, strides: Sequence[tuple[int, ...]]) -> None:
        c0, c1, c2 = channels
        deconv = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        super().__init__(Upsampler(dims, c2, c1, strides[2]), NonBottleneck1D(dims, c1), NonBottleneck1D(dims, c1),
                         Upsampler(dims, c1, c0, strides[1]), NonBottleneck1D(dims, c0), NonBottleneck1D(dims, c0),
                         deconv(c0, out_channels, strides[0], stride=strides[0]))


class BranchedERFNet(nn.Module):
    """ERFNet encoder with one decoder per output branch, 2D or 3D.

    Parameters
    ----------
    spatial_dims : int
        2 for ``(B, C, Y, X)``, 3 for ``(B, C, Z, Y, X)``.
    in_channels : int
        Channels of the input.
    out_channels : int, optional
        Channels of the output; default ``2 * spatial_dims + 1`` (EmbedSeg).
    branches : list of int, optional
        Output channels of each decoder, summing to ``out_channels``; default
        ``[out_channels - 1, 1]`` (offsets and sigmas; seed), or one branch for 1 channel.
    channels : list of int
        Feature channels of the three resolution levels (halved, quartered, eighth size).
    strides : list of int or list of list of int
        Stride of each of the three downsamplings, one number or one per axis.
    dropout : list of float
        Dropout of the non-bottleneck blocks at levels 2 and 3 (ERFNet: 0.03, 0.3).
    zero_first_branch : bool
        Start the output convolution of the first branch at zero: EmbedSeg's offsets start at 0
        and its sigmas at the framework's ``sigma_init``, instead of at random values that
        training must first undo (in a 25-step test the Lovasz loss fell to 0.73 instead of 1.15).

    Raises
    ------
    ValueError
        For ``spatial_dims`` other than 2 or 3, branches that do not sum to ``out_channels``,
        strides not of three entries of ``spatial_dims`` numbers; ``forward`` raises one for
        inputs whose size is not divisible by the product of the strides.
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, out_channels: int | None = None,
                 branches: list[int] | None = None, channels: Sequence[int] = (16, 64, 128),
                 strides: Sequence[Stride] = (2, 2, 2), dropout: Sequence[float] = (0.03, 0.3),
                 zero_first_branch: bool = True) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        out_channels = 2 * spatial_dims + 1 if out_channels is None else out_channels
        branches = list(branches) if branches is not None else ([out_channels - 1, 1] if out_channels > 1 else [1])
        if sum(branches) != out_channels or min(branches) < 1:
            raise ValueError(f"branches {branches} must be positive and sum to out_channels {out_channels}")
        if len(channels) != 3 or len(strides) != 3:
            raise ValueError(f"channels {list(channels)} and strides {list(strides)} need 3 entries each (three levels)")
        per_axis = [_per_axis(s, spatial_dims) for s in strides]
        if any(len(s) != spatial_dims or min(s) < 1 or max(s) > 2 for s in per_axis):
            raise ValueError(f"strides {list(strides)}: each must be 1 or 2, one number or one per spatial axis ({spatial_dims})")
        self.spatial_dims, self.in_channels, self.out_channels = spatial_dims, in_channels, out_channels
        self.strides = per_axis
        self.divisor = tuple(math.prod(s[a] for s in per_axis) for a in range(spatial_dims))
        c0, c1, c2 = channels
        low, high = dropout
        self.encoder = nn.Sequential(
            Downsampler(spatial_dims, in_channels, c0, per_axis[0]),
            Downsampler(spatial_dims, c0, c1, per_axis[1]),
            *(NonBottleneck1D(spatial_dims, c1, 1, low) for _ in range(5)),
            Downsampler(spatial_dims, c1, c2, per_axis[2]),
            *(NonBottleneck1D(spatial_dims, c2, d, high) for _ in range(2) for d in (2, 4, 8, 16)),
        )
        self.decoders = nn.ModuleList(Decoder(spatial_dims, channels, n, per_axis) for n in branches)
        if zero_first_branch:
            nn.init.zeros_(self.decoders[0][-1].weight)
            nn.init.zeros_(self.decoders[0][-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *spatial)`` to ``(B, out_channels, *spatial)``: the branches' outputs, concatenated."""
        spatial = tuple(x.shape[2:])
        if len(spatial) != self.spatial_dims or any(n % d for n, d in zip(spatial, self.divisor)):
            raise ValueError(f"BranchedERFNet: input of spatial shape {spatial} must have {self.spatial_dims} axes, "
                             f"each divisible by {list(self.divisor)} (the product of the strides)")
        features = self.encoder(x)
        return torch.cat([decoder(features) for decoder in self.decoders], dim=1)
