"""Streamed whole-image passes: exact against the network, bounded in memory, chosen only where they apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.networks.nets import UNet
from torch import nn

from im2im_core.errors import ConfigError
from im2im_core.inference import predict, streaming
from im2im_core.inference.optimize import optimized_copy
from im2im_core.inference.streaming import NotStreamable, StreamedNetwork, StreamedPass, stream_order, trace
from im2im_core.networks import FNet

CL = {2: torch.channels_last, 3: torch.channels_last_3d}


class _Odd(nn.Module):
    """Strides, dilation, a transposed convolution with
    padding, a residual sum and a per-channel scale: the index arithmetic's corner cases.
    """

    def __init__(self, spatial_dims: int) -> None:
        super().__init__()
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        up = nn.ConvTranspose3d if spatial_dims == 3 else nn.ConvTranspose2d
        self.a = conv(2, 6, 3, padding=2, dilation=2)
        self.b = conv(6, 6, 5, stride=2, padding=2)
        self.c = up(6, 6, 4, stride=2, padding=1)
        self.d = conv(6, 3, 1)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 6).view(1, 6, *[1] * spatial_dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.leaky_relu(self.a(x), 0.1)
        z = self.c(torch.tanh(self.b(y)))
        return self.d(z * self.scale + y)


def _networks(spatial_dims: int) -> list[tuple[str, nn.Module]]:
    torch.manual_seed(0)
    return [("fnet", FNet(spatial_dims, 2, 1, depth=3, mult_chan=4)),
            ("monai_unet", UNet(spatial_dims, 2, 2, (4, 8, 16), (2, 2), num_res_units=2, norm="batch")),
            ("odd", _Odd(spatial_dims))]


@pytest.mark.parametrize("spatial_dims, shape", [(2, (56, 40)), (3, (24, 40, 16))])
def test_a_streamed_pass_is_the_whole_pass_for_every_axis_and_step(spatial_dims, shape):
    for name, net in _networks(spatial_dims):
        net = optimized_copy(net.eval(), spatial_dims, torch.device("cpu"))
        stages, output = trace(net, torch.randn(1, 2, *[16] * spatial_dims).contiguous(memory_format=CL[spatial_dims]))
        x = torch.randn(2, 2, *shape).contiguous(memory_format=CL[spatial_dims])
        with torch.no_grad():
            whole = net(x)
            for axis in range(spatial_dims):
                for chunk in (1, 3, 16):
                    streamed = StreamedPass(stages, output, axis, chunk)(x)
                    assert streamed.shape == whole.shape, (name, axis, chunk)
                    assert (streamed - whole).abs().max() <= 1e-5 * whole.abs().max(), (name, axis, chunk)


class _SqueezeExcite(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * y.mean(dim=(2, 3), keepdim=True).sigmoid()


@pytest.mark.parametrize("net", [nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.InstanceNorm2d(4), nn.Conv2d(4, 1, 1)),
                                 _SqueezeExcite(),
                                 nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect"))])
def test_networks_that_see_the_whole_image_are_not_streamed(net):
    with pytest.raises(NotStreamable):
        network = StreamedNetwork(net.eval(), 1, 2, 16, None, torch.device("cpu"))
        network.check(stream_order([64, 32]))


def test_kept_memory_is_planned_exactly_and_does_not_grow_with_the_streamed_length(monkeypatch):
    monkeypatch.setattr(streaming, "STEP_VOXELS", 4096)  # 8 rows a step on this thin cross-section
    torch.manual_seed(0)
    net = optimized_copy(FNet(3, 1, 1, depth=3, mult_chan=8).eval(), 3, torch.device("cpu"))
    network = StreamedNetwork(net, 1, 3, 8, CL[3], torch.device("cpu"))
    short, long = (16, 320, 32), (16, 960, 32)
    planned_short, planned_long = network.memory(short)[0], network.memory(long)[0]
    x = torch.rand(1, 1, *long).contiguous(memory_format=CL[3])
    with torch.no_grad():
        network(x)
    assert network.peak_bytes == planned_long  # the dry run on the meta device sizes the real rings
    assert planned_long <= 1.05 * planned_short  # three times longer, the same rows kept
    assert planned_long < 0.6 * 4 * 8 * np.prod(long)  # below one 8-channel map of the whole image


def _padded_whole_pass(net: nn.Module, image: np.ndarray, multiple: int) -> np.ndarray:
    padded = [-(-n // multiple) * multiple for n in image.shape]
    x = torch.zeros(1, 1, *padded)
    x[(0, 0, *(slice(0, n) for n in image.shape))] = torch.from_numpy(image)
    with torch.no_grad():
        return net(x)[(0, 0, *(slice(0, n) for n in image.shape))].numpy()


def test_predict_streams_on_the_cpu_and_gives_the_whole_pass():
    torch.manual_seed(0)
    net = FNet(3, 1, 1, depth=4, mult_chan=4).eval()
    image = np.random.default_rng(0).random((20, 150, 70), dtype=np.float32)
    progress: list[tuple[int, int]] = []
    streamed = predict(net, image, dims="ZYX", postprocess=None, progress=lambda d, t: progress.append((d, t)))
    assert progress == [(1, 1)]  # one pass, no windows (auto picked the stream)
    assert np.abs(streamed - _padded_whole_pass(net, image, 16)).max() < 1e-5
    blended = predict(net, image, dims="ZYX", postprocess=None, max_stream_bytes=0, max_window_voxels=2**17,
                      progress=lambda d, t: progress.append((d, t)))
    assert progress[-1][1] > 1  # over the memory bound: windows instead
    assert np.abs(blended - streamed).max() < 1e-3


def test_streaming_keeps_test_time_augmentation_and_mixed_precision():
    torch.manual_seed(0)
    net = FNet(2, 1, 1, depth=2, mult_chan=4).eval()
    image = np.random.default_rng(1).random((96, 40), dtype=np.float32)
    for options in ({"tta": "flips_rot90"}, {"amp": True}):
        streamed = predict(net, image, dims="YX", postprocess=None, mode="stream", **options)
        windows = predict(net, image, dims="YX", postprocess=None, mode="gaussian", roi_size=[96, 48], **options)
        assert np.abs(streamed - windows).max() < (5e-2 if "amp" in options else 1e-5), options


def test_forced_streaming_says_why_it_cannot_run():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.InstanceNorm2d(4), nn.Conv2d(4, 1, 1)).eval()
    image = np.zeros((64, 64), np.float32)
    with pytest.raises(ConfigError, match="mode stream: the network cannot be streamed"):
        predict(net, image, dims="YX", mode="stream")
    with pytest.raises(ConfigError, match="max_stream_bytes"):
        predict(FNet(2, 1, 1, depth=2, mult_chan=4).eval(), image, dims="YX", mode="stream", max_stream_bytes=1000)


def test_a_window_asked_for_is_kept():
    torch.manual_seed(0)
    net = FNet(3, 1, 1, depth=2, mult_chan=4).eval()
    image = np.random.default_rng(2).random((16, 64, 64), dtype=np.float32)
    progress: list[tuple[int, int]] = []
    predict(net, image, dims="ZYX", roi_size=[16, 32, 32], progress=lambda d, t: progress.append((d, t)))
    assert progress[-1][1] > 1  # windows, not a stream


def test_batch_norms_of_the_module_itself_are_streamed_exactly():
    torch.manual_seed(0)
    net = FNet(3, 1, 1, depth=3, mult_chan=4).eval()
    for module in net.modules():  # running statistics far from the identity, as after training
        if isinstance(module, nn.BatchNorm3d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    network = StreamedNetwork(net, 1, 3, 8, CL[3], torch.device("cpu"))
    assert sum(stage.kind == "pointwise" for stage in network.stages) == 0  # each fused into its convolution
    x = torch.rand(1, 1, 24, 56, 16).contiguous(memory_format=CL[3])
    with torch.no_grad():
        whole = net(x)
        assert (network(x) - whole).abs().max() <= 1e-5 * whole.abs().max()
