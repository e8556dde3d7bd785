"""Unit tests of the built-in backbones (im2im_core.networks): tiny networks on CPU."""

from __future__ import annotations

from typing import Any

import monai.networks.nets as monai_nets
import pytest
import torch

from im2im_core.networks import BUILTIN_BACKBONES, AnisotropicUNet, FNet, SMPNet


def _forward(factory: Any, shape: tuple[int, ...], out_channels: int = 2, **kwargs: Any):
    """Build a backbone the way the core does (keyword arguments only) and run one input."""
    torch.manual_seed(0)
    spatial_dims = len(shape) - 2
    net = factory(
        spatial_dims=spatial_dims, in_channels=shape[1], out_channels=out_channels, **kwargs
    )
    net.eval()
    x = torch.randn(shape)
    with torch.no_grad():
        y = net(x)
        y_other = net(torch.randn(shape))
    assert isinstance(y, torch.Tensor)
    assert y.shape == (shape[0], out_channels, *shape[2:])
    assert torch.isfinite(y).all()
    # The output depends on the input (not a constant or zero map).
    assert not torch.allclose(y, y_other)
    return net, y


def test_builtin_backbones_names():
    assert BUILTIN_BACKBONES["fnet"] is FNet
    assert BUILTIN_BACKBONES["anisotropic_unet"] is AnisotropicUNet
    assert BUILTIN_BACKBONES["smp"] is SMPNet
    for name in ("UNet", "BasicUNet", "AttentionUnet", "DynUNet", "SwinUNETR", "UNETR"):
        assert BUILTIN_BACKBONES[name] is getattr(monai_nets, name)


@pytest.mark.parametrize(
    "shape",
    [(2, 1, 16, 16), (1, 2, 8, 16, 8)],
    ids=["2d", "3d"],
)
def test_fnet_shapes(shape):
    _forward(FNet, shape, depth=2, mult_chan=4)


def test_fnet_layout_and_gradient():
    net = FNet(spatial_dims=2, in_channels=1, out_channels=1, depth=2, mult_chan=4)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    transposed = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    # Per level: 2 convs on the way down, 2 on the way up (not at the bottom), 1 stride-2 down.
    assert len(convs) == 3 * 2 + 2 * 2 + 2 + 1
    assert sorted(m.out_channels for m in transposed) == [4, 8]
    assert max(m.out_channels for m in convs) == 16  # mult_chan * 2**depth at the bottom
    x = torch.randn(2, 1, 8, 8)
    net(x).square().mean().backward()
    assert convs[0].weight.grad is not None and convs[0].weight.grad.abs().sum() > 0


def test_fnet_rejects_non_divisible_input():
    net = FNet(spatial_dims=2, in_channels=1, out_channels=1, depth=4, mult_chan=2)
    with pytest.raises(ValueError, match=r"divisible by 16.*\(16, 20\)"):
        net(torch.randn(1, 1, 16, 20))


def test_fnet_rejects_bad_spatial_dims():
    with pytest.raises(ValueError, match="spatial_dims"):
        FNet(spatial_dims=1, in_channels=1, out_channels=1)


@pytest.mark.parametrize(
    "shape",
    [(1, 1, 16, 64, 64), (1, 1, 8, 64, 64), (1, 2, 2, 32, 16)],
    ids=["z16", "z8", "z2"],
)
def test_anisotropic_unet_3d(shape):
    net, _ = _forward(AnisotropicUNet, shape, channels=(4, 8, 8, 16), xy_only_levels=2)
    assert list(net.strides) == [1, (1, 2, 2), (1, 2, 2), 2]


def test_anisotropic_unet_2d():
    net, _ = _forward(AnisotropicUNet, (2, 1, 32, 32), channels=(4, 8, 16), dropout=0.1)
    assert list(net.strides) == [1, 2, 2]


