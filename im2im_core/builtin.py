"""The built-in plugin: registers the core's own parts through the same hooks plugins use.

Everything is registered by import path (``module:Class``, the module that defines the class),
so that loading the registry imports neither torch nor MONAI nor Lightning.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from im2im_core.hookspecs import hookimpl


@hookimpl
def im2im_register_frameworks() -> dict[str, Any]:
    """The frameworks of the core, by import path: FCN."""
    return {"FCN": "im2im_core.frameworks.fcn:FCN"}


@hookimpl
def im2im_register_backbones() -> dict[str, Any]:
    """The networks of the core and of MONAI, by import path."""
    # the same names as im2im_core.networks.BUILTIN_BACKBONES (a test checks that they agree)
    return {
        "fnet": "im2im_core.networks.fnet:FNet",
        "anisotropic_unet": "im2im_core.networks.anisotropic_unet:AnisotropicUNet",
        "smp": "im2im_core.networks.smp_net:SMPNet",
        # a discriminator (GAN frameworks), not an image-to-image backbone
        "patchgan": "im2im_core.networks.patchgan:PatchGAN",
        "resnet_generator": "im2im_core.networks.resnet_generator:ResNetGenerator",
        # MONAI's networks take the Backbone arguments as they are; some need more of their own:
        # DynUNet kernel_size, strides and upsample_kernel_size; UNet channels and strides;
        # UNETR img_size. See each class's docstring.
        "UNet": "monai.networks.nets.unet:UNet",
        "BasicUNet": "monai.networks.nets.basic_unet:BasicUNet",
        "AttentionUnet": "monai.networks.nets.attentionunet:AttentionUnet",
        "DynUNet": "monai.networks.nets.dynunet:DynUNet",
        "SwinUNETR": "monai.networks.nets.swin_unetr:SwinUNETR",
        "UNETR": "monai.networks.nets.unetr:UNETR",
    }


@hookimpl
def im2im_register_transforms() -> dict[str, Any]:
    """The transforms of the core and MONAI's z-score normalization, by import path."""
    return {
        "ReadImaged": "im2im_core.data.transforms:ReadImaged",
        "Binarized": "im2im_core.data.transforms:Binarized",
        "PercentileNormalized": "im2im_core.data.normalization:PercentileNormalized",
        "CenterNormalized": "im2im_core.data.normalization:CenterNormalized",
        "TrainingSetNormalized": "im2im_core.data.normalization:TrainingSetNormalized",
        # z-score normalization is MONAI's; the short name only makes it easy to find
        "StandardNormalized": "monai.transforms.intensity.dictionary:NormalizeIntensityd",
    }


@hookimpl
def im2im_register_readers() -> dict[str, Any]:
    """The image readers, by import path: bioio, and aicsimageio where it is installed."""
    readers: dict[str, Any] = {"bioio": "im2im_core.data.readers:BioioReader"}
    if importlib.util.find_spec("aicsimageio") is not None:
        readers["aicsimageio"] = "im2im_core.data.readers:AicsImageIOReader"
    return readers


@hookimpl
def im2im_register_presets() -> dict[str, Any]:
    """The presets the core ships (its ``presets`` folder)."""
    from im2im_core.presets import presets_in

    return presets_in(Path(__file__).parent / "presets")
