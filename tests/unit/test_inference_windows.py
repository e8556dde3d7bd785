"""Window grid and blending weights (im2im_core.inference.windows)."""

from __future__ import annotations

import math

import pytest
import torch

from im2im_core.inference.windows import auto_align, auto_window, axis_profiles, axis_starts, axis_total, window_profile


@pytest.mark.parametrize("size, window, overlap, align", [(512, 128, 0.25, 16), (37, 16, 0.25, 16), (1000, 96, 0.5, 8),
                                                          (7, 1, 0.25, 1), (100, 128, 0.25, 16), (301, 64, 0.1, 1)])
def test_starts_cover_the_axis_aligned_with_enough_overlap(size, window, overlap, align):
    starts = axis_starts(size, window, overlap, align)
    assert starts[0] == 0 and starts[-1] + window >= size
    steps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(0 < step <= max(1, window * (1 - overlap)) for step in steps)
    if steps and window * (1 - overlap) >= align:
        assert all(start % align == 0 for start in starts)


def test_starts_examples():
    assert axis_starts(512, 128, 0.25, 16) == [0, 96, 192, 288, 384]
    assert axis_starts(64, 64, 0.25, 16) == [0]
    assert axis_starts(100, 128, 0.25, 16) == [0]  # smaller than the window: one padded window
    assert axis_starts(37, 16, 0.25, 16) == [0, 8, 16, 24]  # a step of 16 would leave no overlap


def test_auto_align():
    assert auto_align([64, 128, 128]) == 16
    assert auto_align([24, 32]) == 8
    assert auto_align([1, 128]) == 16  # a one-plane window (slice by slice) does not count
    assert auto_align([3, 128]) == 1


def test_auto_window_fits_the_budget_and_the_image():
    assert auto_window([64, 512, 512], 2**20) == [64, 128, 128]
    assert auto_window([37, 45, 51], 2**20) == [48, 48, 64]  # the whole image, rounded up to 16
    for shape in ([256, 2048, 2048], [3000, 5000], [5, 700, 900]):
        window = auto_window(shape, 2**20)
        assert math.prod(window) <= 2**20 and all(w % 16 == 0 for w in window)
    with pytest.raises(ValueError):
        auto_window([64, 64, 64], 100)


def test_gaussian_profile_and_trimmed_edges_keep_every_pixel_covered():
    profile = window_profile(32, "gaussian", 0.125)
    assert profile.argmax() in (15, 16) and profile[0] == pytest.approx(math.exp(-(15.5**2) / (2 * 4.0**2)))
    assert torch.equal(window_profile(8, "constant"), torch.ones(8, dtype=torch.float64))
    starts = axis_starts(100, 32, 0.5, 8)
    profiles = axis_profiles(starts, profile, edge_trim=0.25)
    assert profiles[0][0] > 0 and profiles[-1][-1] > 0  # image borders keep their weight
    assert profiles[1][0] == 0 and profiles[0][-1] == 0  # inner edges are trimmed
    assert (axis_total(starts, profiles, starts[-1] + 32) > 0).all()
    with pytest.raises(ValueError):
        axis_profiles(starts, profile, edge_trim=0.5)
