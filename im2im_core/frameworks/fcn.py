"""FCN: supervised image-to-image training, for regression and segmentation, 2D and 3D."""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from monai.losses import DiceCELoss
from torch import nn

from im2im_core.inference.sliding_window import predict_image
from im2im_core.metrics import dice, pearson


class FCN(pl.LightningModule):
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
    roi_size : list of int, optional
        Window of sliding-window inference in validation and prediction; default: the data
        module's ``patch_size``.
    overlap : float
        Overlap of neighbouring windows, a fraction of the window.
    sw_batch_size : int
        Windows computed together.
    threshold : float
        Probability above which a pixel is foreground (binary segmentation).
    """

    def __init__(
        self,
        backbone: nn.Module,
        task: Literal["segmentation", "regression"] = "segmentation",
        loss: nn.Module | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        roi_size: list[int] | None = None,
        overlap: float = 0.25,
        sw_batch_size: int = 4,
        threshold: float = 0.5,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "loss"])
        self.backbone = backbone
        self.task = task
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.roi_size = roi_size
        self.overlap, self.sw_batch_size, self.threshold = overlap, sw_batch_size, threshold

    # ----------------------------------------------------------------- Framework protocol
    @property
    def spatial_dims(self) -> int:
        """Spatial dimensions of the windows: 2 or 3."""
        return len(self._window())

    def predict_patch(self, patch: torch.Tensor) -> torch.Tensor:
        """Raw network output (logits or intensities) for a batch of patches."""
        return self.backbone(patch)

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        """Masks (uint8) for segmentation, intensities (float32) for regression."""
        if self.task == "regression":
            return output.float()
        if output.shape[1] == 1:
            return (torch.sigmoid(output) > self.threshold).to(torch.uint8)
        return output.argmax(dim=1, keepdim=True).to(torch.uint8)

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        output = self.backbone(batch["IM"])
        loss = self._loss(output, batch["GT"])
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["IM"].shape[0])
        return loss

    def _window(self) -> list[int]:
        if self.roi_size is not None:
            return list(self.roi_size)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None or not hasattr(datamodule, "patch_size"):
            raise ValueError("FCN.roi_size is not set and no data module gives a patch_size")
        return list(datamodule.patch_size)

    def _whole_image(self, image: torch.Tensor) -> torch.Tensor:
        return predict_image(self, image, self._window(), self.overlap, self.sw_batch_size)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        output = self._whole_image(batch["IM"])
        target = batch["GT"]
        self.log("val_loss", self._loss(output, target), batch_size=1, sync_dist=True)
        final = self.postprocess(output)
        if self.task == "regression":
            self.log("val_pearson", pearson(final.cpu(), target.cpu()), prog_bar=True, batch_size=1, sync_dist=True)
        elif output.shape[1] == 1:
            self.log("val_dice", dice(final.cpu(), target.cpu()), prog_bar=True, batch_size=1, sync_dist=True)
        else:
            scores = [dice(final.cpu() == c, target.cpu() == c) for c in range(1, output.shape[1])]
            self.log("val_dice", sum(scores) / len(scores), prog_bar=True, batch_size=1, sync_dist=True)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> list[np.ndarray | None]:
        """The final output of each whole image in the batch, ``([T], C, [Z], Y, X)`` arrays.

        Windows, TTA and post-processing follow ``self.inference`` and
        ``self.prediction_postprocess`` (set by the ``prediction:`` writer), else the defaults of
        :class:`~im2im_core.inference.Inference` and :meth:`postprocess`. An output the writer
        streams to OME-Zarr is None here (see :func:`~im2im_core.inference.predict_batch.predict_batch`).
        """
        from im2im_core.inference.predict_batch import predict_batch

        return predict_batch(self, batch)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
