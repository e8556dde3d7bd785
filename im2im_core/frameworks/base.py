"""``Im2ImFramework``: the framework contract's defaults and the training plumbing all frameworks share.

A framework subclasses it, gives its networks and losses as constructor arguments, and
implements :meth:`~Im2ImFramework.window_network`, :meth:`~Im2ImFramework.optimizer_groups` and
``training_step``; everything else has a default here (see ``im2im_core.protocols.Framework``
and docs/plugins.md, "Writing a framework"):

- the window defaults and the spatial dimensions, from the constructor or the data module;
- validation through the same sliding-window prediction ``im2im predict`` uses, then
  :meth:`~Im2ImFramework.validation_metrics`;
- optimizers and LR schedulers from the config, one group or several (GANs), and for manual
  optimization the stepping of schedulers once per epoch or training batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from im2im_core import keys
from im2im_core.axes import channels_first
from im2im_core.errors import ConfigError
from im2im_core.inference.optimize import channels_last as channels_last_format
from im2im_core.inference.postprocess import Postprocess
from im2im_core.inference.tta import Symmetry, undo_symmetry
from im2im_core.metrics import pearson
from im2im_core.protocols import WindowDefaults

LRInterval = Literal["epoch", "step"]


@dataclass
class OptimizerGroup:
    """Parameters trained by one optimizer, with its factory and an optional LR scheduler factory."""

    parameters: Iterable[nn.Parameter]
    optimizer: OptimizerCallable
    lr_scheduler: LRSchedulerCallable | None = None


class Im2ImFramework(pl.LightningModule):
    """Base class of im2im frameworks: the contract's defaults and the shared training plumbing.

    Parameters
    ----------
    spatial_dims : int, optional
        2 or 3. ``im2im fit`` fills it from ``data.dims`` when a config leaves it out; without
        it, the length of ``roi_size`` or the attached data module's ``patch_size`` tells.
    roi_size : list of int, optional
        Window of sliding-window prediction, one entry per spatial axis. Validation uses the
        data module's ``patch_size`` when it is not set; prediction an automatic window.
    overlap : float
        Overlap of neighbouring windows, a fraction of the window, in ``[0, 1)``.
    sw_batch_size : int
        Windows computed together.
    lr_interval : {"epoch", "step"}
        LR schedulers step once per epoch or per training batch (``ReduceLROnPlateau`` once per
        validation); Lightning steps them with automatic optimization, the base class with manual.
    channels_last : bool or "auto"
        Train with the networks and batches in the channels-last memory layout
        (``torch.channels_last``, ``channels_last_3d`` in 3D). ``auto``: on when training runs on
        the CPU, where it measured 1.13-1.67x faster training steps for the presets' networks
        (``benchmarks/bench_channels_last.py``); off on GPUs, where it was not measured. The
        results are the same up to float rounding. A network that reshapes activations with
        ``view`` may need ``false``.
    """

    def __init__(self, spatial_dims: int | None = None, roi_size: list[int] | None = None, overlap: float = 0.25,
                 sw_batch_size: int = 4, lr_interval: LRInterval = "epoch",
                 channels_last: bool | Literal["auto"] = "auto") -> None:
        super().__init__()
        name = type(self).__name__
        if spatial_dims is not None and spatial_dims not in (2, 3):
            raise ConfigError(f"{name}: spatial_dims must be 2 or 3, got {spatial_dims}")
        if roi_size is not None and (spatial_dims is not None and len(roi_size) != spatial_dims
                                     or any(int(r) < 1 for r in roi_size)):
            raise ConfigError(f"{name}: roi_size {list(roi_size)} must have {spatial_dims or '2 or 3'} positive entries")
        if not 0 <= overlap < 1:
            raise ConfigError(f"{name}: overlap {overlap} must be in [0, 1)")
        if sw_batch_size < 1:
            raise ConfigError(f"{name}: sw_batch_size {sw_batch_size} must be at least 1")
        if lr_interval not in ("epoch", "step"):
            raise ConfigError(f"{name}: lr_interval {lr_interval!r} is not 'epoch' or 'step'")
        if channels_last not in (True, False, "auto"):
            raise ConfigError(f"{name}: channels_last {channels_last!r} is not true, false or 'auto'")
        self._spatial_dims = spatial_dims
        self.roi_size = None if roi_size is None else [int(r) for r in roi_size]
        self.overlap, self.sw_batch_size, self.lr_interval = float(overlap), int(sw_batch_size), lr_interval
        self.channels_last = channels_last

    @classmethod
    def network_arguments(cls, spatial_dims: int, in_channels: int | None,
                          target_channels: int | None) -> dict[str, dict[str, int | None]]:
        """What the networks need for data of this shape, so that configs need not repeat it.

        Returns ``{argument: {parameter: value}}``: for each network argument of the
        constructor (``"backbone"``), the ``spatial_dims``, ``in_channels``, ``out_channels``
        (or other parameters) it needs; the key ``""`` holds the framework's own. ``im2im fit``
        adds each one that the config leaves unset and the network's class accepts. The
        framework's own ``spatial_dims`` is filled without being listed. None: unknown.
        """
        return {}

    # ----------------------------------------------------------------- the contract
    @property
    def spatial_dims(self) -> int:
        """2 or 3: from the constructor, else ``roi_size``, else the data module's patch size."""
        dims = self._known_spatial_dims()
        if dims is None:
            raise ConfigError(f"{type(self).__name__}: spatial_dims is not known; pass spatial_dims (2 or 3) or roi_size")
        return dims

    def _known_spatial_dims(self) -> int | None:
        if self._spatial_dims is not None:
            return self._spatial_dims
        if self.roi_size is not None:
            return len(self.roi_size)
        patch = self._data_patch_size()
        return None if patch is None else len(patch)

    def window_network(self) -> nn.Module:
        """The module that maps windows to raw outputs; every framework implements it."""
        raise NotImplementedError(f"{type(self).__name__} must implement window_network()")

    def window_defaults(self) -> WindowDefaults:
        """``roi_size`` (None: automatic), ``overlap`` and ``sw_batch_size`` of the constructor."""
        return WindowDefaults(self.roi_size, self.overlap, self.sw_batch_size)

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        """Default: the raw output as float32 intensities."""
        return output.float()

    def whole_image_postprocess(self) -> Postprocess | None:
        """Default: None, every step is pixel-wise (:meth:`postprocess`)."""
        return None

    def tta_inverse(self, output: torch.Tensor, symmetry: Symmetry) -> torch.Tensor:
        """Default: undo the symmetry on every channel as a scalar map."""
        return undo_symmetry(output, symmetry)

    def output_in_input_units(self) -> bool:
        """Default: False, outputs are the network's own units (masks, logits, a target's scale)."""
        return False

    # ----------------------------------------------------------------- optional, for export
    def pixel_postprocess(self, out_channels: int) -> Postprocess | None:
        """:meth:`postprocess` as a :class:`~im2im_core.inference.postprocess.Postprocess`, when it is one.

        ``im2im export`` writes it into bioimage.io packages as the spec's steps (sigmoid,
        softmax, binarize). Default: None, :meth:`postprocess` is not one of those, and packages
        give the raw outputs (their documentation says so). ``Postprocess()``: the raw output is
        the final output.
        """
        return None

    @classmethod
    def citations(cls) -> list[dict[str, str]]:
        """The papers of the method, ``{"text": ..., "doi": ...}``, for exported packages (a DOI rather than a
        ``"url"``: bioimage.io's validation looks each URL up online).

        Default: none; the package cites the original toolbox (MMV_Im2Im) in any case.
        """
        return []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw output of :meth:`window_network` for a batch ``(B, C, *spatial)``."""
        return self.window_network()(x)

    # ----------------------------------------------------------------- validation and test
    def _data_patch_size(self) -> list[int] | None:
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        patch = getattr(datamodule, "patch_size", None)
        return None if patch is None else [int(p) for p in patch]

    def validation_window(self) -> list[int]:
        """The window of validation: ``roi_size``, else the data module's training patch size."""
        window = self.roi_size or self._data_patch_size()
        if window is None:
            raise ConfigError(f"{type(self).__name__}.roi_size is not set and no data module gives a patch_size")
        return window

    def predict_whole(self, images: torch.Tensor) -> torch.Tensor:
        """Raw output of whole images ``(B, C, *spatial)`` through the core's sliding-window prediction.

        With :meth:`window_defaults`; an automatic window (``roi_size`` None) becomes the training
        patch size here, so validation scores do not depend on a memory budget.
        """
        from im2im_core.inference.options import Inference
        from im2im_core.inference.predict_array import predict

        defaults = self.window_defaults()
        settings = Inference(roi_size=defaults.roi_size or self.validation_window(), overlap=defaults.overlap,
                             sw_batch_size=defaults.sw_batch_size, optimize=False)
        dims = channels_first(images.ndim - 1)
        outputs = [torch.from_numpy(predict(self, image, dims=dims, inference=settings, postprocess=None)) for image in images]
        return torch.stack(outputs).to(images.device)

    def finalize(self, output: torch.Tensor) -> torch.Tensor:
        """Final outputs of whole raw outputs ``(B, C, *spatial)``: the whole-image step if any, else pixel-wise."""
        whole = self.whole_image_postprocess()
        if whole is None:
            return self.postprocess(output)
        return torch.stack([torch.as_tensor(whole(item)) for item in output]).to(output.device)

    def validation_pair(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input, target)`` images of a validation batch; default ``IM`` and ``GT``."""
        return batch[keys.IMAGE], batch[keys.TARGET]

    def validation_metrics(self, output: torch.Tensor, final: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """Metrics of one validation batch: raw and final outputs against the target.

        Default, for intensities: ``val_loss`` (L1 of the raw output) and ``val_pearson``.
        Every entry is logged; all but ``val_loss`` show in the progress bar.
        """
        return {"val_loss": F.l1_loss(output, target), "val_pearson": pearson(final.cpu(), target.cpu())}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Predict each whole validation image as ``im2im predict`` would and log :meth:`validation_metrics`."""
        image, target = self.validation_pair(batch)
        output = self.predict_whole(image)
        metrics = self.validation_metrics(output, self.finalize(output), target)
        for name, value in metrics.items():
            self.log(name, value, prog_bar=name != "val_loss", batch_size=image.shape[0], sync_dist=True)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """As :meth:`validation_step`."""
        self.validation_step(batch, batch_idx)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        """Nothing: ``im2im predict``'s writer predicts each batch with the core's engine.

        The ``prediction:`` writer (``im2im_core.inference.writer.PredictionWriter``) calls
        ``im2im_core.inference.predict_batch(framework, batch, settings)`` with its settings,
        so that no setting is ever stored on the framework. Frameworks do not override this.
        """
        return None

    # ----------------------------------------------------------------- optimizers
    def optimizer_groups(self) -> list[OptimizerGroup]:
        """The parameters of each optimizer, with its factories from the config."""
        raise NotImplementedError(f"{type(self).__name__} must implement optimizer_groups()")

    def prepare_scheduler(self, scheduler: Any) -> Any:
        """Check or complete an LR scheduler once built (a hook); default: as it is."""
        return scheduler

    def configure_optimizers(self) -> Any:
        """One optimizer (and scheduler) per :meth:`optimizer_groups` entry.

        ``ReduceLROnPlateau`` follows ``val_loss``.
        """
        configs = []
        for group in self.optimizer_groups():
            optimizer = group.optimizer(group.parameters)
            if group.lr_scheduler is None:
                configs.append({"optimizer": optimizer})
                continue
            scheduler = self.prepare_scheduler(group.lr_scheduler(optimizer))
            plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
            interval = "step" if self.lr_interval == "step" and not plateau else "epoch"
            configs.append({"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval,
                                                                     **({"monitor": "val_loss"} if plateau else {})}})
        return configs[0] if len(configs) == 1 else configs

    @property
    def batches_done(self) -> int:
        """Training batches finished (with manual optimization every optimizer steps once a batch)."""
        steps_per_batch = 1 if self.automatic_optimization else max(1, len(self.trainer.optimizers))
        return self.trainer.global_step // steps_per_batch

    def manual_step(self, optimizer: torch.optim.Optimizer, loss: Callable[[], torch.Tensor]) -> torch.Tensor:
        """One step of ``optimizer`` on ``loss()``, computed with the other optimizers' parameters frozen."""
        self.toggle_optimizer(optimizer)
        value = loss()
        optimizer.zero_grad()
        self.manual_backward(value)
        optimizer.step()
        self.untoggle_optimizer(optimizer)
        return value

    # ----------------------------------------------------------------- memory layout
    def on_fit_start(self) -> None:
        """Put the networks in the channels-last layout when ``channels_last`` asks for it (see the class).

        The batches need no conversion: a convolution whose weight is channels-last computes
        and returns channels-last, whatever the layout of its input.
        """
        wanted = self.channels_last is True or (self.channels_last == "auto" and self.device.type == "cpu")
        if self.channels_last == "auto" and self._known_spatial_dims() is None:
            wanted = False  # the layout depends on 2D or 3D; with True, spatial_dims raises the error that says so
        if wanted:
            self.to(memory_format=channels_last_format(self.spatial_dims))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """With manual optimization, step each LR scheduler up to one step per finished epoch (or batch).

        Driven by the restored epoch and global step and idempotent, so a resumed run steps
        each scheduler exactly as an uninterrupted one; ``ReduceLROnPlateau`` steps on the
        last ``val_loss``.
        """
        if self.automatic_optimization:
            return
        done = self.current_epoch if self.lr_interval == "epoch" else self.batches_done
        for config in self.trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                metric = self.trainer.callback_metrics.get("val_loss")  # one step per validation, i.e. epoch
                if scheduler.last_epoch < self.current_epoch and metric is not None:
                    scheduler.step(metric)
                continue
            with warnings.catch_warnings():  # after a resume torch no longer knows the optimizer has stepped
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
                while scheduler.last_epoch < done:
                    scheduler.step()
