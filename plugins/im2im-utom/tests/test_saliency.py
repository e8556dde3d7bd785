"""UTOM's saliency constraint: soft masks and loss against hand-computed values, rho, Otsu."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from im2im_utom.saliency import otsu_threshold, rho, saliency_loss, soft_mask


def row(*values: float) -> torch.Tensor:
    """A (1, 1, 1, N) batch: one one-channel image one row high."""
    return torch.tensor(values, dtype=torch.float64).reshape(1, 1, 1, -1)


# sigmoid values used below, to 7 decimals: s(-3) 0.0474259, s(-1) 0.2689414, s(-0.5) 0.3775407,
# s(2) 0.8807971, s(3) 0.9525741, s(4) 0.9820138
S = {-3: 0.0474259, -1: 0.2689414, -0.5: 0.3775407, 2: 0.8807971, 3: 0.9525741, 4: 0.9820138}


def test_soft_mask_bright_and_dark_by_hand() -> None:
    """K = 10, t = 0.5: bright content sigmoid(10 (x - 0.5)), dark content sigmoid(10 (0.5 - x))."""
    image = row(0.2, 0.9, 0.45, 0.7)
    bright = soft_mask(image, 0.5, 10.0, "bright").ravel().tolist()
    dark = soft_mask(image, 0.5, 10.0, "dark").ravel().tolist()
    assert bright == pytest.approx([S[-3], S[4], S[-0.5], S[2]], abs=1e-7)
    assert dark == pytest.approx([S[3], 1 - S[4], 1 - S[-0.5], 1 - S[2]], abs=1e-7)
    # content is 1 and background 0 far from the threshold, whatever the polarity
    assert soft_mask(row(-1.0, 1.0), 0.0, 100.0, "bright").ravel().tolist() == pytest.approx([0, 1], abs=1e-12)
    assert soft_mask(row(-1.0, 1.0), 0.0, 100.0, "dark").ravel().tolist() == pytest.approx([1, 0], abs=1e-12)


def test_soft_mask_of_rgb_uses_the_grey_value() -> None:
    rgb = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64).reshape(1, 3, 1, 1)  # grey 0.5
    assert float(soft_mask(rgb, 0.4, 10.0, "bright")) == pytest.approx(1 / (1 + math.exp(-1)), abs=1e-12)
    assert soft_mask(torch.zeros(2, 3, 4, 5, 6), 0.0, 100.0, "dark").shape == (2, 1, 4, 5, 6)  # 3D: one mask channel
    with pytest.raises(ValueError, match="polarity"):
        soft_mask(rgb, 0.0, 1.0, "light")  # type: ignore[arg-type]


def test_saliency_loss_by_hand_a_bright_b_dark() -> None:
    """K = 10; A: t 0.5, bright; B: t 0.3, dark (e.g. fluorescence to brightfield).

    T_A(a) = [s(-3), s(4)]; T_B(G_AB(a)) = s(10 (0.3 - [0.4, 0.1])) = [s(-1), s(2)];
    forward = (|0.0474259 - 0.2689414| + |0.9820138 - 0.8807971|) / 2 = (0.2215155 + 0.1012167) / 2 = 0.1613661.
    T_B(b) = s(10 (0.3 - [0.0, 0.6])) = [s(3), s(-3)]; T_A(G_BA(b)) = s(10 ([0.7, 0.45] - 0.5)) = [s(2), s(-0.5)];
    backward = (|0.9525741 - 0.8807971| + |0.0474259 - 0.3775407|) / 2 = (0.0717770 + 0.3301148) / 2 = 0.2009459.
    """
    real_a, fake_b, real_b, fake_a = row(0.2, 0.9), row(0.4, 0.1), row(0.0, 0.6), row(0.7, 0.45)
    loss = saliency_loss(real_a, fake_b, real_b, fake_a, (0.5, 0.3), ("bright", "dark"), 10.0)
    assert float(loss) == pytest.approx(0.1613661 + 0.2009459, abs=2e-7)


def test_saliency_loss_by_hand_a_dark_b_bright() -> None:
    """The same images with the polarities swapped (e.g. H&E to a fluorescence-like mask).

    T_A(a) = s(10 (0.5 - [0.2, 0.9])) = [s(3), s(-4)]; T_B(G_AB(a)) = s(10 ([0.4, 0.1] - 0.3)) = [s(1), s(-2)]:
    forward = (|0.9525741 - 0.7310586| + |0.0179862 - 0.1192029|) / 2 = (0.2215155 + 0.1012167) / 2 = 0.1613661.
    T_B(b) = s(10 ([0.0, 0.6] - 0.3)) = [s(-3), s(3)]; T_A(G_BA(b)) = s(10 (0.5 - [0.7, 0.45])) = [s(-2), s(0.5)]:
    backward = (|0.0474259 - 0.1192029| + |0.9525741 - 0.6224593|) / 2 = (0.0717770 + 0.3301148) / 2 = 0.2009459.
    (Swapping both polarities mirrors every mask, x -> 1 - x, so each L1 term is unchanged.)
    """
    real_a, fake_b, real_b, fake_a = row(0.2, 0.9), row(0.4, 0.1), row(0.0, 0.6), row(0.7, 0.45)
    loss = saliency_loss(real_a, fake_b, real_b, fake_a, (0.5, 0.3), ("dark", "bright"), 10.0)
    assert float(loss) == pytest.approx(0.3623120, abs=2e-7)


def test_saliency_loss_same_polarity_by_hand() -> None:
    """A bright, B bright (image to mask): a different value, so polarity is not ignored.

    T_A(a) = [s(-3), s(4)]; T_B(G_AB(a)) = s(10 ([0.4, 0.1] - 0.3)) = [s(1), s(-2)]:
    forward = (|0.0474259 - 0.7310586| + |0.9820138 - 0.1192029|) / 2 = (0.6836327 + 0.8628109) / 2 = 0.7732218.
    T_B(b) = [s(-3), s(3)]; T_A(G_BA(b)) = [s(2), s(-0.5)]:
    backward = (|0.0474259 - 0.8807971| + |0.9525741 - 0.3775407|) / 2 = (0.8333712 + 0.5750334) / 2 = 0.7042023.
    """
    real_a, fake_b, real_b, fake_a = row(0.2, 0.9), row(0.4, 0.1), row(0.0, 0.6), row(0.7, 0.45)
    loss = saliency_loss(real_a, fake_b, real_b, fake_a, (0.5, 0.3), ("bright", "bright"), 10.0)
    assert float(loss) == pytest.approx(0.7732218 + 0.7042023, abs=2e-7)


def test_saliency_loss_is_zero_when_content_stays() -> None:
    """A translation that keeps the content where it is (any intensities) costs nothing."""
    mask = (torch.rand(2, 1, 16, 16) > 0.5).double()
    image = 0.2 + 0.5 * mask  # content 0.7, background 0.2 (domain A, t 0.45)
    translated = 2 * mask - 1  # content 1, background -1 (domain B, t 0)
    loss = saliency_loss(image, translated, translated, image, (0.45, 0.0), ("bright", "bright"), 100.0)
    assert float(loss) < 1e-9


def test_saliency_loss_has_gradients_for_the_generated_images() -> None:
    fake_b = row(0.4, 0.1).requires_grad_()
    fake_a = row(0.7, 0.45).requires_grad_()
    saliency_loss(row(0.2, 0.9), fake_b, row(0.0, 0.6), fake_a, (0.5, 0.3), ("bright", "dark"), 10.0).backward()
    assert fake_b.grad is not None and fake_a.grad is not None
    assert bool(fake_b.grad.abs().gt(0).all()) and bool(fake_a.grad.abs().gt(0).all())


def test_rho_decays_exponentially_with_progress() -> None:
    assert rho(0.0, 10.0, 5.0) == 10.0
    assert rho(1.0, 10.0, 5.0) == pytest.approx(10 * math.exp(-5))
    assert rho(0.5, 10.0, 2.0) == pytest.approx(10 / math.e)
    values = [rho(p / 10, 4.0, 3.0) for p in range(11)]
    ratios = [b / a for a, b in zip(values, values[1:])]
    assert ratios == pytest.approx([math.exp(-0.3)] * 10)  # a constant factor per equal step of progress
    assert rho(0.7, 3.0, 0.0) == 3.0  # decay 0: constant weight


def test_otsu_threshold() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-0.8, 0.05, 5000), rng.normal(0.6, 0.05, 1000)])
    threshold = otsu_threshold(values)
    assert int((values < threshold).sum()) == 5000  # in the gap between the two classes
    assert otsu_threshold(torch.tensor([-1.0, 1.0, 1.0, -1.0])) == 0.0  # masks: the midpoint
    assert otsu_threshold(np.array([0.0, 0.0, 1.0])) == 0.5
    assert otsu_threshold(np.full(10, 0.3)) == pytest.approx(0.3)
