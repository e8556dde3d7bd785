"""Crop tiling and the receptive-field probe: exact where the network is local, blending where it is not."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch
from monai.networks.nets import UNet
from torch import nn

from im2im_core.errors import ConfigError
from im2im_core.frameworks.fcn import FCN
from im2im_core.inference import Inference, predict
from im2im_core.inference.predict_array import Tiling, _resolve_tiling
from im2im_core.inference.receptive_field import measure_locality
from im2im_core.inference.sliding_window import predict_windows
from im2im_core.inference.windows import axis_starts, crop_cores
from im2im_core.networks import FNet


def _conv_stack(spatial_dims: int, layers: int = 3) -> nn.Module:
    """Local and translation-equivariant: ``layers`` 3x3(x3) convolutions, receptive-field radius ``layers``."""
    torch.manual_seed(0)
    conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
    modules: list[nn.Module] = [conv(1, 4, 3, padding=1)]
    for _ in range(layers - 2):
        modules += [nn.ReLU(), conv(4, 4, 3, padding=1)]
    modules += [nn.ReLU(), conv(4, 1, 3, padding=1)]
    return nn.Sequential(*modules).eval()


def _unet(norm: str) -> nn.Module:
    torch.manual_seed(0)
    return UNet(2, 1, 1, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, norm=norm).eval()


def test_crop_cores_tile_the_axis_and_keep_the_halo_from_shared_borders():
    starts = axis_starts(300, 96, 0.25, 16, halo=20)
    cores = crop_cores(starts, 96, starts[-1] + 96)
    kept = [(s + lo, s + hi) for s, (lo, hi) in zip(starts, cores)]
    assert kept[0][0] == 0 and kept[-1][1] == starts[-1] + 96
    assert all(a[1] == b[0] for a, b in zip(kept, kept[1:]))  # no gap, no pixel twice
    assert all(lo >= 20 for lo, _ in cores[1:]) and all(96 - hi >= 20 for _, hi in cores[:-1])
    assert all(s % 16 == 0 for s in starts)
    with pytest.raises(ValueError, match="halo"):
        axis_starts(300, 32, 0.25, 16, halo=10)  # no aligned core left


@pytest.mark.parametrize("shape, roi", [((1, 41, 53, 67), [16, 32, 32]), ((1, 97, 131), [32, 48])])
def test_crop_tiling_equals_one_whole_image_pass_everywhere(shape, roi):
    net = _conv_stack(len(roi))
    image = torch.rand(shape)
    with torch.no_grad():
        whole = net(image[None])[0]
    cropped = predict_windows(net, image, roi, 0.25, 4, "crop", align=1, halo=[3] * len(roi))
    assert (cropped - whole).abs().max() < 1e-6  # borders included: window borders at the image's are its borders


def test_crop_tiling_with_a_halo_under_the_receptive_field_differs_at_the_seams():
    net = _conv_stack(2)
    image = torch.rand(1, 62, 92)  # windows of 32 with overlaps of exactly 2: cut 1 pixel from each border
    with torch.no_grad():
        whole = net(image[None])[0]
    too_small = predict_windows(net, image, [32, 32], 0.25, 4, "crop", align=1, halo=[1, 1])
    assert (too_small - whole).abs().max() > 1e-4  # the check above has teeth


def test_crop_tiling_streams_a_lazy_image_band_by_band_like_the_in_memory_result():
    net = _conv_stack(3)
    image = torch.rand(1, 40, 50, 60)
    expected = predict_windows(net, image, [16, 32, 32], 0.25, 2, "crop", align=1, halo=[3, 3, 3])
    out = torch.zeros_like(expected)

    def sink(region: tuple[slice, ...], block: torch.Tensor) -> None:
        out[(slice(None), *region)] = block

    predict_windows(net, da.from_array(image.numpy(), chunks=(1, 8, 25, 30)), [16, 32, 32], 0.25, 2, "crop",
                    align=1, halo=[3, 3, 3], sink=sink, axis=0, emit_multiple=[16, 1, 1])
    assert torch.equal(out, expected)


def test_probe_finds_the_receptive_field_and_grid_of_a_convolution_stack():
    net = _conv_stack(2, layers=5)
    locality = measure_locality(net, 1, [64, 64], align=16)
    assert locality is not None and locality.halo == [5, 5] and locality.grid == 1
    assert measure_locality(net, 1, [64, 64], align=1, limit=[3, 3]) is None  # wider than the useful limit


def test_probe_measures_a_batch_norm_unet_and_refuses_instance_norm_and_window_wide_operations():
    locality = measure_locality(_unet("batch"), 1, [128, 128], align=16)
    assert locality is not None and 4 <= locality.halo[0] < 32 and locality.halo[0] == locality.halo[1]
    assert locality.grid == 4  # two stride-2 levels
    assert measure_locality(_unet("instance"), 1, [128, 128], align=16) is None  # statistics of the whole window

    class MeanShift(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x - x.mean(dim=(2, 3), keepdim=True)

    assert measure_locality(MeanShift(), 1, [64, 64], align=1) is None


def test_probe_refuses_networks_it_cannot_measure():
    class PositionCode(nn.Module):  # a conv plus a ramp anchored at the window's origin
        def __init__(self) -> None:
            super().__init__()
            self.conv = _conv_stack(2, layers=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) + torch.arange(x.shape[-1], dtype=x.dtype) * 1e-3

    class FixedSize(nn.Module):  # like UNETR: one input size only
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if tuple(x.shape[2:]) != (64, 64):
                raise RuntimeError("input size must be 64 x 64")
            return x

    class Dead(nn.Module):  # an output that never varies looks independent of everything
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(-x.abs() - 1)

    assert measure_locality(PositionCode(), 1, [64, 64], align=16) is None
    assert measure_locality(FixedSize(), 1, [64, 64], align=16) is None
    assert measure_locality(Dead(), 1, [64, 64], align=1) is None
    framework = FCN(backbone=FixedSize(), task="regression", spatial_dims=2)  # default settings: blended, no error
    image = np.random.default_rng(0).random((150, 150), dtype=np.float32)
    assert predict(framework, image, dims="YX", roi_size=[64, 64], postprocess=None).shape == (150, 150)


def test_a_strided_network_sees_farther_from_some_phases_and_the_halo_covers_them():
    """Stride-2 convolution then upsampling: odd pixels see one pixel farther than even ones."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.Upsample(scale_factor=2), nn.Conv2d(4, 1, 1)).eval()
    locality = measure_locality(net, 1, [64, 64], align=16)
    assert locality is not None and locality.grid == 2
    image = torch.rand(1, 32, 182)
    with torch.no_grad():
        whole = net(image[None])[0]
    cropped = predict_windows(net, image, [32, 32], 0.25, 4, "crop", align=2, halo=locality.halo)
    assert (cropped - whole).abs().max() < 1e-6


