"""The UTOM framework: the saliency term in training, its decaying weight, automatic thresholds."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from im2im_core.errors import ConfigError
from im2im_utom.saliency import soft_mask
from im2im_utom.utom import UTOM


class Batches(pl.LightningDataModule):
    """``batches`` unpaired batches of random images in [-1, 1]."""

    def __init__(self, batches: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.data = [{"IM": torch.rand(2, 1, 32, 32, generator=generator) * 2 - 1,
                      "GT": torch.rand(2, 1, 32, 32, generator=generator) * 2 - 1} for _ in range(batches)]

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self.data, batch_size=None)


class Record(pl.Callback):
    """The logged saliency weight and terms after each batch."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        metrics = trainer.callback_metrics
        self.rows.append({k: float(metrics[f"train_{k}"]) for k in ("rho", "saliency", "saliency_unweighted")})


def run(model: UTOM, datamodule: pl.LightningDataModule, **kwargs: Any) -> Record:
    record = Record()
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, callbacks=[record], **kwargs)
    trainer.fit(model, datamodule=datamodule)
    return record


def test_rho_decays_over_the_steps_of_the_run(tiny) -> None:
    """max_steps 8: 4 batches; rho at batch b is 10 exp(-5 b / 4), and the loss term is rho times the saliency loss."""
    record = run(tiny(UTOM, threshold_a=0.0, threshold_b=0.0, pool_size=0), Batches(4), max_steps=8)
    assert [r["rho"] for r in record.rows] == pytest.approx([10 * math.exp(-5 * b / 4) for b in range(4)])
    for row in record.rows:
        assert row["saliency"] == pytest.approx(row["rho"] * row["saliency_unweighted"], rel=1e-5)
        assert row["saliency_unweighted"] > 0


def test_rho_by_epoch(tiny) -> None:
    """rho_progress epoch: constant within an epoch, exp(-decay * epoch / epochs) across them."""
    model = tiny(UTOM, threshold_a=0.0, threshold_b=0.0, pool_size=0, rho0=2.0, rho_decay=1.0, rho_progress="epoch")
    record = run(model, Batches(2), max_epochs=3)
    assert [r["rho"] for r in record.rows] == pytest.approx([2.0 * math.exp(-e / 3) for e in (0, 0, 1, 1, 2, 2)])


def test_automatic_thresholds_are_otsus_of_the_training_images(tiny, unpaired_data) -> None:
    """Images of domain A (nuclei, percentiles to [-1, 1]); masks of domain B (-1 and 1): midpoint 0."""
    model = tiny(UTOM, pool_size=0, auto_threshold_samples=4)
    assert math.isnan(float(model.threshold_a)) and math.isnan(float(model.threshold_b))
    datamodule = unpaired_data()
    run(model, datamodule, max_steps=2)
    threshold_a, threshold_b = float(model.threshold_a), float(model.threshold_b)
    assert threshold_b == 0.0
    images = torch.cat([torch.as_tensor(p["IM"]).ravel() for i in range(4) for p in datamodule.trainer.train_dataloader
                        .dataset.domain_a[i]])
    assert images.min() < threshold_a < images.max()
    content = float(soft_mask(images.reshape(1, 1, 1, -1), threshold_a, 100.0, "bright").mean())
    assert 0.05 < content < 0.6  # nuclei: a minority of the pixels, but some


def test_given_thresholds_are_kept(tiny) -> None:
    model = tiny(UTOM, threshold_a=-0.25, threshold_b=0.5, pool_size=0)
    run(model, Batches(1), max_steps=2)
    assert (float(model.threshold_a), float(model.threshold_b)) == (-0.25, 0.5)
    assert {"threshold_a", "threshold_b"} <= set(model.state_dict())  # saved with the weights, for prediction too


def test_utom_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="polarity_b 'light'"):
        UTOM(polarity_b="light")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="rho_progress"):
        UTOM(rho_progress="batch")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lambda_identity"):  # CycleGAN's arguments are checked too
        UTOM(channels_a=3, lambda_identity=0.5)
