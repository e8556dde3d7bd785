"""The branched ERFNet backbone, 2D and 3D."""

from __future__ import annotations

import pytest
import torch

from im2im_embedseg.erfnet import BranchedERFNet


@pytest.mark.parametrize(("dims", "shape", "strides"), [
    (2, (2, 1, 32, 48), [2, 2, 2]),
    (3, (1, 2, 4, 16, 24), [[1, 2, 2], [2, 2, 2], [2, 2, 2]]),
])
def test_output_shape_and_branches(dims: int, shape: tuple[int, ...], strides: list) -> None:
    net = BranchedERFNet(dims, shape[1], channels=(8, 16, 24), strides=strides, zero_first_branch=False).eval()
    assert net.out_channels == 2 * dims + 1 and len(net.decoders) == 2
    x = torch.rand(shape)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (shape[0], 2 * dims + 1, *shape[2:])
    # the seed (last channel) comes from its own decoder: zeroing the other one leaves it unchanged
    with torch.no_grad():
        for p in net.decoders[0].parameters():
            p.zero_()
        again = net(x)
    torch.testing.assert_close(again[:, -1], out[:, -1])
    assert again[:, :-1].abs().max() == 0


def test_first_branch_starts_at_zero() -> None:
    x = torch.rand(1, 1, 16, 16)
    assert BranchedERFNet(2, 1, channels=(8, 16, 24))(x)[:, :4].abs().max() == 0  # offsets 0, sigmas sigma_init
    assert BranchedERFNet(2, 1, channels=(8, 16, 24), zero_first_branch=False)(x)[:, :4].abs().max() > 0


def test_gradients_reach_the_encoder() -> None:
    net = BranchedERFNet(2, 1, channels=(8, 16, 24))
    net(torch.rand(2, 1, 16, 16)).square().mean().backward()
    assert all(p.grad is not None for p in net.encoder.parameters())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"spatial_dims": 4}, "spatial_dims"),
    ({"out_channels": 5, "branches": [2, 2]}, "sum to out_channels"),
    ({"strides": [2, 2]}, "3 entries"),
    ({"strides": [3, 2, 2]}, "1 or 2"),
])
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BranchedERFNet(**kwargs)


def test_input_size_must_divide_by_the_strides() -> None:
    net = BranchedERFNet(3, 1, channels=(8, 16, 24), strides=[[1, 2, 2], [2, 2, 2], [2, 2, 2]])
    with pytest.raises(ValueError, match=r"divisible by \[4, 8, 8\]"):
        net(torch.rand(1, 1, 6, 16, 16))