def test_anisotropic_unet_rejects_bad_sizes_and_args():
    net = AnisotropicUNet(spatial_dims=3, in_channels=1, out_channels=1, channels=(4, 8, 8, 16))
    with pytest.raises(ValueError, match=r"\(2, 8, 8\).*\(3, 16, 16\)"):
        net(torch.randn(1, 1, 3, 16, 16))
    with pytest.raises(ValueError, match="xy_only_levels"):
        AnisotropicUNet(in_channels=1, out_channels=1, channels=(4, 8, 16), xy_only_levels=3)
    with pytest.raises(ValueError, match="at least 3 levels"):
        AnisotropicUNet(in_channels=1, out_channels=1, channels=(4, 8))


@pytest.mark.parametrize("encoder_name", ["tu-resnet10t", "resnet18"])
def test_smp_net(encoder_name):
    _forward(
        SMPNet,
        (2, 1, 64, 64),
        out_channels=3,
        encoder_name=encoder_name,
        encoder_depth=3,
        decoder_channels=(8, 8, 8),
    )


def test_smp_net_fpn_size_rule():
    net = SMPNet(
        in_channels=1,
        out_channels=1,
        arch="FPN",
        encoder_name="tu-resnet10t",
        decoder_pyramid_channels=32,
        decoder_segmentation_channels=32,  # GroupNorm with 32 groups
    )
    assert net.size_multiple == 32
    with pytest.raises(ValueError, match=r"divisible by 32.*\(64, 48\)"):
        net(torch.randn(1, 1, 64, 48))


def test_smp_net_errors():
    with pytest.raises(ValueError, match="2D only.*got 3"):
        SMPNet(spatial_dims=3, in_channels=1, out_channels=1)
    with pytest.raises(ValueError, match="unknown arch 'NoSuchArch'.*'Unet'"):
        SMPNet(in_channels=1, out_channels=1, arch="NoSuchArch")
    with pytest.raises(ValueError, match="unknown encoder 'resnet0'.*'resnet18'"):
        SMPNet(in_channels=1, out_channels=1, encoder_name="resnet0")
    with pytest.raises(ValueError, match="unknown timm encoder 'tu-no_such_model'"):
        SMPNet(in_channels=1, out_channels=1, encoder_name="tu-no_such_model")


MONAI_CASES = {
    "UNet": ((1, 1, 16, 16), dict(channels=(4, 8), strides=(2,), num_res_units=0)),
    "UNet-3d": ((1, 1, 8, 8, 8), dict(channels=(4, 8), strides=(2,), num_res_units=1)),
    # 4 poolings: 16 would leave 1 pixel per channel, which instance norm refuses.
    "BasicUNet": ((1, 1, 32, 32), dict(features=(4, 4, 8, 8, 16, 4))),
    "AttentionUnet": ((1, 1, 16, 16), dict(channels=(4, 8), strides=(2,))),
    "DynUNet": (
        (1, 1, 16, 16),
        dict(
            kernel_size=[3, 3, 3],
            strides=[1, 2, 2],
            upsample_kernel_size=[2, 2],
            filters=(4, 8, 16),
        ),
    ),
    # MONAI >= 1.5 SwinUNETR has no img_size argument; sizes must be divisible by 32, and 32
    # leaves 1 pixel for the bottleneck's instance norm, which refuses it. Needs einops.
    "SwinUNETR": (
        (1, 1, 64, 64),
        dict(feature_size=12, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), window_size=2),
    ),
    # UNETR needs img_size (and einops); its patches are 16 wide: sizes must be multiples of 16.
    "UNETR": (
        (1, 1, 32, 32),
        dict(img_size=(32, 32), feature_size=4, hidden_size=16, mlp_dim=16, num_heads=2),
    ),
}


@pytest.mark.parametrize("case", sorted(MONAI_CASES))
def test_monai_backbones(case):
    if case in ("SwinUNETR", "UNETR"):
        pytest.importorskip("einops", reason=f"MONAI's {case} needs einops")
    shape, kwargs = MONAI_CASES[case]
    _forward(BUILTIN_BACKBONES[case.split("-")[0]], shape, **kwargs)
