"""``AdversarialFramework``: the plumbing of GANs, generators and discriminators trained in turn.

Two optimizers, one for the generators and one for the discriminators, each with an optional
LR scheduler from the config; manual optimization (``Im2ImFramework.manual_step``), so that
``trainer.global_step`` counts two optimizer steps per training batch; the adversarial loss
chosen by name. Pix2Pix and CycleGAN/UTOM are built on it.
"""

from __future__ import annotations

from typing import Any, Literal

from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from im2im_core.frameworks.base import Im2ImFramework, OptimizerGroup
from im2im_core.frameworks.optimizers import gan_adam
from im2im_core.losses import gan_loss as make_gan_loss

GANMode = Literal["least_squares", "lsgan", "bce", "vanilla", "hinge"]


class AdversarialFramework(Im2ImFramework):
    """Base class of GAN frameworks: the generator and discriminator optimizers and the GAN loss.

    Parameters
    ----------
    gan_loss : {"least_squares", "lsgan", "bce", "vanilla", "hinge"}
        Adversarial loss (``im2im_core.losses``): least squares (LSGAN), binary cross-entropy
        (the original GAN), or hinge.
    generator_optimizer, discriminator_optimizer : callable
        ``optimizer(params)`` of the generators' and of the discriminators' parameters;
        default Adam, learning rate 2e-4, betas (0.5, 0.999).
    generator_lr_scheduler, discriminator_lr_scheduler : callable, optional
        ``scheduler(optimizer)``, stepped once per ``lr_interval``.
    **kwargs
        Of :class:`~im2im_core.frameworks.Im2ImFramework`.
    """

    def __init__(self, gan_loss: GANMode = "least_squares", generator_optimizer: OptimizerCallable = gan_adam,
                 discriminator_optimizer: OptimizerCallable = gan_adam,
                 generator_lr_scheduler: LRSchedulerCallable | None = None,
                 discriminator_lr_scheduler: LRSchedulerCallable | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.automatic_optimization = False
        self.gan_loss = make_gan_loss(gan_loss)
        self.optimizer_factories = (generator_optimizer, discriminator_optimizer)
        self.scheduler_factories = (generator_lr_scheduler, discriminator_lr_scheduler)

    def generator_networks(self) -> list[nn.Module]:
        """The networks the generator optimizer trains."""
        raise NotImplementedError(f"{type(self).__name__} must implement generator_networks()")

    def discriminator_networks(self) -> list[nn.Module]:
        """The networks the discriminator optimizer trains."""
        raise NotImplementedError(f"{type(self).__name__} must implement discriminator_networks()")

    def optimizer_groups(self) -> list[OptimizerGroup]:
        """The generators' optimizer, then the discriminators'."""
        groups = (self.generator_networks(), self.discriminator_networks())
        return [OptimizerGroup([p for network in networks for p in network.parameters()], factory, scheduler)
                for networks, factory, scheduler in zip(groups, self.optimizer_factories, self.scheduler_factories,
                                                        strict=True)]
