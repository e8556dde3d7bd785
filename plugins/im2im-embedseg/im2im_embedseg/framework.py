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

from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from im2im_core import keys
from im2im_core.axes import channels_first
from im2im_core.errors import ConfigError
from im2im_core.frameworks import Im2ImFramework, OptimizerGroup
from im2im_core.inference.tta import Symmetry
from im2im_core.metrics import average_precision
from im2im_core.protocols import WindowDefaults
from im2im_embedseg.centres import CentreMode
from im2im_embedseg.embedding import decode, output_channels
from im2im_embedseg.loss import EmbedSegLoss
from im2im_embedseg.postprocess import InstanceClustering
from im2im_embedseg.tta import inverse


class EmbedSeg(Im2ImFramework):
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
        Sliding window of validation and prediction; default: the data module's ``patch_size``
        (the offsets were learnt at that scale, so prediction keeps it rather than an
        automatic window).
    channels_last : bool or "auto"
        Train in the channels-last memory layout (see :class:`~im2im_core.frameworks.Im2ImFramework`).
        Default False: the branched ERFNet's one-dimensional and dilated convolutions train 4-5 %
        slower in it on the CPU (a whole EmbedSeg step of 8 BBBC039 patches of 256 x 256, 1 and
        2 threads, interleaved), unlike the U-Nets that ``auto`` was measured on.
    **kwargs
        ``spatial_dims``, ``overlap``, ``sw_batch_size`` of :class:`~im2im_core.frameworks.Im2ImFramework`.
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
        channels_last: bool | Literal["auto"] = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(channels_last=channels_last, **kwargs)
        self.backbone = backbone
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self.voxel_size = None if voxel_size is None else list(voxel_size)
        self.offset_range, self.sigma_init = float(offset_range), float(sigma_init)
        self.criterion = EmbedSegLoss(voxel_size, centre, medoid_samples, foreground_weight, instance_weight,
                                      variance_weight, seed_weight)
        self.seed_threshold, self.foreground_threshold, self.min_size = seed_threshold, foreground_threshold, min_size

    @classmethod
    def network_arguments(cls, spatial_dims: int, in_channels: int | None,
                          target_channels: int | None) -> dict[str, dict[str, int | None]]:
        """The backbone gives an offset and a sigma per axis and a seed map: ``2 * spatial_dims + 1`` channels."""
        return {"backbone": {"spatial_dims": spatial_dims, "in_channels": in_channels,
                             "out_channels": output_channels(spatial_dims)}}

    # ----------------------------------------------------------------- network and outputs
    def window_network(self) -> nn.Module:
        """The backbone followed by :func:`~im2im_embedseg.embedding.decode`: offsets, log-sigmas, seed.

        Decoded outputs are what sliding windows blend: offsets are relative to each pixel, so
        blending them and adding the whole image's grid afterwards stitches objects across
        windows. TTA maps them back with :meth:`tta_inverse`.
        """
        return DecodedNetwork(self.backbone, self.offset_range, self.sigma_init)

    def window_defaults(self) -> WindowDefaults:
        """``roi_size``, else the training patch size of the attached data module."""
        return WindowDefaults(self.roi_size or self._data_patch_size(), self.overlap, self.sw_batch_size)

    def tta_inverse(self, output: torch.Tensor, symmetry: Symmetry) -> torch.Tensor:
        """Undo a TTA symmetry on decoded outputs, offsets turned as vectors (``tta.inverse``)."""
        return inverse(output, symmetry)

    def whole_image_postprocess(self) -> InstanceClustering:
        """Clustering with this model's settings: it needs the whole stitched output."""
        first = next(self.parameters(), None)
        return InstanceClustering(voxel_size=self.voxel_size, offset_range=self.offset_range,
                                  seed_threshold=self.seed_threshold, foreground_threshold=self.foreground_threshold,
                                  min_size=self.min_size, device=str(first.device) if first is not None else None)

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        """The decoded output as it is: the final step, clustering, is :meth:`whole_image_postprocess`."""
        return output

    @classmethod
    def citations(cls) -> list[dict[str, str]]:
        """EmbedSeg (Lalit et al., its journal version)."""
        return [{"text": "Lalit, Tomancak, Jug. EmbedSeg: Embedding-based Instance Segmentation for Biomedical Microscopy "
                         "Data. Medical Image Analysis 2022", "doi": "10.1016/j.media.2022.102523"}]

    def segment(self, image: torch.Tensor | np.ndarray, inference: Any = None, dims: str | None = None,
                progress: Any = None) -> np.ndarray:
        """Instance labels of one whole image ``([T], C, [Z], Y, X)``, predicted window by window.

        Parameters
        ----------
        image : torch.Tensor or numpy.ndarray
            Normalized as in training.
        inference : im2im_core.inference.Inference, optional
            Window, overlap, blending, TTA options; default: ``Inference()`` (this
            framework's window defaults).
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
        from im2im_core.inference import predict

        return predict(self, image, dims=dims or channels_first(image.ndim), inference=inference, progress=progress)

    # ----------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """The EmbedSeg loss of the decoded output against the label patch."""
        image = batch[keys.IMAGE]
        parts = self.criterion(self(image), batch[keys.TARGET][:, 0].long())
        size = image.shape[0]
        self.log("train_loss", parts["loss"], prog_bar=True, batch_size=size)
        for name in ("instance", "variance", "seed"):
            self.log(f"train_{name}", parts[name], batch_size=size)
        return parts["loss"]

    def optimizer_groups(self) -> list[OptimizerGroup]:
        """One optimizer for all parameters."""
        return [OptimizerGroup(self.parameters(), self.optimizer_factory, self.scheduler_factory)]

    def validation_metrics(self, output: torch.Tensor, final: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """Average precision at IoU 0.5 of the whole validation images (``val_ap50``)."""
        scores = [average_precision(labels[0].cpu().numpy(), truth[0].cpu().numpy(), 0.5) for labels, truth in zip(final, target)]
        return {"val_ap50": float(np.mean(scores))}


class DecodedNetwork(nn.Module):
    """A backbone whose raw output is decoded (``embedding.decode``), checked for its channel count."""

    def __init__(self, backbone: nn.Module, offset_range: float, sigma_init: float) -> None:
        super().__init__()
        self.backbone, self.offset_range, self.sigma_init = backbone, offset_range, sigma_init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Decoded output ``(B, 2D+1, *spatial)``: offsets, log-sigmas, seed."""
        raw = self.backbone(x)
        dims = x.ndim - 2
        if raw.shape[1] != output_channels(dims):
            raise ConfigError(f"EmbedSeg needs a backbone with out_channels {output_channels(dims)} for {dims}D images "
                              f"(offset and sigma per axis, one seed map); {type(self.backbone).__name__} gives "
                              f"{raw.shape[1]}")
        return decode(raw, self.offset_range, self.sigma_init)
