"""Sliding-window prediction: stitching, blending, TTA, post-processing, axes (tiny networks, CPU)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch
from torch import nn

from im2im_core.errors import ConfigError
from im2im_core.inference import Inference, Postprocess, predict
from im2im_core.inference.optimize import fold_batch_norms
from im2im_core.inference.sliding_window import predict_windows
from im2im_core.inference.tta import symmetries, with_tta
from im2im_core.networks import FNet


def _constant(x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0], 2, *x.shape[2:]), 3.5)


def _conv_stack(spatial_dims: int, seed: int = 0) -> nn.Module:
    """Translation-equivariant: two 3x3(x3) convolutions, receptive field radius 2."""
    torch.manual_seed(seed)
    conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
    return nn.Sequential(conv(1, 4, 3, padding=1), nn.ReLU(), conv(4, 1, 3, padding=1)).eval()


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
@pytest.mark.parametrize("shape, roi", [((1, 37, 45, 51), [16, 32, 32]), ((1, 101, 77), [32, 48])])
def test_constant_network_gives_a_constant_image_without_seams(shape, roi, mode):
    out = predict_windows(_constant, torch.rand(shape), roi, 0.25, 3, mode)
    assert out.shape == (2, *shape[1:])
    assert torch.allclose(out, torch.full_like(out, 3.5), atol=1e-5)


@pytest.mark.parametrize("shape, roi", [((1, 41, 53, 67), [24, 32, 32]), ((1, 97, 131), [48, 48])])
def test_gaussian_blending_matches_one_whole_image_pass_in_the_interior(shape, roi):
    net = _conv_stack(len(roi))
    image = torch.rand(shape)
    with torch.no_grad():
        whole = net(image[None])[0]
    interior = (slice(None), *[slice(2, -2)] * len(roi))  # the network's own border effects aside
    blended = predict_windows(net, image, roi, 0.25, 4, "gaussian")
    assert (blended - whole)[interior].abs().max() < 1e-4
    # Without trimming window edges, their zero padding leaks into the blend: the check has teeth.
    leaky = predict_windows(net, image, roi, 0.25, 4, "gaussian", edge_trim=0.0)
    assert (leaky - whole)[interior].abs().max() > 1e-4


def test_lazy_input_streamed_to_a_sink_equals_the_in_memory_result():
    net = _conv_stack(3)
    image = torch.rand(1, 40, 50, 60)
    expected = predict_windows(net, image, [16, 32, 32], 0.25, 2)
    rows_seen, out = [], torch.zeros_like(expected)

    def sink(region: tuple[slice, ...], block: torch.Tensor) -> None:
        rows_seen.append((region[0].start, region[0].stop))
        out[(slice(None), *region)] = block

    predict_windows(net, da.from_array(image.numpy(), chunks=(1, 8, 25, 30)), [16, 32, 32], 0.25, 2, sink=sink, axis=0)
    assert torch.allclose(out, expected, atol=1e-6)
    assert rows_seen[0][0] == 0 and rows_seen[-1][1] == 40 and len(rows_seen) > 1  # band by band
    rows_seen.clear()
    predict_windows(net, image, [16, 32, 32], 0.25, 2, sink=sink, axis=0, emit_multiple=[16, 1, 1])
    assert rows_seen == [(0, 16), (16, 40)] and torch.allclose(out, expected, atol=1e-6)  # whole chunks
    for axis in (1, 2):  # any sweep direction gives the same result
        blocks_of_a_few_rows = predict_windows(net, image, [16, 32, 32], 0.25, 2, axis=axis, block_bytes=4096)
        assert torch.allclose(blocks_of_a_few_rows, expected, atol=1e-6)


def test_image_smaller_than_the_window_is_padded_and_cropped():
    net = _conv_stack(2)
    image = torch.rand(1, 20, 30)
    out = predict_windows(net, image, [64, 64], 0.25, 1)
    with torch.no_grad():
        whole = net(image[None])[0]
    assert out.shape == (1, 20, 30)
    assert torch.allclose(out[:, :-2, :-2], whole[:, :-2, :-2], atol=1e-6)  # zero padding = conv padding


def test_tta_undoes_each_transform():
    assert len(symmetries(2, "flips")) == 4 and len(symmetries(3, "flips")) == 8
    assert len(symmetries(2, "flips_rot90")) == 8 and len(symmetries(3, "flips_rot90")) == 16
    x = torch.rand(2, 1, 8, 16, 12)
    for mode in ("flips", "rot90", "flips_rot90"):
        assert torch.allclose(with_tta(lambda t: t * 2, 3, mode)(x), x * 2)  # equivariant: unchanged


def test_tta_averages_the_flipped_predictions():
    net = _conv_stack(2)
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        expected = sum(torch.flip(net(torch.flip(x, axes)), axes) if axes else net(x)
                       for axes in [(), (-1,), (-2,), (-2, -1)]) / 4
        assert torch.allclose(with_tta(net, 2, "flips")(x), expected, atol=1e-6)
        assert not torch.allclose(net(x), expected, atol=1e-4)


def test_postprocess_threshold_argmax_labels_and_small_objects():
    logits = torch.full((1, 6, 8), -5.0)
    logits[0, :2, :2] = 5  # 4 pixels
    logits[0, 4:, 5:] = 5  # 6 pixels
    logits[0, 5, 0] = 5  # 1 pixel
    mask = Postprocess("sigmoid", 0.5)(logits)
    assert mask.dtype == np.uint8 and mask.sum() == 11
    labels = Postprocess("sigmoid", 0.5, label=True, min_size=2)(logits)
    assert labels.max() == 2 and (labels > 0).sum() == 10 and labels[0, 0, 0] == 1
    classes = Postprocess("softmax", argmax=True)(torch.stack([torch.zeros(4, 4), torch.ones(4, 4)]))
    assert classes.shape == (1, 4, 4) and (classes == 1).all()
    with pytest.raises(ValueError):
        Postprocess(threshold=0.5, argmax=True)


def test_folding_batch_norms_changes_nothing_but_speed():
    torch.manual_seed(0)
    net = FNet(spatial_dims=3, in_channels=1, out_channels=1, depth=2, mult_chan=4)
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(2, 1, 16, 16, 16) * 3 + 1)  # non-trivial running statistics
    net.eval()
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        expected = net(x)
        assert fold_batch_norms(net) > 0
        assert not any(isinstance(m, nn.BatchNorm3d) for m in net.modules())
        assert torch.allclose(net(x), expected, atol=1e-5)


def test_5d_input_keeps_its_axes():
    net = _conv_stack(3)
    image = np.random.default_rng(0).random((2, 1, 12, 20, 24), dtype=np.float32)  # TCZYX
    out = predict(net, image, dims="TCZYX", roi_size=[16, 16, 16])
    assert out.shape == image.shape
    single = predict(net, image[1, 0], dims="ZYX", roi_size=[16, 16, 16])
    np.testing.assert_allclose(out[1, 0], single, atol=1e-6)


def test_several_output_channels_add_a_channel_axis():
    torch.manual_seed(0)
    net = nn.Conv2d(1, 3, 3, padding=1).eval()
    out = predict(net, np.zeros((2, 30, 40), np.float32), dims="TYX")
    assert out.shape == (2, 3, 30, 40)


def test_2d_network_slice_by_slice_on_a_stack():
    net = _conv_stack(2)
    stack = np.random.default_rng(1).random((3, 40, 50), dtype=np.float32)
    with pytest.raises(ConfigError, match="slice_by_slice"):
        predict(net, stack, dims="ZYX")
    out = predict(net, stack, dims="ZYX", inference=Inference(slice_by_slice=True, roi_size=[32, 32]))
    plane = predict(net, stack[2], dims="YX", roi_size=[32, 32])
    assert out.shape == stack.shape
    np.testing.assert_allclose(out[2], plane, atol=1e-6)


def test_normalize_maps_percentiles_to_zero_and_one():
    identity = nn.Conv2d(1, 1, 1, bias=False).eval()
    nn.init.ones_(identity.weight)
    image = np.linspace(10, 20, 32 * 32, dtype=np.float32).reshape(32, 32)
    out = predict(identity, image, dims="YX", normalize=(0, 100))
    assert out.min() == pytest.approx(0, abs=1e-6) and out.max() == pytest.approx(1, abs=1e-6)


def test_mixed_precision_stays_close_to_float32():
    net = _conv_stack(2)
    image = np.random.default_rng(2).random((48, 64), dtype=np.float32)
    exact = predict(net, image, dims="YX")
    mixed = predict(net, image, dims="YX", amp=True)  # bfloat16 on the CPU
    assert mixed.dtype == np.float32 and np.abs(mixed - exact).max() < 0.05 * np.abs(exact).max()
