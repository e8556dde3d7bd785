"""CycleGAN's ResNet generator (im2im_core.networks.resnet_generator), 2D and 3D."""

from __future__ import annotations

import pytest
import torch

from im2im_core.errors import ConfigError
from im2im_core.networks import ResNetGenerator


@pytest.mark.parametrize("shape", [(2, 1, 32, 48), (1, 2, 8, 16, 12)], ids=["2d", "3d"])
def test_shapes_range_and_gradient(shape):
    torch.manual_seed(0)
    net = ResNetGenerator(spatial_dims=len(shape) - 2, in_channels=shape[1], out_channels=3, channels=4, n_blocks=2)
    x = torch.randn(shape)
    y = net(x)
    assert y.shape == (shape[0], 3, *shape[2:])
    assert y.abs().max() <= 1  # tanh
    assert not torch.allclose(y, net(torch.randn(shape)))
    y.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_cyclegan_layout():
    net = ResNetGenerator(spatial_dims=2, in_channels=3, out_channels=3, channels=8, n_blocks=9)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    transposed = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == 1 + 2 + 9 * 2 + 1 and len(transposed) == 2
    assert max(m.out_channels for m in convs) == 32  # channels * 2 ** n_downsampling
    assert convs[0].kernel_size == (7, 7) and convs[-1].kernel_size == (7, 7)
    assert sum(isinstance(m, torch.nn.ReflectionPad2d) for m in net.modules()) == 2 + 9 * 2
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in net.modules()) == 1 + 2 + 9 * 2 + 2


@pytest.mark.parametrize(("activation", "low", "high"), [("sigmoid", 0.0, 1.0), (None, None, None)])
def test_final_activation(activation, low, high):
    torch.manual_seed(0)
    net = ResNetGenerator(spatial_dims=2, in_channels=1, out_channels=1, channels=4, n_blocks=1,
                          final_activation=activation)
    with torch.no_grad():
        y = net(torch.randn(1, 1, 16, 16) * 10)
    if low is not None:
        assert low <= float(y.min()) and float(y.max()) <= high
    else:
        assert not isinstance(net.model[-1], (torch.nn.Tanh, torch.nn.Sigmoid))


def test_errors():
    net = ResNetGenerator(spatial_dims=2, in_channels=1, out_channels=1, channels=4, n_blocks=1)
    with pytest.raises(ValueError, match="multiple of 4"):
        net(torch.randn(1, 1, 18, 16))
    with pytest.raises(ConfigError, match="final_activation"):
        ResNetGenerator(spatial_dims=2, in_channels=1, out_channels=1, final_activation="relu")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="spatial_dims"):
        ResNetGenerator(spatial_dims=1, in_channels=1, out_channels=1)
