"""Normalization by the training set's mean and std: learned at fit, saved as the data module's state, used by prediction."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from torch import nn

from im2im_core.data import Im2ImDataModule
from im2im_core.data.normalization import MeanStd, TrainingSetNormalized
from im2im_core.errors import ConfigError, DataError
from im2im_core.inference import predict
from im2im_core.inference.checkpoint import training_statistics
from im2im_core.inference.predict_array import resolve_normalize


def test_fit_pools_the_pixels_of_every_image() -> None:
    rng = np.random.default_rng(0)
    images = [rng.normal(10 * (i + 1), i + 1, size=(2, 30 + 10 * i, 40)).astype(np.float32) for i in range(3)]
    pooled = TrainingSetNormalized(["IM"], channel_wise=False)
    pooled.fit({"IM": image} for image in images)
    every_pixel = np.concatenate([image.ravel() for image in images]).astype(np.float64)
    assert pooled.statistics["IM"].mean == pytest.approx((every_pixel.mean(),), rel=1e-9)
    assert pooled.statistics["IM"].std == pytest.approx((every_pixel.std(),), rel=1e-6)

    per_channel = TrainingSetNormalized(["IM"])
    per_channel.fit({"IM": image} for image in images)
    second = np.concatenate([image[1].ravel() for image in images]).astype(np.float64)
    assert len(per_channel.statistics["IM"].mean) == 2
    assert per_channel.statistics["IM"].mean[1] == pytest.approx(second.mean(), rel=1e-9)
    assert per_channel.statistics["IM"].std[1] == pytest.approx(second.std(), rel=1e-6)
    normalized = per_channel({"IM": images[0]})["IM"]
    stats = per_channel.statistics["IM"]
    expected = (images[0][1] - stats.mean[1]) / stats.std[1]
    np.testing.assert_allclose(normalized[1], expected, rtol=1e-5, atol=1e-5)


def test_constant_images_and_missing_statistics_are_explained() -> None:
    step = TrainingSetNormalized(["IM"])
    with pytest.raises(DataError, match="constant"):
        step.fit({"IM": np.full((1, 8, 8), 3.0, np.float32)} for _ in range(2))
    with pytest.raises(ConfigError, match="computed by im2im fit"):
        step({"IM": np.ones((1, 8, 8), np.float32)})
    with pytest.raises(ConfigError, match="both mean and std"):
        TrainingSetNormalized(["IM"], mean=1.0)
    with pytest.raises(ConfigError, match="std > 0"):
        TrainingSetNormalized(["IM"], mean=1.0, std=0.0)
    fixed = TrainingSetNormalized(["IM"], mean=[1.0, 2.0], std=[1.0, 1.0])
    with pytest.raises(DataError, match="3 channels"):
        fixed({"IM": np.ones((3, 8, 8), np.float32)})


def test_the_data_module_learns_the_statistics_of_its_training_images_only(data_2d) -> None:
    module = Im2ImDataModule(str(data_2d), val_fraction=0.25, normalize=[TrainingSetNormalized(["IM"])],
                             patch_size=[64, 64], samples_per_image=2, batch_size=4)
    module.setup("fit")
    pixels = np.concatenate([tifffile.imread(s["IM"]).ravel() for s in module.train_samples]).astype(np.float64)
    stats = module.lazy_normalization()
    assert isinstance(stats, MeanStd)
    assert stats.mean == pytest.approx((pixels.mean(),), rel=1e-6) and stats.std == pytest.approx((pixels.std(),), rel=1e-5)
    batch = next(iter(module.train_dataloader()))
    assert abs(float(batch["IM"].mean())) < 3 and 0.2 < float(batch["IM"].std()) < 5  # z-scored, not 0..255

    # what Lightning saves in a checkpoint and gives back to validate, test and predict
    state = module.state_dict()
    restored = Im2ImDataModule(predict_path=str(data_2d / "IM"), normalize=[TrainingSetNormalized(["IM"])])
    restored.load_state_dict(state)
    assert restored.lazy_normalization() == stats
    assert training_statistics({"epoch": 1, "Im2ImDataModule": state, "state_dict": {}}) == stats
    with pytest.raises(DataError, match="TrainingSetNormalized step"):
        Im2ImDataModule(predict_path=str(data_2d / "IM")).load_state_dict(state)


class _Scale(nn.Module):
    """A 1x1 convolution that keeps its input: prediction's own normalization shows in the output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_prediction_applies_fixed_statistics_to_every_window() -> None:
    image = np.random.default_rng(1).uniform(50, 250, size=(1, 70, 90)).astype(np.float32)
    stats = MeanStd((120.0,), (40.0,))
    output = predict(_Scale(), image, dims="CYX", normalize=stats, roi_size=[32, 32])
    np.testing.assert_allclose(output, (image - 120.0) / 40.0, rtol=1e-5, atol=1e-5)
    with pytest.raises(DataError, match="statistics for 2 channels"):
        predict(_Scale(), image, dims="CYX", normalize=MeanStd((1.0, 2.0), (1.0, 1.0)))
    # "auto" without a checkpoint falls back to the data module's default percentiles
    assert resolve_normalize("auto", _Scale()) == (0.5, 99.5)
    with pytest.raises(ConfigError, match="two percentiles"):
        resolve_normalize((1.0, 2.0, 3.0), _Scale())
