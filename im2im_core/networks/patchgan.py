"""PatchGAN discriminator (Isola et al. 2017), at one or several scales (pix2pixHD), 2D or 3D.

Each scale is MONAI's ``PatchDiscriminator`` (``monai.networks.nets``), which with
``num_layers_d = n_layers`` has exactly the layout of pix2pix's ``n_layers`` PatchGAN (70 x 70
receptive field for 3 layers, kernel 4, LeakyReLU 0.2, N(0, 0.02) initialization) and returns
its intermediate features for feature matching. MONAI's ``MultiScalePatchDiscriminator`` is
not used: its discriminators all see the full-resolution input and grow deeper instead
(``n_layers * (i + 1)``), whereas pix2pixHD gives the same discriminator a 2x average-pooled
input at each scale, which stays cheap and works on the thin Z of anisotropic 3D patches.
"""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Pool
from monai.networks.nets import PatchDiscriminator
from torch import nn

from im2im_core.errors import ConfigError

__all__ = ["PatchGAN", "network_channels"]


class PatchGAN(nn.Module):
    """Patch discriminator: one real/fake logit per overlapping patch, at ``num_d`` scales.

    For a conditional GAN (pix2pix) its input is the network input and the (real or
    generated) output concatenated along channels, so ``in_channels`` is their sum; for an
    unconditional one (CycleGAN) it is the image's channels.

    Parameters
    ----------
    spatial_dims : int
        2 or 3.
    in_channels : int
        Channels of the discriminator input.
    out_channels : int
        Channels of each logit map (1 for real/fake).
    channels : int
        Filters of the first convolution, doubled at each layer (64 in pix2pix).
    n_layers : int
        Stride-2 convolutions (the patch size grows with it: 3 gives 70 x 70 pixels, 1 gives
        the 16 x 16 "PixelGAN"-like patch of pix2pix). Each spatial axis of the input must be
        at least :meth:`min_size` pixels.
    num_d : int
        Scales (pix2pixHD uses 2 or 3): scale ``i`` sees the input average-pooled ``i`` times
        by 2, through its own discriminator of the same layout.
    norm : str or tuple
        MONAI normalization name: ``"BATCH"`` (pix2pix), ``"INSTANCE"`` (CycleGAN, pix2pixHD),
        ``"GROUP"``, ``"LAYER"``... or a ``(name, {args})`` tuple.
    kernel_size : int
        Convolution kernel size (4 in pix2pix).
    dropout : float
        Dropout after each convolution block.

    Notes
    -----
    ``forward(x)`` returns the list of logit maps, one per scale, coarsest last;
    ``features(x)`` returns, per scale, the list of every block's output with the logit map
    last (for pix2pixHD's feature matching loss).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int = 1, channels: int = 64,
                 n_layers: int = 3, num_d: int = 1, norm: str | tuple = "BATCH", kernel_size: int = 4,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ConfigError(f"PatchGAN: spatial_dims must be 2 or 3, got {spatial_dims}")
        if n_layers < 1 or num_d < 1:
            raise ConfigError(f"PatchGAN: n_layers ({n_layers}) and num_d ({num_d}) must be at least 1")
        self.spatial_dims, self.n_layers, self.num_d, self.kernel_size = spatial_dims, n_layers, num_d, kernel_size
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(spatial_dims=spatial_dims, channels=channels, in_channels=in_channels,
                               out_channels=out_channels, num_layers_d=n_layers, kernel_size=kernel_size,
                               norm=norm, padding=(kernel_size - 1) // 2, dropout=dropout)
            for _ in range(num_d)
        )
        self.downsample = Pool[Pool.AVG, spatial_dims](kernel_size=3, stride=2, padding=1, count_include_pad=False)

    def min_size(self) -> int:
        """Smallest length of every spatial axis the first scale accepts (24 for n_layers 3)."""
        size = 1
        while self._output_size(size) < 1:
            size += 1
        return size

    def _output_size(self, size: int) -> int:
        pad = (self.kernel_size - 1) // 2
        for stride in [2] * self.n_layers + [1, 1]:  # initial conv and n_layers - 1 strided, then two stride-1
            size = (size + 2 * pad - self.kernel_size) // stride + 1
        return size

    def _check(self, x: torch.Tensor, scale: int) -> None:
        small = [s for s in x.shape[2:] if self._output_size(int(s)) < 1]
        if small:
            raise ConfigError(
                f"PatchGAN: input of spatial shape {tuple(x.shape[2:])} at scale {scale} is too small for "
                f"n_layers={self.n_layers} (each axis needs {self.min_size()} pixels there, "
                f"{self.min_size() * 2 ** scale} in the patch); use larger patches, a smaller n_layers or fewer scales (num_d)")

    def features(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per scale, the output of every block; the last one is that scale's logit map."""
        outputs = []
        for scale, discriminator in enumerate(self.discriminators):
            if scale:
                x = self.downsample(x)
            self._check(x, scale)
            outputs.append(discriminator(x))
        return outputs

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logit maps (no activation), one per scale."""
        return [blocks[-1] for blocks in self.features(x)]


_CONVS = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def network_channels(network: nn.Module) -> tuple[int, int, int]:
    """``(spatial_dims, in_channels, out_channels)`` of an image-to-image network.

    Read from the first and last convolution the network registers (its ``in_channels`` and
    ``out_channels`` attributes win when both are integers), which holds for the built-in
    backbones and for MONAI's and smp's U-Nets. Used to build a default discriminator that fits
    a generator; give the discriminator explicitly for networks where it does not hold.

    Raises
    ------
    ConfigError
        If the network has no 2D or 3D convolution.
    """
    convs = [m for m in network.modules() if isinstance(m, _CONVS)]
    if not convs:
        raise ConfigError(f"cannot tell the channels of {type(network).__name__}: it has no 2D or 3D convolution; "
                          f"give the discriminator explicitly")
    spatial_dims = 3 if isinstance(convs[0], (nn.Conv3d, nn.ConvTranspose3d)) else 2
    in_channels, out_channels = getattr(network, "in_channels", None), getattr(network, "out_channels", None)
    if not (isinstance(in_channels, int) and isinstance(out_channels, int)):
        in_channels, out_channels = convs[0].in_channels, convs[-1].out_channels
    return spatial_dims, in_channels, out_channels
