"""The EmbedSeg framework: training steps with its own and other backbones, errors, prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from im2im_core.errors import ConfigError
from im2im_core.inference import Inference, PredictionSettings, predict_batch
from im2im_core.networks import AnisotropicUNet
from im2im_embedseg.erfnet import BranchedERFNet
from im2im_embedseg.framework import EmbedSeg


def batch(shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    labels = torch.zeros(shape, dtype=torch.float32)
    labels[..., 2:6, 2:8] = 1
    labels[..., 2:6, 8:14] = 2
    labels[0, ..., 9:14, 3:12] = 7
    return {"IM": (labels > 0).float() + 0.1 * torch.rand(shape), "GT": labels}


BACKBONES = {
    "erfnet_2d": lambda: BranchedERFNet(2, 1, channels=(8, 16, 24)),
    "erfnet_3d": lambda: BranchedERFNet(3, 1, channels=(8, 16, 24), strides=[[1, 2, 2], [2, 2, 2], [2, 2, 2]]),
    "anisotropic_unet_3d": lambda: AnisotropicUNet(spatial_dims=3, in_channels=1, out_channels=7, channels=(8, 16, 32),
                                                   xy_only_levels=2),
}


@pytest.mark.parametrize(("name", "shape", "voxel_size"), [
    ("erfnet_2d", (2, 1, 16, 16), None),
    ("erfnet_3d", (2, 1, 4, 16, 16), [3.0, 1.0, 1.0]),
    ("anisotropic_unet_3d", (2, 1, 4, 16, 16), [3.0, 1.0, 1.0]),
])
def test_training_step_with_any_backbone(name: str, shape: tuple[int, ...], voxel_size: list[float] | None) -> None:
    backbone = BACKBONES[name]()
    model = EmbedSeg(backbone, voxel_size=voxel_size, centre="approximate_medoid")
    model.log = lambda *args, **kwargs: None  # no trainer attached
    loss = model.training_step(batch(shape), 0)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert all(p.grad is not None for p in backbone.parameters() if p.requires_grad)


def test_a_backbone_with_the_wrong_channels_is_named() -> None:
    model = EmbedSeg(BranchedERFNet(2, 1, out_channels=1, channels=(8, 16, 24)))
    with pytest.raises(ConfigError, match="out_channels 5 .* BranchedERFNet gives 1"):
        model(torch.rand(1, 1, 16, 16))


def test_segment_returns_labels_of_the_whole_image() -> None:
    model = EmbedSeg(BranchedERFNet(2, 1, channels=(8, 16, 24)), seed_threshold=0.0, foreground_threshold=0.0, min_size=1,
                     spatial_dims=2)
    labels = model.segment(torch.rand(1, 40, 56), Inference(roi_size=[32, 32]))
    assert labels.shape == (1, 40, 56) and labels.dtype == np.uint16 and labels.max() >= 1


def test_prediction_segments_each_timepoint_of_a_time_series() -> None:
    torch.manual_seed(0)
    model = EmbedSeg(BranchedERFNet(2, 1, channels=(8, 16, 24)), seed_threshold=0.0, foreground_threshold=0.0, min_size=1,
                     spatial_dims=2)
    inference = Inference(roi_size=[32, 32])
    frames = torch.rand(3, 1, 40, 56)
    calls: list[tuple[int, int]] = []
    settings = PredictionSettings(inference=inference, progress=lambda done, total: calls.append((done, total)))
    (labels,) = predict_batch(model, {"IM": frames[None], "IM_dims": ["TCYX"]}, settings)
    assert labels.shape == (3, 1, 40, 56) and labels.dtype == np.uint16
    for t in range(3):
        np.testing.assert_array_equal(labels[t], model.segment(frames[t], inference))
    assert sum(done == total for done, total in calls) == 3  # windows reported for every timepoint