def _tiling(network: nn.Module, shape: tuple[int, ...], **options) -> Tiling:
    framework = FCN(backbone=network, task="regression", spatial_dims=len(shape))
    settings = Inference(**options)

    def measure(roi, align, limit):
        return measure_locality(network, 1, roi, align, limit=limit)

    return _resolve_tiling(settings, framework.window_defaults(), shape, len(shape), measure)


def test_auto_mode_crops_a_local_network_and_blends_the_others():
    cropped = _tiling(_unet("batch"), (1200, 1400), max_window_voxels=2**18)
    assert cropped.mode == "crop" and cropped.halo is not None and cropped.align == 4
    assert _tiling(_unet("instance"), (1200, 1400), max_window_voxels=2**18).mode == "gaussian"
    assert _tiling(_unet("batch"), (1200, 1400), max_window_voxels=2**18, mode="gaussian").mode == "gaussian"
    assert _tiling(_unet("batch"), (60, 70)).mode == "gaussian"  # one window: nothing to join, nothing measured
    strip = _tiling(_unet("batch"), (60, 3000), max_window_voxels=2**14)  # Y fits one window: no seam crosses it
    assert strip.mode == "crop" and strip.halo is not None and strip.halo[0] == 0 and strip.halo[1] > 0
    assert strip.roi[0] >= 60
    with pytest.raises(ConfigError, match="mode crop"):
        _tiling(_unet("instance"), (1200, 1400), max_window_voxels=2**18, mode="crop")
    forced = _tiling(_unet("instance"), (1200, 1400), max_window_voxels=2**18, mode="crop", halo=[8, 8])
    assert forced.mode == "crop" and forced.halo == [8, 8]


@pytest.mark.parametrize("network", ["unet", "fnet"])
def test_predict_with_default_settings_equals_the_whole_pass_for_a_local_network(network: str):
    """The end-to-end default: a batch-norm U-Net or fnet is cropped, exact up to float rounding; blending is not.

    The fnet's output at random weights is a constant plus small variations: the probe must judge
    changes against the variations, not the constant.
    """
    torch.manual_seed(0)
    net = _unet("batch") if network == "unet" else FNet(spatial_dims=2, in_channels=1, out_channels=1, depth=2,
                                                         mult_chan=4).eval()
    framework = FCN(backbone=net, task="regression", spatial_dims=2)
    image = np.random.default_rng(0).random((612, 500), dtype=np.float32)  # multiples of the networks' grids (4)
    with torch.no_grad():
        whole = net(torch.from_numpy(image)[None, None])[0, 0].numpy()
    options = {"dims": "YX", "postprocess": None, "max_window_voxels": 2**16}
    default = predict(framework, image, **options)
    variation = float(whole.max() - whole.min())
    assert np.abs(default - whole).max() < 1e-5 * variation
    if network == "unet":  # the fnet's far dependence is too weak at random weights for blending to show
        blended = predict(framework, image, mode="gaussian", **options)
        assert np.abs(blended - whole).max() > 1e-4 * variation
