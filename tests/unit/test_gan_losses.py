"""GAN losses and feature matching (im2im_core.losses) against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from im2im_core.errors import ConfigError
from im2im_core.losses import BCEGANLoss, FeatureMatchingLoss, HingeGANLoss, LeastSquaresGANLoss, gan_loss

LOGITS = torch.tensor([[0.5, -1.0]])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_least_squares():
    loss = LeastSquaresGANLoss()
    assert float(loss(LOGITS, True)) == pytest.approx(((0.5 - 1) ** 2 + (-1 - 1) ** 2) / 2)
    assert float(loss(LOGITS, False)) == pytest.approx((0.5 ** 2 + 1) / 2)
    assert float(loss(LOGITS, True, for_discriminator=False)) == float(loss(LOGITS, True))
    smoothed = LeastSquaresGANLoss(real_label=0.9)
    assert float(smoothed(LOGITS, True)) == pytest.approx(((0.5 - 0.9) ** 2 + (-1 - 0.9) ** 2) / 2)


def test_bce_on_logits():
    loss = BCEGANLoss()
    # -log(sigmoid(x)) = softplus(-x); -log(1 - sigmoid(x)) = softplus(x)
    assert float(loss(LOGITS, True)) == pytest.approx((softplus(-0.5) + softplus(1.0)) / 2)
    assert float(loss(LOGITS, False)) == pytest.approx((softplus(0.5) + softplus(-1.0)) / 2)
    assert torch.isfinite(loss(torch.tensor([200.0, -200.0]), True))  # stable far from 0


def test_hinge():
    loss = HingeGANLoss()
    assert float(loss(LOGITS, True)) == pytest.approx((0.5 + 2.0) / 2)  # relu(1 - x)
    assert float(loss(LOGITS, False)) == pytest.approx((1.5 + 0.0) / 2)  # relu(1 + x)
    assert float(loss(LOGITS, True, for_discriminator=False)) == pytest.approx(0.25)  # -mean(x)
    with pytest.raises(ValueError, match="target_is_real=True"):
        loss(LOGITS, False, for_discriminator=False)


def test_scales_are_averaged_and_gradients_flow():
    small, large = torch.zeros(1, 1, 2, 2, requires_grad=True), torch.ones(1, 1, 4, 4, requires_grad=True)
    value = LeastSquaresGANLoss()([small, large], True)
    assert float(value.detach()) == pytest.approx((1.0 + 0.0) / 2)
    value.backward()
    assert small.grad is not None and large.grad is not None


def test_names():
    assert isinstance(gan_loss("least_squares"), LeastSquaresGANLoss) and isinstance(gan_loss("lsgan"), LeastSquaresGANLoss)
    assert isinstance(gan_loss("bce"), BCEGANLoss) and isinstance(gan_loss("vanilla"), BCEGANLoss)
    assert isinstance(gan_loss("hinge"), HingeGANLoss)
    assert isinstance(gan_loss("lsgan", real_label=0.9), LeastSquaresGANLoss)
    with pytest.raises(ConfigError, match="unknown GAN loss 'wgan'"):
        gan_loss("wgan")


def test_feature_matching_pix2pixhd_weights():
    """Per scale: 4 / (number of feature maps) * sum of L1; mean over scales; logits left out; real detached."""
    fake = [[torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 2, 2), torch.full((1, 1, 1, 1), 9.0)],
            [torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1)]]
    real = [[torch.ones(1, 2, 4, 4), torch.full((1, 1, 2, 2), 3.0), torch.zeros(1, 1, 1, 1)],
            [torch.full((1, 2, 2, 2), 2.0), torch.zeros(1, 1, 1, 1), torch.full((1, 1, 1, 1), 5.0)]]
    real[0][0].requires_grad_(True)
    value = FeatureMatchingLoss()(fake, real)
    scale0 = 4 / 2 * (1.0 + 3.0)
    scale1 = 4 / 2 * (2.0 + 0.0)
    assert float(value) == pytest.approx((scale0 + scale1) / 2)
    assert not value.requires_grad  # nothing from the real features
    with pytest.raises(ValueError, match="scales"):
        FeatureMatchingLoss()(fake, real[:1])
