"""Pix2Pix: a conditional GAN for paired image-to-image translation, 2D and 3D (Isola et al. 2017).

Optionally pix2pixHD's multi-scale discriminators and feature matching (Wang et al. 2018), and
a generator that starts from a trained FCN (the combination that worked best for 3D label-free
prediction in MMV_Im2Im, Sonneck et al. 2024).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from im2im_core.errors import ConfigError
from im2im_core.frameworks.fcn import FCN
from im2im_core.frameworks.image_pool import ImagePool
from im2im_core.inference.sliding_window import predict_image
from im2im_core.losses import FeatureMatchingLoss
from im2im_core.losses import gan_loss as make_gan_loss
from im2im_core.metrics import pearson
from im2im_core.networks.patchgan import PatchGAN, network_channels

GANMode = Literal["least_squares", "lsgan", "bce", "vanilla", "hinge"]


def gan_adam(params: Iterable) -> torch.optim.Optimizer:
    """Adam with pix2pix's settings: learning rate 2e-4, betas (0.5, 0.999)."""
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


class Pix2Pix(pl.LightningModule):
    """Train a generator with a PatchGAN discriminator and a weighted L1 loss.

    Each training batch updates the discriminator once, on real pairs (input, target) and
    generated pairs (input, generator(input)), then the generator once, on
    ``GAN loss + lambda_l1 * L1 [+ feature_matching * FM]``.

    Steps: Lightning counts optimizer steps, so ``trainer.global_step`` (and ``max_steps``,
    ``ModelCheckpoint(every_n_train_steps)``, ``val_check_interval`` in steps) advances by 2
    per batch, one discriminator and one generator step: ``max_steps: 2000`` trains 1000
    batches. The discriminator is never skipped, so the count is always even at batch end.

    Parameters
    ----------
    generator : torch.nn.Module
        Any backbone (``fnet``, ``UNet``, ``smp``, ``resnet_generator``...): input image to
        output image.
    discriminator : torch.nn.Module, optional
        Called on the input and output concatenated along channels; returns a logit map or a
        list of them (one per scale). Default: ``PatchGAN`` with 3 layers, batch norm, one scale,
        its channels and dimensions read from the generator. Feature matching needs a
        ``features(x)`` method (``PatchGAN`` has it).
    gan_loss : {"least_squares", "lsgan", "bce", "vanilla", "hinge"}
        Adversarial loss (``im2im_core.losses``): least squares (LSGAN, pix2pixHD), binary
        cross-entropy (the original pix2pix), or hinge.
    lambda_l1 : float
        Weight of the L1 loss between output and target (100 in pix2pix).
    feature_matching : float
        Weight of pix2pixHD's discriminator feature matching loss (10 there); 0 turns it off.
    pool_size : int
        Generated (input, output) pairs kept for discriminator updates (``ImagePool``); 0, as
        in pix2pix, shows the discriminator the current batch only.
    generator_optimizer, discriminator_optimizer : callable
        ``optimizer(params)``; default Adam, learning rate 2e-4, betas (0.5, 0.999).
    generator_lr_scheduler, discriminator_lr_scheduler : callable, optional
        ``scheduler(optimizer)``, stepped once per epoch (``ReduceLROnPlateau`` with ``val_loss``,
        in epochs after a validation).
    generator_checkpoint : str, optional
        A checkpoint of an im2im FCN (its ``backbone.*`` weights) or Pix2Pix (``generator.*``)
        run whose network is the generator's architecture: the generator starts from it. Loaded
        when training, validation or testing starts, unless a run is resumed with ``ckpt_path``.
    roi_size, overlap, sw_batch_size
        Sliding-window inference in validation and prediction, as in FCN.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module | None = None,
        gan_loss: GANMode = "least_squares",
        lambda_l1: float = 100.0,
        feature_matching: float = 0.0,
        pool_size: int = 0,
        generator_optimizer: OptimizerCallable = gan_adam,
        discriminator_optimizer: OptimizerCallable = gan_adam,
        generator_lr_scheduler: LRSchedulerCallable | None = None,
        discriminator_lr_scheduler: LRSchedulerCallable | None = None,
        generator_checkpoint: str | None = None,
        roi_size: list[int] | None = None,
        overlap: float = 0.25,
        sw_batch_size: int = 4,
    ) -> None:
        super().__init__()
        # networks and the optimizer and scheduler callables are in the run's config.yaml, not in
        # the checkpoint's hyperparameters (callables do not unpickle with torch.load(weights_only=True))
        self.save_hyperparameters(ignore=["generator", "discriminator", "generator_optimizer", "discriminator_optimizer",
                                          "generator_lr_scheduler", "discriminator_lr_scheduler"])
        self.automatic_optimization = False
        self.generator = generator  # registered first: the core reads the dimensions from the first convolution
        if discriminator is None:
            spatial_dims, in_channels, out_channels = network_channels(generator)
            discriminator = PatchGAN(spatial_dims, in_channels + out_channels)
        self.discriminator = discriminator
        if feature_matching > 0 and not hasattr(discriminator, "features"):
            raise ConfigError(f"Pix2Pix: feature_matching needs a discriminator with a features() method "
                              f"(PatchGAN); {type(discriminator).__name__} has none")
        self.gan_loss = make_gan_loss(gan_loss)
        self.feature_loss = FeatureMatchingLoss()
        self.pool = ImagePool(pool_size)
        self.lambda_l1, self.feature_matching = lambda_l1, feature_matching
        self.optimizer_factories = (generator_optimizer, discriminator_optimizer)
        self.scheduler_factories = (generator_lr_scheduler, discriminator_lr_scheduler)
        self.generator_checkpoint = generator_checkpoint
        self._generator_loaded = generator_checkpoint is None
        self.roi_size = roi_size
        self.overlap, self.sw_batch_size = overlap, sw_batch_size

    # ----------------------------------------------------------------- Framework protocol
    @property
    def spatial_dims(self) -> int:
        """Spatial dimensions of the windows: 2 or 3."""
        return len(self._window())

    def predict_patch(self, patch: torch.Tensor) -> torch.Tensor:
        """The generator's output for a batch of input patches."""
        return self.generator(patch)

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        """Intensities, float32."""
        return output.float()

    # The core's whole-image prediction through Lightning's predict loop, shared with FCN.
    predict_step = FCN.predict_step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator(x)

    # ----------------------------------------------------------------- generator start
    def setup(self, stage: str) -> None:
        """Load ``generator_checkpoint`` once, unless the trainer restores a checkpoint anyway."""
        if self._generator_loaded:
            return
        trainer = self._trainer
        if trainer is not None and trainer.ckpt_path is not None:
            return  # the resumed or evaluated checkpoint holds the generator's weights
        from im2im_pix2pix.generator_checkpoint import load_generator_weights

        load_generator_weights(self.generator, self.generator_checkpoint)
        self._generator_loaded = True

    # ----------------------------------------------------------------- training
    def _discriminate(self, pair: torch.Tensor, features: bool) -> Any:
        return self.discriminator.features(pair) if features else self.discriminator(pair)

    @staticmethod
    def _logits(outputs: Any, features: bool) -> Any:
        return [blocks[-1] for blocks in outputs] if features else outputs

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        image, target = batch["IM"], batch["GT"]
        optimizer_g, optimizer_d = self.optimizers()
        use_features = self.feature_matching > 0
        fake = self.generator(image)
        # the discriminator sees (input, output) pairs; the pool keeps pairs, so that a stored
        # output comes back with its own input (as in pix2pix)
        fake_pair = torch.cat((image, fake), dim=1)

        # discriminator: real pairs towards "real", generated pairs (maybe from the pool) towards "fake"
        self.toggle_optimizer(optimizer_d)
        real_out = self._discriminate(torch.cat((image, target), dim=1), use_features)
        fake_out = self._discriminate(self.pool.query(fake_pair), False)  # detached; this batch without a pool
        loss_d = 0.5 * (self.gan_loss(self._logits(real_out, use_features), True)
                        + self.gan_loss(fake_out, False))
        optimizer_d.zero_grad()
        self.manual_backward(loss_d)
        optimizer_d.step()
        self.untoggle_optimizer(optimizer_d)

        # generator: fool the (updated) discriminator and stay close to the target
        self.toggle_optimizer(optimizer_g)
        fake_out = self._discriminate(fake_pair, use_features)
        loss_gan = self.gan_loss(self._logits(fake_out, use_features), True, for_discriminator=False)
        loss_l1 = F.l1_loss(fake, target)
        loss_g = loss_gan + self.lambda_l1 * loss_l1
        if use_features:
            loss_fm = self.feature_loss(fake_out, real_out)
            loss_g = loss_g + self.feature_matching * loss_fm
            self.log("train_feature_matching", loss_fm, batch_size=image.shape[0])
        optimizer_g.zero_grad()
        self.manual_backward(loss_g)
        optimizer_g.step()
        self.untoggle_optimizer(optimizer_g)

        size = image.shape[0]
        self.log("train_loss", loss_g, prog_bar=True, batch_size=size)
        self.log_dict({"train_loss_d": loss_d, "train_gan_g": loss_gan, "train_l1": loss_l1}, batch_size=size)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Step each LR scheduler until it has stepped once per finished epoch.

        Checked before every batch and only up to ``current_epoch``, so it is idempotent: a run
        resumed from a checkpoint saved at any point (mid-epoch, after the last batch of an
        epoch, at epoch end) steps each scheduler exactly once per epoch. (Lightning does not
        call ``on_train_epoch_start`` for the epoch after a checkpoint taken at the last batch.)
        """
        epoch = self.current_epoch
        for config in self.trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                metric = self.trainer.callback_metrics.get("val_loss")
                if scheduler.last_epoch < epoch and metric is not None:
                    scheduler.step(metric)
                continue
            with warnings.catch_warnings():  # after a resume torch no longer knows the optimizer has stepped
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
                while scheduler.last_epoch < epoch:
                    scheduler.step()

    def configure_optimizers(self) -> list[dict[str, Any]]:
        configs = []
        for factory, scheduler, module in zip(self.optimizer_factories, self.scheduler_factories,
                                              (self.generator, self.discriminator), strict=True):
            optimizer = factory(module.parameters())
            configs.append({"optimizer": optimizer} if scheduler is None
                           else {"optimizer": optimizer, "lr_scheduler": scheduler(optimizer)})
        return configs

    # ----------------------------------------------------------------- validation
    def _window(self) -> list[int]:
        if self.roi_size is not None:
            return list(self.roi_size)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None or not hasattr(datamodule, "patch_size"):
            raise ConfigError("Pix2Pix.roi_size is not set and no data module gives a patch_size")
        return list(datamodule.patch_size)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        output = predict_image(self, batch["IM"], self._window(), self.overlap, self.sw_batch_size)
        target = batch["GT"]
        self.log("val_loss", F.l1_loss(output, target), batch_size=1, sync_dist=True)
        self.log("val_pearson", pearson(output.cpu(), target.cpu()), prog_bar=True, batch_size=1, sync_dist=True)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)


__all__ = ["Pix2Pix", "gan_adam"]
