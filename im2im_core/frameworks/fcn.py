"""FCN: supervised image-to-image training, for regression and segmentation, 2D and 3D."""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from monai.losses import DiceCELoss
from torch import nn

from im2im_core import keys
from im2im_core.frameworks.base import Im2ImFramework, OptimizerGroup
from im2im_core.inference.postprocess import Postprocess
from im2im_core.metrics import dice, pearson


class FCN(Im2ImFramework):
    """Train one network to map input images to targets.

    Parameters
    ----------
    backbone : torch.nn.Module
        The network; its output channels decide the task head: 1 for binary segmentation or
        one image, N for N classes (segmentation) or N images (regression).
    task : {"segmentation", "regression"}
        ``segmentation`` trains masks (sigmoid for 1 channel, softmax otherwise) and validates
        with Dice; ``regression`` trains intensities (label-free, denoising, modality
        transfer) and validates with Pearson's r.
    loss : torch.nn.Module, optional
        Any loss ``loss(output, target)``. Default: MONAI ``DiceCELoss`` for segmentation,
        ``MSELoss`` for regression.
    optimizer : callable
        ``optimizer(params)`` returning a torch optimizer (config: a class path with init args).
    lr_scheduler : callable, optional
        ``lr_scheduler(optimizer)`` returning a torch LR scheduler, stepped every epoch.
    threshold : float
        Probability above which a pixel is foreground (binary segmentation).
    **kwargs
        ``spatial_dims``, ``roi_size``, ``overlap``, ``sw_batch_size``, ``lr_interval``, ``channels_last`` of
        :class:`~im2im_core.frameworks.Im2ImFramework`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        task: Literal["segmentation", "regression"] = "segmentation",
        loss: nn.Module | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        threshold: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backbone = backbone
        self.task = task
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.threshold = threshold

    @classmethod
    def network_arguments(cls, spatial_dims: int, in_channels: int | None,
                          target_channels: int | None) -> dict[str, dict[str, int | None]]:
        """The backbone maps the input's channels to the target's."""
        return {"backbone": {"spatial_dims": spatial_dims, "in_channels": in_channels, "out_channels": target_channels}}

    # ----------------------------------------------------------------- the contract
    def window_network(self) -> nn.Module:
        """The backbone."""
        return self.backbone

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        """Masks (uint8) for segmentation, intensities (float32) for regression."""
        if self.task == "regression":
            return output.float()
        if output.shape[1] == 1:
            return (torch.sigmoid(output) > self.threshold).to(torch.uint8)
        return output.argmax(dim=1, keepdim=True).to(torch.uint8)

    def pixel_postprocess(self, out_channels: int) -> Postprocess:
        """What :meth:`postprocess` does, as a description export can write."""
        if self.task == "regression":
            return Postprocess()
        if out_channels == 1:
            return Postprocess("sigmoid", self.threshold)
        return Postprocess("softmax", argmax=True)

    @classmethod
    def citations(cls) -> list[dict[str, str]]:
        """U-Net, the usual backbone of an FCN."""
        return [{"text": "Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical Image Segmentation. "
                         "MICCAI 2015", "doi": "10.1007/978-3-319-24574-4_28"}]

    # ----------------------------------------------------------------- training
    def _loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.loss is None:  # chosen at first use, once the output channels are known
            if self.task == "regression":
                self.loss = nn.MSELoss()
            elif output.shape[1] == 1:
                self.loss = DiceCELoss(sigmoid=True)
            else:
                self.loss = DiceCELoss(softmax=True, to_onehot_y=True)
        return self.loss(output, target)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """The loss of the backbone's output against the target."""
        output = self.backbone(batch[keys.IMAGE])
        loss = self._loss(output, batch[keys.TARGET])
        self.log("train_loss", loss, prog_bar=True, batch_size=output.shape[0])
        return loss

    def optimizer_groups(self) -> list[OptimizerGroup]:
        """One optimizer for all parameters."""
        return [OptimizerGroup(self.parameters(), self.optimizer_factory, self.scheduler_factory)]

    def validation_metrics(self, output: torch.Tensor, final: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """``val_loss``, and ``val_pearson`` (regression) or ``val_dice`` (mean over the foreground classes)."""
        metrics: dict[str, Any] = {"val_loss": self._loss(output, target)}
        final, target = final.cpu(), target.cpu()
        if self.task == "regression":
            metrics["val_pearson"] = pearson(final, target)
        elif output.shape[1] == 1:
            metrics["val_dice"] = dice(final, target)
        else:
            scores = [dice(final == c, target == c) for c in range(1, output.shape[1])]
            metrics["val_dice"] = sum(scores) / len(scores)
        return metrics
