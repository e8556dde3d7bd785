"""Losses of the built-in and plugin frameworks: adversarial (GAN) losses and feature matching."""

from im2im_core.losses.feature_matching import FeatureMatchingLoss
from im2im_core.losses.gan import GAN_LOSSES, BCEGANLoss, GANLoss, HingeGANLoss, LeastSquaresGANLoss, gan_loss

__all__ = ["GAN_LOSSES", "BCEGANLoss", "FeatureMatchingLoss", "GANLoss", "HingeGANLoss", "LeastSquaresGANLoss", "gan_loss"]
