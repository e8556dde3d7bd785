"""The N2V framework through the core: the contract, channels, outputs in the input's units, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from im2im_n2v.n2v import N2V, ChannelsApart
from im2im_n2v.unet import N2VUNet
from torch import nn

from im2im_core import keys
from im2im_core.inference import predict
from im2im_core.protocols import is_framework


def identity_conv(spatial_dims: int, channels: int = 1) -> nn.Module:
    conv = (nn.Conv3d if spatial_dims == 3 else nn.Conv2d)(channels, channels, 1)
    with torch.no_grad():
        conv.weight.zero_()
        for c in range(channels):
            conv.weight[(c, c) + (0,) * spatial_dims] = 1.0
        conv.bias.zero_()
    return conv


def test_n2v_is_a_framework_of_the_contract() -> None:
    model = N2V(N2VUNet(2, 1, 1, features=(4, 8)), spatial_dims=2)
    assert is_framework(model) and model.output_in_input_units()


@pytest.mark.parametrize(("dims", "shape"), [("YX", (40, 50)), ("ZYX", (6, 20, 24)), ("TYX", (3, 30, 30)),
                                             ("CYX", (2, 30, 30))])
def test_prediction_maps_outputs_back_to_the_input_units(dims: str, shape: tuple[int, ...]) -> None:
    """With an identity network, the output of a normalized prediction is the input itself, axes kept."""
    spatial = 3 if "Z" in dims else 2
    channels = shape[0] if "C" in dims else 1
    model = N2V(identity_conv(spatial, channels), spatial_dims=spatial)
    image = np.random.default_rng(0).uniform(100, 180, shape).astype(np.float32)
    output = predict(model, image, dims=dims, normalize=(0.5, 99.5), roi_size=[16] * spatial)
    assert output.shape == image.shape
    np.testing.assert_allclose(output, image, rtol=1e-5)


def test_independent_channels_run_one_network_on_each_channel() -> None:
    network = N2VUNet(2, 1, 1, features=(4, 8))
    model = N2V(network, channels="independent", spatial_dims=2).eval()
    batch = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        joint = model.window_network()(batch)
        each = torch.cat([network(batch[:, c:c + 1]) for c in range(3)], dim=1)
    assert isinstance(model.window_network(), ChannelsApart)
    torch.testing.assert_close(joint, each)


def test_training_step_warns_once_that_targets_are_ignored() -> None:
    model = N2V(N2VUNet(2, 1, 1, features=(4, 8)), spatial_dims=2)
    model.log = lambda *args, **kwargs: None
    batch = {keys.IMAGE: torch.rand(2, 1, 32, 32), keys.TARGET: torch.rand(2, 1, 32, 32)}
    with pytest.warns(UserWarning, match="targets of this data are ignored"):
        model.training_step(batch, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.training_step(batch, 1)


def test_a_constant_image_trains_to_zero_loss_and_predicts_itself() -> None:
    """A documented behaviour: nothing to denoise, no NaN anywhere."""
    model = N2V(identity_conv(2), spatial_dims=2)
    constant = torch.full((2, 1, 32, 32), 0.0)  # what percentile normalization makes of a constant image
    loss = model.blind_spot_loss(constant)
    assert loss.item() == 0.0
    output = predict(model, np.full((40, 40), 123.0, np.float32), normalize=(0.5, 99.5))
    np.testing.assert_allclose(output, 123.0)


def test_the_loss_trains_the_network_to_denoise() -> None:
    """A few hundred steps on independent noise around a smooth image lower the error to the clean image."""
    torch.manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(0, 3, 64), torch.linspace(0, 3, 64), indexing="ij")
    clean = (torch.sin(y) * torch.cos(x))[None, None].repeat(8, 1, 1, 1)
    noisy = clean + 0.3 * torch.randn_like(clean)
    model = N2V(N2VUNet(2, 1, 1, features=(8, 16)), mask_share=0.02, spatial_dims=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        optimizer.zero_grad()
        model.blind_spot_loss(noisy).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        denoised = model.window_network()(noisy)
    assert ((denoised - clean) ** 2).mean() < 0.5 * ((noisy - clean) ** 2).mean()
