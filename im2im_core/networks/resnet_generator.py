"""The ResNet generator of CycleGAN (Zhu et al. 2017, after Johnson et al. 2016), 2D or 3D.

MONAI has no such network: its ``ResidualUnit`` puts no normalization after the last
convolution of a block and pads with zeros, its ``Generator`` maps latent codes to images, and
``SegResNet`` is an encoder-decoder with skips. So the layout is ours; the layers are MONAI
``Convolution`` blocks, with torch's reflection padding where CycleGAN uses it.
"""

from __future__ import annotations

from typing import Literal

import torch
from monai.networks.blocks import Convolution
from torch import nn

from im2im_core.errors import ConfigError

__all__ = ["ResNetGenerator"]

_REFLECT = {2: nn.ReflectionPad2d, 3: nn.ReflectionPad3d}
_ACTIVATIONS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def _reflect_conv(spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int, norm: str | tuple | None,
                  act: str | None, dropout: float = 0.0) -> nn.Sequential:
    """Reflection padding then a convolution that keeps the size, followed by norm and act."""
    conv = Convolution(spatial_dims, in_channels, out_channels, kernel_size=kernel_size, padding=0, norm=norm,
                       act=act, dropout=dropout or None, conv_only=norm is None and act is None)
    return nn.Sequential(_REFLECT[spatial_dims](kernel_size // 2), conv)


class _ResidualBlock(nn.Module):
    """``x + (pad, conv3, norm, ReLU, [dropout], pad, conv3, norm)(x)``."""

    def __init__(self, spatial_dims: int, channels: int, norm: str | tuple, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _reflect_conv(spatial_dims, channels, channels, 3, norm, "RELU", dropout),
            _reflect_conv(spatial_dims, channels, channels, 3, norm, None),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetGenerator(nn.Module):
    """CycleGAN's generator: 7x7 convolution, ``n_downsampling`` stride-2 convolutions,
    ``n_blocks`` residual blocks, as many stride-2 transposed convolutions, 7x7 convolution.

    Parameters
    ----------
    spatial_dims : int
        2 or 3.
    in_channels, out_channels : int
        Channels of the input and output images.
    channels : int
        Filters of the first convolution (64 in CycleGAN), doubled at each downsampling.
    n_blocks : int
        Residual blocks at the lowest resolution: 9 for 256 x 256 images, 6 for 128 x 128 in
        CycleGAN.
    n_downsampling : int
        Stride-2 steps; each spatial axis of the input must be a multiple of
        ``2 ** n_downsampling``.
    norm : str or tuple
        MONAI normalization name, ``"INSTANCE"`` in CycleGAN (``"BATCH"``, ``"GROUP"``...).
    dropout : float
        Dropout inside the residual blocks (0 in CycleGAN, 0.5 optional).
    final_activation : {"tanh", "sigmoid"} or None
        ``tanh`` for images normalized to [-1, 1] (CycleGAN; ``PercentileNormalized`` with
        ``out_range: "-1,1"``), ``sigmoid`` for [0, 1] with clipping, ``None`` for unbounded
        intensities.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, channels: int = 64, n_blocks: int = 9,
                 n_downsampling: int = 2, norm: str | tuple = "INSTANCE", dropout: float = 0.0,
                 final_activation: Literal["tanh", "sigmoid"] | None = "tanh") -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ConfigError(f"ResNetGenerator: spatial_dims must be 2 or 3, got {spatial_dims}")
        if final_activation is not None and final_activation not in _ACTIVATIONS:
            raise ConfigError(f"ResNetGenerator: final_activation {final_activation!r} is not one of tanh, sigmoid, None")
        self.in_channels, self.out_channels, self.n_downsampling = in_channels, out_channels, n_downsampling
        layers: list[nn.Module] = [_reflect_conv(spatial_dims, in_channels, channels, 7, norm, "RELU")]
        width = channels
        for _ in range(n_downsampling):
            layers.append(Convolution(spatial_dims, width, 2 * width, strides=2, kernel_size=3, padding=1, norm=norm, act="RELU"))
            width *= 2
        layers += [_ResidualBlock(spatial_dims, width, norm, dropout) for _ in range(n_blocks)]
        for _ in range(n_downsampling):
            layers.append(Convolution(spatial_dims, width, width // 2, strides=2, kernel_size=3, padding=1, output_padding=1,
                                      is_transposed=True, norm=norm, act="RELU"))
            width //= 2
        layers.append(_reflect_conv(spatial_dims, width, out_channels, 7, None, None))
        if final_activation is not None:
            layers.append(_ACTIVATIONS[final_activation]())
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, [Z], Y, X)`` to ``(B, out_channels, [Z], Y, X)``; sizes multiples of ``2 ** n_downsampling``."""
        multiple = 2 ** self.n_downsampling
        if any(int(s) % multiple for s in x.shape[2:]):
            raise ValueError(f"ResNetGenerator: spatial shape {tuple(x.shape[2:])} is not a multiple of {multiple} "
                             f"(2 ** n_downsampling) along every axis")
        return self.model(x)
