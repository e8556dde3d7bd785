"""``N2VUNet``: the U-Net of Noise2Void, and with ``n2v2`` the one of N2V2, in 2D and 3D from one class.

N2V2 (Höck et al., ECCV Workshops 2022) changes two things of the N2V U-Net to remove its
checkerboard artefacts: max-blur-pool downsampling (a max over 2^d neighbours at stride 1,
then a [1, 2, 1] binomial blur at stride 2, as Zhang's anti-aliased pooling) and no skip
connection at the top level. MONAI's UNet and BasicUNet have neither option and no blur
pooling exists in MONAI or torch, so the network is our own; its layout otherwise follows the
U-Net that CAREamics trains for N2V (two 3x3 convolutions with batch norm and ReLU per level,
max pooling, linear upsampling, a 1x1 output convolution), so the two can be compared at
equal size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _conv(spatial_dims: int) -> type[nn.Module]:
    return nn.Conv3d if spatial_dims == 3 else nn.Conv2d


def _block(spatial_dims: int, in_channels: int, channels: int, out_channels: int | None = None) -> nn.Sequential:
    """Two 3x3 convolutions with batch norm and ReLU: ``in_channels`` to ``channels`` to ``out_channels``."""
    conv = _conv(spatial_dims)
    norm = nn.BatchNorm3d if spatial_dims == 3 else nn.BatchNorm2d
    out_channels = out_channels or channels
    return nn.Sequential(conv(in_channels, channels, 3, padding=1), norm(channels), nn.ReLU(inplace=True),
                         conv(channels, out_channels, 3, padding=1), norm(out_channels), nn.ReLU(inplace=True))


class MaxBlurPool(nn.Module):
    """Anti-aliased max pooling: a stride-1 max over 2^d pixels, then a binomial blur at stride 2."""

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        self.spatial_dims, self.channels = spatial_dims, channels
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps
        for _ in range(spatial_dims - 1):
            kernel = kernel[..., None] * taps
        kernel = kernel / kernel.sum()
        self.register_buffer("kernel", kernel.expand(channels, 1, *kernel.shape).contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Half the size along every spatial axis."""
        pool = F.max_pool3d if self.spatial_dims == 3 else F.max_pool2d
        conv = F.conv3d if self.spatial_dims == 3 else F.conv2d
        x = pool(F.pad(x, (0, 1) * self.spatial_dims, mode="replicate"), kernel_size=2, stride=1)
        x = F.pad(x, (1, 1) * self.spatial_dims, mode="replicate")
        return conv(x, self.kernel.to(x.dtype), stride=2, groups=self.channels)


class N2VUNet(nn.Module):
    """U-Net for blind-spot denoising (N2V), or N2V2's variant with ``n2v2``.

    Parameters
    ----------
    spatial_dims : int
        2 or 3.
    in_channels, out_channels : int
        Channels of input and output (equal for denoising).
    features : sequence of int
        Channels at each level, top first; ``len(features) - 1`` downsamplings (default
        ``(32, 64, 128)``: depth 2, CAREamics' N2V default).
    n2v2 : bool
        Max-blur-pool downsampling and no top-level skip connection (N2V2).

    Inputs of any size are padded (reflect) to a multiple of ``2 ** depth`` and cropped back.
    """

    def __init__(self, spatial_dims: int, in_channels: int = 1, out_channels: int = 1,
                 features: Sequence[int] = (32, 64, 128), n2v2: bool = False) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"N2VUNet: spatial_dims must be 2 or 3, got {spatial_dims}")
        features = [int(f) for f in features]
        if len(features) < 2:
            raise ValueError(f"N2VUNet: features {features} needs at least two levels")
        self.spatial_dims, self.n2v2, self.depth = spatial_dims, n2v2, len(features) - 1
        # each block's second convolution gives the channels of the level it hands its output to,
        # as in CAREamics' U-Net: the bottleneck ends with features[-2], a decoder with the level above's
        bottom = len(features) - 1
        self.encoders = nn.ModuleList([_block(spatial_dims, in_channels, features[0])])
        self.pools = nn.ModuleList()
        for level in range(1, len(features)):
            self.pools.append(MaxBlurPool(spatial_dims, features[level - 1]) if n2v2 else
                              (nn.MaxPool3d(2) if spatial_dims == 3 else nn.MaxPool2d(2)))
            out = features[level - 1] if level == bottom else features[level]
            self.encoders.append(_block(spatial_dims, features[level - 1], features[level], out))
        self.decoders = nn.ModuleList()
        for level in range(bottom - 1, -1, -1):
            skip = 0 if n2v2 and level == 0 else features[level]
            self.decoders.append(_block(spatial_dims, features[level] + skip, features[level], features[max(level - 1, 0)]))
        self.head = _conv(spatial_dims)(features[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, *spatial)`` to ``(B, out_channels, *spatial)``."""
        spatial = x.shape[2:]
        multiple = 2 ** self.depth
        padding = [(-n) % multiple for n in spatial]
        if any(padding):
            pad = [p for size in reversed(padding) for p in (0, size)]
            x = F.pad(x, pad, mode="reflect" if min(spatial) > max(padding) else "replicate")
        skips = []
        for level, encoder in enumerate(self.encoders):
            if level:
                x = self.pools[level - 1](x)
            x = encoder(x)
            skips.append(x)
        x = skips.pop()
        mode = "trilinear" if self.spatial_dims == 3 else "bilinear"
        for decoder in self.decoders:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[2:], mode=mode, align_corners=False)
            x = decoder(x if self.n2v2 and not skips else torch.cat([x, skip], dim=1))
        x = self.head(x)
        return x[(slice(None), slice(None), *(slice(0, n) for n in spatial))]
