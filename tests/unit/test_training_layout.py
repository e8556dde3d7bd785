"""``channels_last`` of Im2ImFramework: the networks of training in the channels-last memory layout."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from monai.networks.nets import UNet
from torch.utils.data import DataLoader

from im2im_core import keys
from im2im_core.errors import ConfigError
from im2im_core.frameworks import FCN


def batches(spatial: tuple[int, ...]) -> DataLoader:
    """Two batches of two 2-channel images and targets (with one channel, both layouts have the same strides)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 2, *spatial, generator=generator)
    samples = [{keys.IMAGE: image, keys.TARGET: image.square()} for image in images]
    return DataLoader(samples, batch_size=2)


def trained(spatial: tuple[int, ...], layout: bool | str) -> FCN:
    """An FCN after two training steps on the CPU from seed 0."""
    pl.seed_everything(0)
    network = UNet(spatial_dims=len(spatial), in_channels=2, out_channels=2, channels=(4, 8), strides=(2,))
    # SGD: Adam's first steps are about lr * sign(gradient), which turns rounding of near-zero gradients into lr
    model = FCN(network, task="regression", spatial_dims=len(spatial), channels_last=layout,
                optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    trainer = pl.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, train_dataloaders=batches(spatial))
    return model


@pytest.mark.parametrize(("spatial", "layout"), [((32, 32), torch.channels_last),
                                                  ((8, 16, 16), torch.channels_last_3d)])
def test_auto_trains_on_the_cpu_in_channels_last_with_the_same_result(spatial, layout) -> None:
    plain, last = trained(spatial, False), trained(spatial, "auto")
    weights = [p for p in last.parameters() if p.ndim == 2 + len(spatial) and p.shape[1] > 1]
    assert weights and all(p.is_contiguous(memory_format=layout) and not p.is_contiguous() for p in weights)
    assert all(p.is_contiguous() for p in plain.parameters())
    # a batch in the default layout is computed in the weights' layout
    images = next(iter(batches(spatial)))[keys.IMAGE]
    with torch.no_grad():
        assert last.backbone(images).is_contiguous(memory_format=layout)
        assert plain.backbone(images).is_contiguous()
    for a, b in zip(plain.parameters(), last.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_a_bad_layout_value_is_refused_by_name() -> None:
    network = UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(4, 8), strides=(2,))
    with pytest.raises(ConfigError, match="channels_last 'yes' is not true, false or 'auto'"):
        FCN(network, channels_last="yes")
