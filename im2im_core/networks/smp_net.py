"""2D networks of segmentation_models_pytorch (smp), behind im2im's Backbone arguments."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["SMPNet"]


def _check_encoder(smp: Any, encoder_name: str) -> None:
    """Raise a ValueError if smp cannot build ``encoder_name``.

    smp's own error is a KeyError listing every encoder, or a RuntimeError from deep in timm.
    """
    if encoder_name.startswith("tu-"):
        import timm

        if not timm.is_model(encoder_name[3:]):
            raise ValueError(
                f"SMPNet: unknown timm encoder {encoder_name!r}: timm has no model "
                f"{encoder_name[3:]!r}. Use 'tu-' followed by a name from timm.list_models(), "
                f"e.g. 'tu-resnet10t', 'tu-resnet18', 'tu-efficientnet_b0', 'tu-convnext_tiny'."
            )
        return
    names = smp.encoders.get_encoder_names()
    # smp >= 0.5 maps some deprecated "timm-" names to "tu-" encoders not in the list.
    is_timm_alias = getattr(smp.encoders, "is_equivalent_to_timm_universal", lambda name: False)
    if encoder_name not in names and not is_timm_alias(encoder_name):
        raise ValueError(
            f"SMPNet: unknown encoder {encoder_name!r}. Valid smp encoders include "
            f"{', '.join(repr(n) for n in names[:8])}, ... "
            f"(all: segmentation_models_pytorch.encoders.get_encoder_names()), or any timm model "
            f"as 'tu-<timm name>', e.g. 'tu-resnet10t'."
        )


class SMPNet(nn.Module):
    """A 2D segmentation_models_pytorch network (U-Net, FPN, DeepLabV3+...) with any encoder.

    The network is ``smp.create_model(arch, encoder_name=..., encoder_weights=...,
    in_channels=in_channels, classes=out_channels, **kwargs)``; its output is the raw output of
    smp's head (no activation).

    Input size: most architectures need Y and X divisible by the encoder's output stride, 32
    for most encoders at the default ``encoder_depth=5`` (``2**encoder_depth`` in general, less
    with a dilated ``encoder_output_stride``); ``forward`` raises a ``ValueError`` otherwise.
    The property :attr:`size_multiple` gives the rule of the built network (smp >= 0.5 ``Unet``
    resizes internally and accepts any size, ``size_multiple == 1``; patches that are
    multiples of 32 remain the safe choice).

    Parameters
    ----------
    spatial_dims : int
        Must be 2: smp networks are 2D only.
    in_channels : int
        Channels of the input.
    out_channels : int
        Channels of the output (smp's ``classes``).
    arch : str
        smp architecture, case-insensitive: ``"Unet"``, ``"UnetPlusPlus"``, ``"MAnet"``,
        ``"Linknet"``, ``"FPN"``, ``"PSPNet"``, ``"DeepLabV3"``, ``"DeepLabV3Plus"``, ``"PAN"``,
        ``"UPerNet"``, ``"Segformer"``, ``"DPT"`` (as the installed smp provides).
    encoder_name : str
        smp encoder (``"resnet18"``, ``"efficientnet-b0"``...) or any timm model as
        ``"tu-<timm name>"`` (``"tu-resnet10t"``, ``"tu-convnext_tiny"``...).
    encoder_weights : str, optional
        Pretrained encoder weights (``"imagenet"``...; ``True`` for ``tu-`` encoders). ``None``,
        the default, initialises at random and downloads nothing.
    **kwargs
        Passed on to the smp architecture (``decoder_channels``, ``encoder_depth``...).

    Raises
    ------
    ValueError
        For ``spatial_dims != 2``, an unknown ``arch`` or ``encoder_name``, or ``aux_params``
        (a classification head would make the output a tuple).
    """

    def __init__(
        self,
        *,
        spatial_dims: int = 2,
        in_channels: int,
        out_channels: int,
        arch: str = "Unet",
        encoder_name: str = "resnet18",
        encoder_weights: str | bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(
                f"SMPNet (segmentation_models_pytorch) is 2D only: spatial_dims must be 2, got "
                f"{spatial_dims!r}. For 3D use 'fnet', 'anisotropic_unet' or a MONAI network "
                f"such as 'UNet' or 'DynUNet'."
            )
        if "aux_params" in kwargs:
            raise ValueError(
                "SMPNet: aux_params (an extra classification head) is not supported: a backbone "
                "must return one image tensor."
            )
        # Imported here: segmentation_models_pytorch (and timm with it) adds seconds to every
        # import of im2im_core.networks, and only this backbone needs it.
        import segmentation_models_pytorch as smp

        architectures = getattr(smp, "MODEL_ARCHITECTURES_MAPPING", None) or {
            cls.__name__.lower(): cls for cls in smp._MODEL_ARCHITECTURES  # smp < 0.5
        }
        if arch.lower() not in architectures:
            choices = ", ".join(repr(cls.__name__) for cls in architectures.values())
            raise ValueError(f"SMPNet: unknown arch {arch!r}; valid choices: {choices}.")
        _check_encoder(smp, encoder_name)
        self.spatial_dims = spatial_dims
        self.model = smp.create_model(
            arch,
            encoder_name=encoder_name,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=out_channels,
            **kwargs,
        )

    @property
    def size_multiple(self) -> int:
        """What Y and X of the input must be divisible by (1 when the architecture has no rule)."""
        if not getattr(self.model, "requires_divisible_input_shape", True):
            return 1
        return int(self.model.encoder.output_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, Y, X)`` to ``(B, out_channels, Y, X)``."""
        if x.ndim != 4:
            raise ValueError(
                f"SMPNet expects a 4-D input (B, C, Y, X), got shape {tuple(x.shape)}."
            )
        multiple = self.size_multiple
        spatial = tuple(x.shape[2:])
        if any(size % multiple for size in spatial):
            raise ValueError(
                f"SMPNet ({type(self.model).__name__}) needs Y and X divisible by {multiple}; got "
                f"input spatial size {spatial}."
            )
        return self.model(x)
