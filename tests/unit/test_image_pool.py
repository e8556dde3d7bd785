"""The image pool of GAN frameworks (im2im_core.frameworks.image_pool)."""

from __future__ import annotations

import pytest
import torch

from im2im_core.frameworks.image_pool import ImagePool


def batch(value: float, n: int = 2) -> torch.Tensor:
    return torch.full((n, 1, 4, 4), value)


def test_fills_then_returns_new_images_while_filling():
    pool = ImagePool(pool_size=3)
    out = pool.query(batch(1.0).requires_grad_(True))
    assert torch.equal(out, batch(1.0)) and not out.requires_grad
    assert len(pool) == 2
    pool.query(batch(2.0))  # one fills the pool, the other goes through the swap rule
    assert len(pool) == 3


def test_swap_probability_one_returns_stored_images_and_keeps_the_new_ones():
    pool = ImagePool(pool_size=2, swap_probability=1.0)
    pool.query(torch.stack([torch.full((1, 4, 4), 1.0), torch.full((1, 4, 4), 2.0)]))
    out = pool.query(torch.stack([torch.full((1, 4, 4), 7.0), torch.full((1, 4, 4), 8.0)]))
    assert float(out[0].mean()) in (1.0, 2.0)  # a stored image, replaced by the 7
    assert float(out[1].mean()) != 8.0
    assert 8.0 in [float(image.mean()) for image in pool.images] and len(pool) == 2


def test_swap_probability_zero_and_size_zero_pass_through():
    pool = ImagePool(pool_size=1, swap_probability=0.0)
    pool.query(batch(1.0, n=1))
    assert torch.equal(pool.query(batch(5.0)), batch(5.0))
    assert torch.equal(ImagePool(pool_size=0).query(batch(3.0)), batch(3.0))


def test_half_of_the_queries_swap_with_the_seed():
    torch.manual_seed(0)
    pool = ImagePool(pool_size=10)
    pool.query(torch.zeros(10, 1, 2, 2))
    new = torch.arange(1, 1001, dtype=torch.float32).reshape(-1, 1, 1, 1).expand(-1, 1, 2, 2)
    out = pool.query(new)
    swapped = float((out != new).any(dim=(1, 2, 3)).float().mean())
    assert 0.45 < swapped < 0.55


def test_images_are_saved_in_the_state_dict():
    pool = ImagePool(pool_size=4)
    pool.query(batch(3.0, n=3))
    state = pool.state_dict()
    restored = ImagePool(pool_size=4)
    restored.load_state_dict(state)
    assert len(restored) == 3 and all(torch.equal(image, torch.full((1, 4, 4), 3.0)) for image in restored.images)


def test_bad_arguments():
    with pytest.raises(ValueError, match="pool_size"):
        ImagePool(pool_size=-1)
    with pytest.raises(ValueError, match="swap_probability"):
        ImagePool(swap_probability=2)
