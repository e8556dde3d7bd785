"""Adversarial losses on discriminator logits: least squares, binary cross-entropy, hinge.

MONAI's ``PatchAdversarialLoss`` is not used: its BCE applies a sigmoid and then ``BCELoss``
(less stable than BCE on logits, and refused under mixed-precision autocast), its least
squares passes the logits through a LeakyReLU unless told not to, and its hinge passes them
through a tanh, so none is the textbook loss that pix2pix, CycleGAN and pix2pixHD use.

Every loss is called as ``loss(prediction, target_is_real, for_discriminator=True)``:
``prediction`` is a logit map or a list of them (one per discriminator scale, averaged);
``target_is_real`` says whether the discriminator should call it real. The generator's loss
is ``loss(discriminator(fake), True, for_discriminator=False)``; only the hinge loss differs
between the two roles.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from im2im_core.errors import ConfigError

__all__ = ["GAN_LOSSES", "BCEGANLoss", "GANLoss", "HingeGANLoss", "LeastSquaresGANLoss", "gan_loss"]


class GANLoss(nn.Module):
    """Base class: averages :meth:`single` over the scales of a multi-scale discriminator."""

    def forward(self, prediction: torch.Tensor | list[torch.Tensor], target_is_real: bool,
                for_discriminator: bool = True) -> torch.Tensor:
        """Mean loss over ``prediction`` (a logit map, or a list of them).

        Parameters
        ----------
        prediction : torch.Tensor or list of torch.Tensor
            Discriminator logits (no activation).
        target_is_real : bool
            True: the logits should say "real"; False: "fake".
        for_discriminator : bool
            False for the generator's adversarial loss (matters for the hinge loss only).
        """
        maps = prediction if isinstance(prediction, (list, tuple)) else [prediction]
        if not maps:
            raise ValueError("GAN loss of an empty list of discriminator outputs")
        return torch.stack([self.single(m, target_is_real, for_discriminator) for m in maps]).mean()

    def single(self, logits: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        """The loss of one logit map."""
        raise NotImplementedError


class _LabelLoss(GANLoss):
    def __init__(self, real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        self.real_label, self.fake_label = real_label, fake_label

    def target(self, logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        return torch.full_like(logits, self.real_label if target_is_real else self.fake_label)


class LeastSquaresGANLoss(_LabelLoss):
    """LSGAN (Mao et al. 2017): mean squared error of the logits to ``real_label`` or ``fake_label``.

    The default of CycleGAN and pix2pixHD. ``real_label`` below 1 (e.g. 0.9) is one-sided
    label smoothing.
    """

    def single(self, logits: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        """Mean squared error of ``logits`` to the real or the fake label."""
        return F.mse_loss(logits, self.target(logits, target_is_real))


class BCEGANLoss(_LabelLoss):
    """The original ("vanilla") GAN loss of pix2pix: binary cross-entropy on the logits.

    Computed from logits (``binary_cross_entropy_with_logits``), stable and autocast-safe.
    """

    def single(self, logits: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        """Binary cross-entropy of ``logits`` against the real or the fake label."""
        return F.binary_cross_entropy_with_logits(logits, self.target(logits, target_is_real))


class HingeGANLoss(GANLoss):
    """Hinge loss (Lim and Ye 2017; SAGAN, SPADE).

    Discriminator: ``mean(relu(1 - D(real)))`` and ``mean(relu(1 + D(fake)))``; generator:
    ``-mean(D(fake))``, called with ``target_is_real=True, for_discriminator=False``.
    """

    def single(self, logits: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        """The hinge loss of one logit map; ``-mean(logits)`` for the generator."""
        if not for_discriminator:
            if not target_is_real:
                raise ValueError("HingeGANLoss: the generator's loss is for target_is_real=True only")
            return -logits.mean()
        return F.relu(1 - logits).mean() if target_is_real else F.relu(1 + logits).mean()


#: Short names of the GAN losses, with the names other toolboxes use for them.
GAN_LOSSES: dict[str, type[GANLoss]] = {
    "least_squares": LeastSquaresGANLoss,
    "lsgan": LeastSquaresGANLoss,
    "bce": BCEGANLoss,
    "vanilla": BCEGANLoss,
    "hinge": HingeGANLoss,
}


def gan_loss(name: str, **kwargs: Any) -> GANLoss:
    """The GAN loss called ``name``: ``least_squares`` (``lsgan``), ``bce`` (``vanilla``) or ``hinge``."""
    if name not in GAN_LOSSES:
        raise ConfigError(f"unknown GAN loss {name!r}; expected one of {', '.join(GAN_LOSSES)}")
    return GAN_LOSSES[name](**kwargs)
