"""PatchGAN discriminator (im2im_core.networks.patchgan): shapes, scales, patch size, channel inference."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import UNet

from im2im_core.errors import ConfigError
from im2im_core.networks import BUILTIN_BACKBONES, FNet, PatchGAN, ResNetGenerator
from im2im_core.networks.patchgan import network_channels


def test_registered_as_backbone_names():
    assert BUILTIN_BACKBONES["patchgan"] is PatchGAN
    assert BUILTIN_BACKBONES["resnet_generator"] is ResNetGenerator


@pytest.mark.parametrize(("shape", "out_spatial"), [((2, 3, 64, 64), (6, 6)), ((1, 2, 32, 48, 40), (2, 4, 3))],
                         ids=["2d", "3d"])
def test_output_shapes_one_scale(shape, out_spatial):
    torch.manual_seed(0)
    net = PatchGAN(spatial_dims=len(shape) - 2, in_channels=shape[1], channels=8)
    outputs = net(torch.randn(shape))
    assert isinstance(outputs, list) and len(outputs) == 1
    # 3 stride-2 convolutions (size // 8), then two 4-wide stride-1 ones (-1 each)
    assert outputs[0].shape == (shape[0], 1, *out_spatial)


def test_patch_is_70_pixels_for_3_layers_as_in_pix2pix():
    """One logit sees a 70 x 70 input patch (the receptive field of pix2pix's default PatchGAN)."""
    torch.manual_seed(0)
    net = PatchGAN(spatial_dims=2, in_channels=1, channels=4).eval()
    x = torch.randn(1, 1, 160, 160, requires_grad=True)
    logits = net(x)[0]
    logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1)).flatten()
    cols = torch.nonzero(x.grad[0, 0].abs().sum(dim=0)).flatten()
    assert int(rows.max() - rows.min()) + 1 == 70
    assert int(cols.max() - cols.min()) + 1 == 70


def test_depth_is_configurable():
    small, large = PatchGAN(2, 1, channels=4, n_layers=1), PatchGAN(2, 1, channels=4, n_layers=4)
    x = torch.randn(1, 1, 64, 64)
    assert small(x)[0].shape[-1] == 30 and large(x)[0].shape[-1] == 2
    assert small.min_size() < large.min_size()
    assert PatchGAN(2, 1, n_layers=3).min_size() == 24
    convs = [m for m in large.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 4 + 1 and convs[-1].out_channels == 1


def test_multi_scale_features_end_with_the_logits():
    torch.manual_seed(0)
    net = PatchGAN(spatial_dims=2, in_channels=2, channels=4, n_layers=2, num_d=3, norm="INSTANCE").eval()
    x = torch.randn(2, 2, 64, 64)
    features = net.features(x)
    logits = net(x)
    assert len(features) == len(logits) == 3
    assert [len(blocks) for blocks in features] == [2 + 2] * 3  # initial conv, n_layers blocks, final conv
    for blocks, logit in zip(features, logits, strict=True):
        assert torch.equal(blocks[-1], logit)
    assert [logit.shape[-1] for logit in logits] == [14, 6, 2]  # each scale sees the input pooled by 2 once more
    # the scales are separate discriminators
    assert not torch.equal(net.discriminators[0].initial_conv.conv.weight, net.discriminators[1].initial_conv.conv.weight)


def test_too_small_input_is_a_clear_error():
    net = PatchGAN(spatial_dims=3, in_channels=2, channels=4, num_d=2)
    net(torch.randn(1, 2, 48, 48, 48))
    with pytest.raises(ConfigError, match=r"scale 1 is too small for n_layers=3.*24 pixels"):
        net(torch.randn(1, 2, 32, 64, 64))  # Z: 32 then 16 at the second scale


def test_bad_arguments():
    with pytest.raises(ConfigError, match="spatial_dims"):
        PatchGAN(spatial_dims=1, in_channels=1)
    with pytest.raises(ConfigError, match="n_layers"):
        PatchGAN(spatial_dims=2, in_channels=1, n_layers=0)


@pytest.mark.parametrize(("network", "expected"), [
    (FNet(spatial_dims=3, in_channels=2, out_channels=1, depth=1, mult_chan=4), (3, 2, 1)),
    (UNet(spatial_dims=2, in_channels=3, out_channels=2, channels=(4, 8), strides=(2,)), (2, 3, 2)),
    (ResNetGenerator(spatial_dims=2, in_channels=1, out_channels=3, channels=4, n_blocks=1), (2, 1, 3)),
], ids=["fnet-3d", "monai-unet", "resnet-generator"])
def test_network_channels(network, expected):
    assert network_channels(network) == expected


def test_network_channels_needs_a_convolution():
    with pytest.raises(ConfigError, match="no 2D or 3D convolution"):
        network_channels(torch.nn.Linear(3, 3))
