"""``N2V``: self-supervised blind-spot denoising (Noise2Void, N2V2, structN2V) on images alone.

Krull et al., CVPR 2019 (N2V); Höck et al., ECCV Workshops 2022 (N2V2); Broaddus et al., ISBI
2020 (structN2V). Training masks a few pixels of each patch (:mod:`im2im_n2v.masking`) and
learns to predict their original values from the neighbourhood alone, which averages the
noise away when it is independent between pixels. Prediction is plain: the network on the
whole image, through the core's sliding windows, and the outputs come back in the input's
intensity units (``output_in_input_units``).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from im2im_core import keys
from im2im_core.frameworks.base import Im2ImFramework, OptimizerGroup
from im2im_core.inference.postprocess import Postprocess
from im2im_n2v.masking import BlindSpotMasking, Replacement, StructShape, mask_batch, masked_loss

ChannelMode = Literal["joint", "independent"]


class ChannelsApart(nn.Module):
    """Apply a one-channel network to every channel on its own: ``(B, C, ...)`` as ``(B * C, 1, ...)``."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output of each channel, channels stacked again."""
        batch, channels = x.shape[:2]
        output = self.network(x.reshape(batch * channels, 1, *x.shape[2:]))
        return output.reshape(batch, channels, *output.shape[2:])


class N2V(Im2ImFramework):
    """Noise2Void and its variants: train a denoiser on noisy images alone.

    Parameters
    ----------
    backbone : torch.nn.Module
        The network, same channels in and out (``n2v_unet``; with ``n2v2: true`` N2V2's).
        ``im2im fit`` fills its ``spatial_dims`` and channels from the data.
    mask_share : float
        Share of the pixels of each patch masked, in ``(0, 0.25]``; default 0.2 %.
    window : int
        Odd side of the neighbourhood a masked pixel's replacement comes from (11, as CAREamics).
    replacement : {"uniform", "median"}
        A random neighbour other than the pixel (N2V) or the neighbourhood's median without the
        pixel (N2V2).
    struct_mask : {"none", "line", "cross"}
        structN2V for noise correlated along camera rows or columns: also hide ``struct_span``
        pixels on each side along ``struct_axis`` (line) or along Y and X (cross). Use flips,
        not 90-degree turns, as augmentation: a turn moves the correlation to the other axis.
    struct_axis : {"X", "Y", "Z"}
        Direction of the correlated noise (line).
    struct_span : int
        Pixels hidden on each side of a masked pixel.
    off_axis : bool
        Replacements only from pixels off the masked pixel's own row, column and Z line (as
        CAREamics), where slightly correlated camera noise would leak most.
    channels : {"joint", "independent"}
        ``joint``: one network sees all channels (each masked on its own); ``independent``:
        a one-channel network denoises every channel separately.
    loss : {"mse", "l1"}
        Error at the masked pixels.
    optimizer : callable
        ``optimizer(params)``, e.g. Adam.
    lr_scheduler : callable, optional
        ``lr_scheduler(optimizer)``; ``ReduceLROnPlateau`` follows the validation loss.
    **kwargs
        ``spatial_dims``, ``roi_size``, ``overlap``, ``sw_batch_size``, ``lr_interval``, ``channels_last`` of
        :class:`~im2im_core.frameworks.Im2ImFramework`.
    """

    def __init__(self, backbone: nn.Module, mask_share: float = 0.002, window: int = 11,
                 replacement: Replacement = "uniform", struct_mask: StructShape = "none",
                 struct_axis: Literal["X", "Y", "Z"] = "X", struct_span: int = 2, off_axis: bool = False,
                 channels: ChannelMode = "joint",
                 loss: Literal["mse", "l1"] = "mse", optimizer: OptimizerCallable = torch.optim.Adam,
                 lr_scheduler: LRSchedulerCallable | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from im2im_core.errors import ConfigError

        if channels not in ("joint", "independent"):
            raise ConfigError(f"N2V channels {channels!r} is not 'joint' or 'independent'")
        if loss not in ("mse", "l1"):
            raise ConfigError(f"N2V loss {loss!r} is not 'mse' or 'l1'")
        self.masking = BlindSpotMasking(mask_share, window, replacement, struct_mask, struct_axis, struct_span, off_axis)
        self.channels, self.loss_kind = channels, loss
        self.network = ChannelsApart(backbone) if channels == "independent" else backbone
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self._warned_targets = self._warned_small = False

    @classmethod
    def network_arguments(cls, spatial_dims: int, in_channels: int | None,
                          target_channels: int | None) -> dict[str, dict[str, int | None]]:
        """The backbone maps the input's channels to as many (denoised) channels.

        With ``channels: independent`` a config sets ``in_channels: 1`` and ``out_channels: 1``.
        """
        return {"backbone": {"spatial_dims": spatial_dims, "in_channels": in_channels, "out_channels": in_channels}}

    # ----------------------------------------------------------------- the contract
    def window_network(self) -> nn.Module:
        """The backbone (applied to each channel on its own with ``channels: independent``)."""
        return self.network

    def output_in_input_units(self) -> bool:
        """True: outputs are denoised inputs, mapped back to the input's intensities."""
        return True

    def pixel_postprocess(self, out_channels: int) -> Postprocess:
        """The denoised image is the final output."""
        return Postprocess()

    @classmethod
    def citations(cls) -> list[dict[str, str]]:
        """Noise2Void (Krull et al. 2019); N2V2 and structN2V build on it."""
        return [{"text": "Krull, Buchholz, Jug. Noise2Void - Learning Denoising from Single Noisy Images. CVPR 2019",
                 "doi": "10.1109/CVPR.2019.00223"}]

    # ----------------------------------------------------------------- training
    def blind_spot_loss(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The N2V loss of a batch ``(B, C, *spatial)``: mask, predict, compare at the masked pixels."""
        masked, positions = mask_batch(images, self.masking, generator)
        return masked_loss(self.network(masked), images, positions, self.loss_kind)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """The blind-spot loss of the batch's input patches; targets, if any, are not used."""
        if keys.TARGET in batch and not self._warned_targets:
            warnings.warn("N2V trains on the input images alone: the targets of this data are ignored", stacklevel=2)
            self._warned_targets = True
        images = batch[keys.IMAGE]
        loss = self.blind_spot_loss(images)
        self.log("train_loss", loss, prog_bar=True, batch_size=images.shape[0])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """``val_loss``: the blind-spot loss of whole validation images, predicted as ``im2im predict`` would.

        The masked pixels are drawn from a generator seeded by the batch index, so every
        validation scores the same pixels.
        """
        images = batch[keys.IMAGE]
        if not self.masking.fits(images.shape[2:]):  # training pads such images to the patch size; whole ones cannot be
            if not self._warned_small:
                warnings.warn(f"N2V: validation images of {'x'.join(map(str, images.shape[2:]))} pixels are smaller than "
                              f"the masking window {self.masking.window}; they are not scored", stacklevel=2)
                self._warned_small = True
            return
        generator = torch.Generator(device=images.device).manual_seed(batch_idx)
        masked, positions = mask_batch(images, self.masking, generator)
        loss = masked_loss(self.predict_whole(masked), images, positions, self.loss_kind)
        self.log("val_loss", loss, prog_bar=True, batch_size=images.shape[0], sync_dist=True)

    def optimizer_groups(self) -> list[OptimizerGroup]:
        """One optimizer for the network."""
        return [OptimizerGroup(self.parameters(), self.optimizer_factory, self.scheduler_factory)]
