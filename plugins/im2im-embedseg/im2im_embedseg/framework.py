"""EmbedSeg: instance segmentation by spatial embeddings, 2D and 3D (a Lightning framework).

Lalit, Tomancak and Jug, "Embedding-based instance segmentation in microscopy", MIDL 2021
(and "EmbedSeg", Medical Image Analysis 2022), building on Neven et al., CVPR 2019. The network
predicts per pixel an offset to its object's centre, a bandwidth per axis and a seed score;
training pulls the embeddings of each object around its centre (Lovasz hinge on the soft IoU,
``loss.py``), with centres taken on the fly from the augmented label patch (``centres.py``);
prediction stitches the decoded outputs of sliding windows over the whole image and clusters
them once (``cluster.py``), so no object is cut at a window seam.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from im2im_core.errors import ConfigError
from im2im_core.inference.tta import Symmetry
from im2im_core.metrics import average_precision
from im2im_embedseg.centres import CentreMode
from im2im_embedseg.cluster import cluster
from im2im_embedseg.embedding import decode, output_channels
from im2im_embedseg.loss import EmbedSegLoss
from im2im_embedseg.postprocess import InstanceClustering
from im2im_embedseg.tta import inverse


class EmbedSeg(pl.LightningModule):
    """Train a network to segment instances (touching, non-convex) from instance label images.

    The data module must keep the labels as they are: ``data.target: labels``. Images may be
    2D or 3D; the backbone's output must have ``2 * spatial_dims + 1`` channels (offsets and
    sigmas per axis, in ``(Z,) Y, X`` order, and the seed map), as ``branched_erfnet`` gives by
    default.

    Parameters
    ----------
    backbone : torch.nn.Module
        The network, e.g. ``branched_erfnet`` or ``anisotropic_unet`` with ``out_channels: 7``.
    optimizer : callable
        ``optimizer(params)`` returning a torch optimizer.
    lr_scheduler : callable, optional
        ``lr_scheduler(optimizer)``, stepped every epoch.
    voxel_size : list of float, optional
        Physical voxel size per axis ``(Z,) Y, X``, e.g. ``[2.0, 0.5, 0.5]``: coordinates are
        scaled by it (relative to X), so embeddings and sigmas are isotropic in space.
        ``None``: isotropic.
    offset_range : float
        Largest offset per axis, in X pixels (``tanh`` scale); at least the largest distance
        from an object's pixel to its centre.
    sigma_init : float
        Bandwidth (X pixels) of an untrained network; the network learns a factor of it.
    centre : {"centroid", "approximate_medoid", "medoid"}
        Instance centres (see ``centres.py``): medoids lie inside non-convex objects.
    medoid_samples : int
        Pixels per object ``approximate_medoid`` uses.
    foreground_weight : float
        Weight of object pixels in the seed loss (background weighs 1).
    instance_weight, variance_weight, seed_weight : float
        Weights of the loss terms: Lovasz hinge, sigma variance, seed regression.
    seed_threshold : float
        Lowest seed score of an object's centre at prediction.
    foreground_threshold : float
        Lowest seed score of an object pixel at prediction.
    min_size : int
        Fewest pixels of a predicted object.
    roi_size : list of int, optional
        Sliding window of validation and prediction; default: the data module's ``patch_size``.
    overlap : float
        Overlap of neighbouring windows (a fraction of the window).
    sw_batch_size : int
        Windows computed together.
    """

    def __init__(
        self,
        backbone: nn.Module,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        voxel_size: list[float] | None = None,
        offset_range: float = 64.0,
        sigma_init: float = 8.0,
        centre: CentreMode = "approximate_medoid",
        medoid_samples: int = 256,
        foreground_weight: float = 1.0,
        instance_weight: float = 1.0,
        variance_weight: float = 10.0,
        seed_weight: float = 1.0,
        seed_threshold: float = 0.9,
        foreground_threshold: float = 0.5,
        min_size: int = 10,
        roi_size: list[int] | None = None,
        overlap: float = 0.25,
        sw_batch_size: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self.voxel_size = None if voxel_size is None else list(voxel_size)
        self.offset_range, self.sigma_init = float(offset_range), float(sigma_init)
        self.criterion = EmbedSegLoss(voxel_size, centre, medoid_samples, foreground_weight, instance_weight,
                                      variance_weight, seed_weight)
        self.seed_threshold, self.foreground_threshold, self.min_size = seed_threshold, foreground_threshold, min_size
        self.roi_size = roi_size
        self.overlap, self.sw_batch_size = overlap, sw_batch_size

    # ----------------------------------------------------------------- network and outputs
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Decoded output ``(B, 2D+1, *spatial)``: offsets, log-sigmas, seed (``embedding.decode``)."""
        raw = self.backbone(x)
        dims = x.ndim - 2
        if raw.shape[1] != output_channels(dims):
            raise ConfigError(f"EmbedSeg needs a backbone with out_channels {output_channels(dims)} for {dims}D images "
                              f"(offset and sigma per axis, one seed map); {type(self.backbone).__name__} gives "
                              f"{raw.shape[1]}")
        return decode(raw, self.offset_range, self.sigma_init)

    def predict_patch(self, patch: torch.Tensor) -> torch.Tensor:
        """Decoded outputs of a batch of windows.

        These are what sliding windows blend: offsets are relative to each pixel, so blending
        them and adding the whole image's grid afterwards stitches objects across windows.
        The core's TTA averages them over symmetries, mapped back by :meth:`tta_inverse`.
        """
        return self.forward(patch)

    @staticmethod
    def tta_inverse(output: torch.Tensor, symmetry: Symmetry) -> torch.Tensor:
        """Undo a TTA symmetry on decoded outputs, offsets as vectors (``tta.inverse``): the
        core's TTA (``im2im_core.inference.predict``) uses it instead of its scalar inverse."""
        return inverse(output, symmetry)

    def default_postprocess(self) -> InstanceClustering:
        """The clustering step with this model's settings, a whole-image ``Postprocess``.

        ``predict(model, image, postprocess=model.default_postprocess())`` (core) gives labels.
        """
        first = next(self.parameters(), None)
        return InstanceClustering(voxel_size=self.voxel_size, offset_range=self.offset_range,
                                  seed_threshold=self.seed_threshold, foreground_threshold=self.foreground_threshold,
                                  min_size=self.min_size, device=str(first.device) if first is not None else None)

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        """Instance labels ``(B, 1, *spatial)`` int32 of whole-image decoded outputs ``(B, 2D+1, *spatial)``.

        Clustering needs whole images: the core's ``predict(..., postprocess="auto")`` uses
        :meth:`default_postprocess` instead, which clusters once the whole output is there.
        """
        return torch.stack([cluster(item, self.voxel_size, self.offset_range, self.seed_threshold,
                                    self.foreground_threshold, self.min_size)[None] for item in output])

    def segment(self, image: torch.Tensor | np.ndarray, inference: Any = None, dims: str | None = None,
                progress: Any = None) -> np.ndarray:
        """Instance labels of one whole image ``([T], C, [Z], Y, X)``, predicted window by window.

        Parameters
        ----------
        image : torch.Tensor or numpy.ndarray
            Normalized as in training.
        inference : im2im_core.inference.Inference, optional
            Window, overlap, blending, TTA options; default: ``Inference()`` with this
            framework's ``roi_size``, ``overlap`` and ``sw_batch_size``.
        dims : str, optional
            Axes of ``image``; default ``C`` and the spatial axes. With T, each timepoint is
            segmented in turn.
        progress : callable, optional
            ``progress(done, total)`` windows, as for :func:`im2im_core.inference.predict`.

        Returns
        -------
        numpy.ndarray
            ``([T], 1, [Z], Y, X)`` labels, uint16 (int32 above 65535 objects).
        """
        from im2im_core.inference import Inference, predict

        settings = inference if inference is not None else Inference()
        dims = dims or "C" + "ZYX"[-(image.ndim - 1):]
        return predict(self, image, dims=dims, inference=settings, postprocess=self.default_postprocess(), progress=progress)

    # ----------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        parts = self.criterion(self(batch["IM"]), batch["GT"][:, 0].long())
        size = batch["IM"].shape[0]
        self.log("train_loss", parts["loss"], prog_bar=True, batch_size=size)
        for name in ("instance", "variance", "seed"):
            self.log(f"train_{name}", parts[name], batch_size=size)
        return parts["loss"]

    def _window(self) -> list[int] | None:
        if self.roi_size is not None:
            return list(self.roi_size)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        return list(datamodule.patch_size) if datamodule is not None and hasattr(datamodule, "patch_size") else None

    def _inference(self) -> Any:
        from im2im_core.inference import Inference

        settings = getattr(self, "inference", None) or Inference()
        if settings.roi_size is None and self._window() is not None:
            settings = dataclasses.replace(settings, roi_size=self._window())
        return settings

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Average precision at IoU 0.5 of the whole validation image (``val_ap50``)."""
        scores = [average_precision(self.segment(image, self._inference())[0], target[0].cpu().numpy(), 0.5)
                  for image, target in zip(batch["IM"], batch["GT"])]
        self.log("val_ap50", float(np.mean(scores)), prog_bar=True, batch_size=len(scores), sync_dist=True)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> list[np.ndarray]:
        """Instance labels ``([T], 1, [Z], Y, X)`` of each whole image of the batch.

        Windows and TTA follow ``self.inference`` (set by the ``prediction:`` writer); a
        ``prediction.postprocess`` is not used: the output is the clustering's labels.
        """
        from im2im_core.inference.predict_batch import predict_batch

        return predict_batch(self, batch, self._inference(), self.default_postprocess())

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
