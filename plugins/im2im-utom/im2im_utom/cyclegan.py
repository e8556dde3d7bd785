"""CycleGAN: unpaired image-to-image translation, 2D and 3D (Zhu et al., ICCV 2017).

Two generators (A to B, B to A), two PatchGAN discriminators (one per domain), least-squares
GAN loss, cycle-consistency loss, optional identity loss, image pools, Adam (2e-4, betas 0.5 and
0.999) with a constant-then-linearly-decaying learning rate. The networks, losses and pool are
the core's (``im2im_core.networks``, ``im2im_core.losses``, ``ImagePool``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable
from torch import nn

from im2im_core import keys
from im2im_core.errors import ConfigError
from im2im_core.frameworks import AdversarialFramework, gan_adam
from im2im_core.frameworks.base import LRInterval
from im2im_core.frameworks.image_pool import ImagePool
from im2im_core.inference.postprocess import Postprocess
from im2im_core.metrics import dice, pearson
from im2im_core.networks import PatchGAN, ResNetGenerator
from im2im_core.networks.patchgan import network_channels
from im2im_utom.schedules import ConstantThenLinearDecay, run_length

__all__ = ["CycleGAN", "gan_adam"]

Direction = Literal["AtoB", "BtoA"]

#: Optimizer steps per training batch: the generators' (both in one optimizer), then the discriminators'.
STEPS_PER_BATCH = 2


def _channels(name: str, network: nn.Module) -> tuple[int, int, int]:
    try:
        return network_channels(network)
    except ConfigError as exc:
        raise ConfigError(f"CycleGAN.{name}: {exc}") from None


class CycleGAN(AdversarialFramework):
    """Train two generators and two discriminators on unpaired images of domains A and B.

    Each training batch (``IM``: domain-A patches, ``GT``: domain-B patches, unrelated) first
    updates both generators on::

        GAN(D_B(G_AB(a))) + GAN(D_A(G_BA(b)))                              adversarial
        + lambda_cycle * (|G_BA(G_AB(a)) - a| + |G_AB(G_BA(b)) - b|)      cycle (L1)
        + lambda_cycle * lambda_identity * (|G_AB(b) - b| + |G_BA(a) - a|)  identity (L1)

    then both discriminators, each on ``0.5 * (GAN(D(real), real) + GAN(D(pooled fake), fake))``.
    ``D_A`` judges images of domain A (real ``a`` against ``G_BA(b)``), ``D_B`` those of B.

    Steps: ``trainer.global_step`` (``max_steps``, ``every_n_train_steps``) counts optimizer
    steps, 2 per batch (generators, discriminators), as in Pix2Pix: ``max_steps: 2000`` trains
    1000 batches.

    Parameters
    ----------
    generator_ab, generator_ba : torch.nn.Module, optional
        Any backbone mapping images of A to B, and B to A. Default: CycleGAN's ResNet generator
        (``resnet_generator``: 64 filters, 9 residual blocks, instance norm, tanh output, so
        images normalized to [-1, 1]) with ``spatial_dims`` and the domains' channels.
    discriminator_a, discriminator_b : torch.nn.Module, optional
        Called on images of domain A (B); return a logit map or a list of them. Default:
        ``PatchGAN`` (70 x 70, 3 layers, instance norm, as in CycleGAN) with the channels of
        the domain, read from the generators.
    spatial_dims, channels_a, channels_b : int, optional
        Dimensions and channels of domains A and B, for the networks built by default. Read
        from the generators when not given (2, 1, 1 when no generator is given either); when
        both are given they must agree.
    lambda_cycle : float
        Weight of each cycle-consistency L1 loss (10 in CycleGAN).
    lambda_identity : float
        Identity loss weight, relative to ``lambda_cycle`` as in CycleGAN (0.5 there for photo
        tasks; 0 turns it off). Needs ``channels_a == channels_b``.
    pool_size : int
        Generated images kept per domain for discriminator updates (50 in CycleGAN; 0: none).
    generator_lr_scheduler, discriminator_lr_scheduler : callable, optional
        ``scheduler(optimizer)``, ticked once per ``lr_interval``. Default
        :class:`~im2im_utom.schedules.ConstantThenLinearDecay` without arguments: the rate is
        constant for the first half of the run and decays linearly in the second half (its
        length from ``trainer.max_steps`` or ``max_epochs``). ``null``: constant rate.
    lr_interval : {"epoch", "step"}
        What a scheduler tick is: an epoch (CycleGAN) or a training batch.
    direction : {"AtoB", "BtoA"}
        Generator used for prediction (``window_network()``): ``AtoB`` translates domain-A images
        (e.g. image to mask), ``BtoA`` domain-B images (e.g. mask to synthetic image). For
        ``BtoA`` give ``data.normalize`` as for domain B under the key ``IM``.
    output_threshold : float, optional
        Prediction outputs above it become 1, others 0 (uint8 masks), e.g. 0 for masks learnt
        in [-1, 1]. Default: intensities (float32).
    **kwargs
        Of :class:`~im2im_core.frameworks.AdversarialFramework`: ``gan_loss`` (least squares,
        as in CycleGAN) and the two optimizers (one for both generators, one for both
        discriminators); of :class:`~im2im_core.frameworks.Im2ImFramework`: ``roi_size``,
        ``overlap``, ``sw_batch_size``.
    """

    def __init__(
        self,
        generator_ab: nn.Module | None = None,
        generator_ba: nn.Module | None = None,
        discriminator_a: nn.Module | None = None,
        discriminator_b: nn.Module | None = None,
        spatial_dims: int | None = None,
        channels_a: int | None = None,
        channels_b: int | None = None,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.0,
        pool_size: int = 50,
        generator_lr_scheduler: LRSchedulerCallable | None = ConstantThenLinearDecay,
        discriminator_lr_scheduler: LRSchedulerCallable | None = ConstantThenLinearDecay,
        lr_interval: LRInterval = "epoch",
        direction: Direction = "AtoB",
        output_threshold: float | None = None,
        **kwargs: Any,
    ) -> None:
        dims, ch_a, ch_b = self._domains(generator_ab, generator_ba, spatial_dims, channels_a, channels_b)
        super().__init__(spatial_dims=dims, generator_lr_scheduler=generator_lr_scheduler,
                         discriminator_lr_scheduler=discriminator_lr_scheduler, lr_interval=lr_interval, **kwargs)
        self.channels_a, self.channels_b = ch_a, ch_b
        if lambda_identity > 0 and ch_a != ch_b:
            raise ConfigError(f"CycleGAN: lambda_identity {lambda_identity} needs domains with equal channels; "
                              f"A has {ch_a}, B has {ch_b} (set lambda_identity 0)")
        if direction not in ("AtoB", "BtoA"):
            raise ConfigError(f"CycleGAN: direction {direction!r} is not 'AtoB' or 'BtoA'")
        self.generator_ab = generator_ab if generator_ab is not None else ResNetGenerator(dims, ch_a, ch_b)
        self.generator_ba = generator_ba if generator_ba is not None else ResNetGenerator(dims, ch_b, ch_a)
        self.discriminator_a = discriminator_a if discriminator_a is not None else PatchGAN(dims, ch_a, norm="INSTANCE")
        self.discriminator_b = discriminator_b if discriminator_b is not None else PatchGAN(dims, ch_b, norm="INSTANCE")
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)
        self.lambda_cycle, self.lambda_identity = lambda_cycle, lambda_identity
        self.direction, self.output_threshold = direction, output_threshold

    @classmethod
    def network_arguments(cls, spatial_dims: int, in_channels: int | None,
                          target_channels: int | None) -> dict[str, dict[str, int | None]]:
        """Domain A is the input, B the target: the framework's own dimensions and channels."""
        return {"": {"spatial_dims": spatial_dims, "channels_a": in_channels, "channels_b": target_channels}}

    @staticmethod
    def _domains(generator_ab: nn.Module | None, generator_ba: nn.Module | None, spatial_dims: int | None,
                 channels_a: int | None, channels_b: int | None) -> tuple[int, int, int]:
        """``(spatial_dims, channels_a, channels_b)`` from the arguments and the given generators."""
        read: dict[str, list[tuple[str, int]]] = {"spatial_dims": [], "channels_a": [], "channels_b": []}
        if generator_ab is not None:
            dims, c_in, c_out = _channels("generator_ab", generator_ab)
            read["spatial_dims"].append(("generator_ab", dims))
            read["channels_a"].append(("generator_ab input", c_in))
            read["channels_b"].append(("generator_ab output", c_out))
        if generator_ba is not None:
            dims, c_in, c_out = _channels("generator_ba", generator_ba)
            read["spatial_dims"].append(("generator_ba", dims))
            read["channels_b"].append(("generator_ba input", c_in))
            read["channels_a"].append(("generator_ba output", c_out))
        given = {"spatial_dims": spatial_dims, "channels_a": channels_a, "channels_b": channels_b}
        defaults = {"spatial_dims": 2, "channels_a": 1, "channels_b": 1}
        values = []
        for name, found in read.items():
            if given[name] is not None:
                found = [(name, given[name]), *found]
            if len({value for _, value in found}) > 1:
                listing = ", ".join(f"{source} {value}" for source, value in found)
                raise ConfigError(f"CycleGAN: {name} disagree: {listing}")
            values.append(found[0][1] if found else defaults[name])
        if values[0] not in (2, 3):
            raise ConfigError(f"CycleGAN: spatial_dims must be 2 or 3, got {values[0]}")
        return values[0], values[1], values[2]

    # ----------------------------------------------------------------- the contract
    @property
    def generator(self) -> nn.Module:
        """The generator of ``direction``: ``generator_ab`` for AtoB, ``generator_ba`` for BtoA."""
        return self.generator_ab if self.direction == "AtoB" else self.generator_ba

    def window_network(self) -> nn.Module:
        """The generator of ``direction``."""
        return self.generator

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        """Intensities (float32), or masks (uint8) when ``output_threshold`` is set."""
        if self.output_threshold is None:
            return output.float()
        return (output > self.output_threshold).to(torch.uint8)

    def pixel_postprocess(self, out_channels: int) -> Postprocess:
        """What :meth:`postprocess` does, as a description export can write."""
        return Postprocess(threshold=self.output_threshold) if self.output_threshold is not None else Postprocess()

    @classmethod
    def citations(cls) -> list[dict[str, str]]:
        """CycleGAN (Zhu et al. 2017)."""
        return [{"text": "Zhu, Park, Isola, Efros. Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial "
                         "Networks. ICCV 2017", "doi": "10.1109/ICCV.2017.244"}]

    # ----------------------------------------------------------------- training
    def generator_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fake_a: torch.Tensor,
                         fake_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """The generators' loss terms, weighted; their sum is minimized. Subclasses add terms."""
        rec_a, rec_b = self.generator_ba(fake_b), self.generator_ab(fake_a)
        losses = {
            "gan_ab": self.gan_loss(self.discriminator_b(fake_b), True, for_discriminator=False),
            "gan_ba": self.gan_loss(self.discriminator_a(fake_a), True, for_discriminator=False),
            "cycle_a": self.lambda_cycle * F.l1_loss(rec_a, real_a),
            "cycle_b": self.lambda_cycle * F.l1_loss(rec_b, real_b),
        }
        if self.lambda_identity > 0:
            weight = self.lambda_cycle * self.lambda_identity
            losses["identity_a"] = weight * F.l1_loss(self.generator_ba(real_a), real_a)
            losses["identity_b"] = weight * F.l1_loss(self.generator_ab(real_b), real_b)
        return losses

    def _discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.gan_loss(discriminator(real), True) + self.gan_loss(discriminator(fake), False))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """One step of both generators (discriminators frozen), then one of both discriminators."""
        real_a, real_b = batch[keys.IMAGE], batch[keys.TARGET]
        optimizer_g, optimizer_d = self.optimizers()
        losses: dict[str, torch.Tensor] = {}
        fakes: list[torch.Tensor] = []

        def generator_loss() -> torch.Tensor:
            fakes.extend((self.generator_ab(real_a), self.generator_ba(real_b)))
            losses.update(self.generator_losses(real_a, real_b, fakes[1], fakes[0]))
            return torch.stack(list(losses.values())).sum()

        parts: dict[str, torch.Tensor] = {}

        def discriminator_loss() -> torch.Tensor:  # real images against (pooled) generated ones
            parts["a"] = self._discriminator_loss(self.discriminator_a, real_a, self.pool_a.query(fakes[1]))
            parts["b"] = self._discriminator_loss(self.discriminator_b, real_b, self.pool_b.query(fakes[0]))
            return parts["a"] + parts["b"]

        loss_g = self.manual_step(optimizer_g, generator_loss)
        self.manual_step(optimizer_d, discriminator_loss)
        size = real_a.shape[0]
        self.log("train_loss", loss_g, prog_bar=True, batch_size=size)
        self.log_dict({"train_loss_d_a": parts["a"], "train_loss_d_b": parts["b"],
                       **{f"train_{name}": value for name, value in losses.items()}}, batch_size=size)

    # ----------------------------------------------------------------- learning rates
    def run_length(self) -> tuple[int, int]:
        """``(batches, epochs)`` of the whole run, from the trainer's limits."""
        return run_length(self.trainer, STEPS_PER_BATCH)

    def generator_networks(self) -> list[nn.Module]:
        """Both generators, trained by one optimizer."""
        return [self.generator_ab, self.generator_ba]

    def discriminator_networks(self) -> list[nn.Module]:
        """Both discriminators, trained by the other."""
        return [self.discriminator_a, self.discriminator_b]

    def prepare_scheduler(self, scheduler: Any) -> Any:
        """Refuse ``ReduceLROnPlateau`` (no validation loss); give ``ConstantThenLinearDecay`` the run's length."""
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            raise ConfigError("CycleGAN: ReduceLROnPlateau needs a validation loss, which unpaired training has not")
        if isinstance(scheduler, ConstantThenLinearDecay) and not scheduler.resolved:
            batches, epochs = self.run_length()
            scheduler.resolve(epochs if self.lr_interval == "epoch" else batches)
        return scheduler

    # ----------------------------------------------------------------- validation (paired data only)
    def validation_pair(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The paired validation data of ``direction``: (A, B) for AtoB, (B, A) for BtoA."""
        image, target = batch[keys.IMAGE], batch[keys.TARGET]
        return (image, target) if self.direction == "AtoB" else (target, image)

    def validation_metrics(self, output: torch.Tensor, final: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """L1, and Pearson's r (intensities) or Dice (masks, with ``output_threshold``)."""
        metrics: dict[str, Any] = {"val_loss": F.l1_loss(output, target)}
        if self.output_threshold is None:
            metrics["val_pearson"] = pearson(final.cpu(), target.cpu())
        else:
            metrics["val_dice"] = dice(final.cpu(), target.cpu() > self.output_threshold)
        return metrics
