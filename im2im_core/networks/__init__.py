"""Built-in backbone networks: factories of ``torch.nn.Module`` following the Backbone protocol.

Each is called with ``spatial_dims``, ``in_channels``, ``out_channels`` and its own keyword
arguments, and maps ``(B, in_channels, [Z], Y, X)`` to ``(B, out_channels, [Z], Y, X)``.
``BUILTIN_BACKBONES`` maps the short names a config may use to these factories.
"""

from __future__ import annotations

from typing import Any

from monai.networks.nets import UNETR, AttentionUnet, BasicUNet, DynUNet, SwinUNETR, UNet

from im2im_core.networks.anisotropic_unet import AnisotropicUNet
from im2im_core.networks.fnet import FNet
from im2im_core.networks.patchgan import PatchGAN
from im2im_core.networks.resnet_generator import ResNetGenerator
from im2im_core.networks.smp_net import SMPNet

__all__ = ["BUILTIN_BACKBONES", "AnisotropicUNet", "FNet", "PatchGAN", "ResNetGenerator", "SMPNet"]

BUILTIN_BACKBONES: dict[str, Any] = {
    "fnet": FNet,
    "anisotropic_unet": AnisotropicUNet,
    "smp": SMPNet,
    "patchgan": PatchGAN,  # a discriminator (GAN frameworks), not an image-to-image backbone
    "resnet_generator": ResNetGenerator,
    # MONAI's networks take the Backbone arguments as they are; some need more of their own:
    # DynUNet kernel_size, strides and upsample_kernel_size; UNet channels and strides;
    # UNETR img_size. See each class's docstring.
    "UNet": UNet,
    "BasicUNet": BasicUNet,
    "AttentionUnet": AttentionUnet,
    "DynUNet": DynUNet,
    "SwinUNETR": SwinUNETR,
    "UNETR": UNETR,
}
