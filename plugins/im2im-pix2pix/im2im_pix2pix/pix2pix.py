"""Pix2Pix: a conditional GAN for paired image-to-image translation, 2D and 3D (Isola et al. 2017).

Optionally pix2pixHD's multi-scale discriminators and feature matching (Wang et al. 2018), and
a generator that starts from a trained FCN (the combination that worked best for 3D label-free
prediction in MMV_Im2Im, Sonneck et al. 2024).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from im2im_core import keys
from im2im_core.errors import ConfigError
from im2im_core.frameworks import AdversarialFramework, gan_adam
from im2im_core.frameworks.image_pool import ImagePool
from im2im_core.inference.postprocess import Postprocess
from im2im_core.losses import FeatureMatchingLoss
from im2im_core.networks.patchgan import PatchGAN, network_channels


class Pix2Pix(AdversarialFramework):
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
    lambda_l1 : float
        Weight of the L1 loss between output and target (100 in pix2pix).
    feature_matching : float
        Weight of pix2pixHD's discriminator feature matching loss (10 there); 0 turns it off.
    pool_size : int
        Generated (input, output) pairs kept for discriminator updates (``ImagePool``); 0, as
        in pix2pix, shows the discriminator the current batch only.
    generator_checkpoint : str, optional
        A checkpoint of an im2im FCN (its ``backbone.*`` weights) or Pix2Pix (``generator.*``)
        run whose network is the generator's architecture: the generator starts from it. Loaded
        when training, validation or testing starts, unless a run is resumed with ``ckpt_path``.
    **kwargs
        Of :class:`~im2im_core.frameworks.AdversarialFramework`: ``gan_loss`` (least squares as
        in pix2pixHD; ``bce`` is the original pix2pix's), the two optimizers and LR schedulers
        (``ReduceLROnPlateau`` steps on ``val_loss`` after a validation); and of
        :class:`~im2im_core.frameworks.Im2ImFramework`: ``spatial_dims``, ``roi_size``,
        ``overlap``, ``sw_batch_size``, ``lr_interval``. The default discriminator needs
        ``spatial_dims`` (``im2im fit`` fills it from ``data.dims``) or ``roi_size``.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module | None = None,
        lambda_l1: float = 100.0,
        feature_matching: float = 0.0,
        pool_size: int = 0,
        generator_checkpoint: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.generator = generator
        if discriminator is None:  # conditional: judges the input and the output stacked
            _, in_channels, out_channels = network_channels(generator)
            discriminator = PatchGAN(self.spatial_dims, in_channels + out_channels)
        self.discriminator = discriminator
        if feature_matching > 0 and not hasattr(discriminator, "features"):
            raise ConfigError(f"Pix2Pix: feature_matching needs a discriminator with a features() method "
                              f"(PatchGAN); {type(discriminator).__name__} has none")
        self.feature_loss = FeatureMatchingLoss()
        self.pool = ImagePool(pool_size)
        self.lambda_l1, self.feature_matching = lambda_l1, feature_matching
        self.generator_checkpoint = generator_checkpoint
        self._generator_loaded = generator_checkpoint is None

    @classmethod
    def network_arguments(cls, spatial_dims: int, in_channels: int | None,
                          target_channels: int | None) -> dict[str, dict[str, int | None]]:
        """The generator maps the input's channels to the target's; the discriminator sees both stacked."""
        stacked = in_channels + target_channels if in_channels is not None and target_channels is not None else None
        return {"generator": {"spatial_dims": spatial_dims, "in_channels": in_channels, "out_channels": target_channels},
                "discriminator": {"spatial_dims": spatial_dims, "in_channels": stacked}}

    # ----------------------------------------------------------------- the contract
    def window_network(self) -> nn.Module:
        """The generator."""
        return self.generator

    def pixel_postprocess(self, out_channels: int) -> Postprocess:
        """The generator's output is the final image."""
        return Postprocess()

    @classmethod
    def citations(cls) -> list[dict[str, str]]:
        """Pix2Pix (Isola et al. 2017)."""
        return [{"text": "Isola, Zhu, Zhou, Efros. Image-to-Image Translation with Conditional Adversarial Networks. "
                         "CVPR 2017", "doi": "10.1109/CVPR.2017.632"}]

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
        """One discriminator step, then one generator step."""
        image, target = batch[keys.IMAGE], batch[keys.TARGET]
        optimizer_g, optimizer_d = self.optimizers()
        use_features = self.feature_matching > 0
        fake = self.generator(image)
        # the discriminator sees (input, output) pairs; the pool keeps pairs, so that a stored
        # output comes back with its own input (as in pix2pix)
        fake_pair = torch.cat((image, fake), dim=1)
        real_out: list[Any] = []

        def discriminator_loss() -> torch.Tensor:  # real pairs towards "real", generated (maybe pooled) towards "fake"
            real_out.append(self._discriminate(torch.cat((image, target), dim=1), use_features))
            fake_out = self._discriminate(self.pool.query(fake_pair), False)  # detached; this batch without a pool
            return 0.5 * (self.gan_loss(self._logits(real_out[0], use_features), True) + self.gan_loss(fake_out, False))

        parts: dict[str, torch.Tensor] = {}

        def generator_loss() -> torch.Tensor:  # fool the (updated) discriminator and stay close to the target
            fake_out = self._discriminate(fake_pair, use_features)
            parts["gan_g"] = self.gan_loss(self._logits(fake_out, use_features), True, for_discriminator=False)
            parts["l1"] = F.l1_loss(fake, target)
            loss = parts["gan_g"] + self.lambda_l1 * parts["l1"]
            if use_features:
                parts["feature_matching"] = self.feature_loss(fake_out, real_out[0])
                loss = loss + self.feature_matching * parts["feature_matching"]
            return loss

        loss_d = self.manual_step(optimizer_d, discriminator_loss)
        loss_g = self.manual_step(optimizer_g, generator_loss)
        size = image.shape[0]
        self.log("train_loss", loss_g, prog_bar=True, batch_size=size)
        self.log_dict({"train_loss_d": loss_d, **{f"train_{name}": value for name, value in parts.items()}}, batch_size=size)

    def generator_networks(self) -> list[nn.Module]:
        """The generator."""
        return [self.generator]

    def discriminator_networks(self) -> list[nn.Module]:
        """The discriminator."""
        return [self.discriminator]


__all__ = ["Pix2Pix", "gan_adam"]
