"""The CycleGAN framework: networks, loss terms, updates, learning rates, prediction, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from im2im_core.errors import ConfigError
from im2im_core.frameworks import FCN
from im2im_core.inference import predict
from im2im_core.networks import PatchGAN, ResNetGenerator
from im2im_core.networks.patchgan import network_channels
from im2im_utom.cyclegan import CycleGAN
from im2im_utom.schedules import ConstantThenLinearDecay
from im2im_utom.utom import UTOM


class Batches(pl.LightningDataModule):
    """``batches`` unpaired batches of random images in [-1, 1]."""

    def __init__(self, batches: int = 1, size: int = 32, channels: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.data = [{"IM": torch.rand(2, channels[0], size, size, generator=generator) * 2 - 1,
                      "GT": torch.rand(2, channels[1], size, size, generator=generator) * 2 - 1} for _ in range(batches)]

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self.data, batch_size=None)


def trainer(**kwargs: Any) -> pl.Trainer:
    settings = {"accelerator": "cpu", "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
                "enable_checkpointing": False, "max_epochs": 1}
    return pl.Trainer(**{**settings, **kwargs})


def snapshot(*modules: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for m in modules for p in m.parameters()]


def all_changed(before: list[torch.Tensor], *modules: nn.Module) -> bool:
    after = [p for m in modules for p in m.parameters()]
    return all(not torch.equal(b, a) for b, a in zip(before, after, strict=True) if a.numel() > 1)


# ------------------------------------------------------------------ networks
def test_default_networks_are_cyclegans() -> None:
    model = CycleGAN(channels_a=3, channels_b=1)
    assert isinstance(model.generator_ab, ResNetGenerator) and isinstance(model.discriminator_a, PatchGAN)
    assert (model.generator_ab.in_channels, model.generator_ab.out_channels) == (3, 1)
    assert (model.generator_ba.in_channels, model.generator_ba.out_channels) == (1, 3)
    assert network_channels(model.discriminator_a)[1] == 3  # judges domain-A images: 3 channels
    norms = [type(m) for m in model.discriminator_b.modules() if isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d))]
    assert norms and set(norms) == {nn.InstanceNorm2d}  # CycleGAN's discriminator: instance norm
    assert len(model.generator_ab.model) == 2 + 2 + 9 + 2 + 1  # 7x7, 2 down, 9 blocks, 2 up, 7x7 + tanh
    assert model.spatial_dims == 2 and model.pool_a.pool_size == model.pool_b.pool_size == 50
    assert (model.lambda_cycle, model.lambda_identity) == (10.0, 0.0)


def test_domains_are_read_from_the_generators(tiny) -> None:
    model = tiny(CycleGAN, spatial_dims=3)
    assert (model.spatial_dims, model.channels_a, model.channels_b) == (3, 1, 1)
    rgb = CycleGAN(generator_ab=ResNetGenerator(2, 3, 1, channels=4, n_blocks=1))
    assert (rgb.channels_a, rgb.channels_b) == (3, 1)
    assert rgb.generator_ba.in_channels == 1 and rgb.generator_ba.out_channels == 3  # built to fit
    assert network_channels(rgb.discriminator_a)[1] == 3


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="channels_a disagree: channels_a 1, generator_ab input 3"):
        CycleGAN(generator_ab=ResNetGenerator(2, 3, 1, channels=4, n_blocks=1), channels_a=1)
    with pytest.raises(ConfigError, match="channels_b disagree"):
        CycleGAN(generator_ab=ResNetGenerator(2, 1, 1, channels=4, n_blocks=1),
                 generator_ba=ResNetGenerator(2, 3, 1, channels=4, n_blocks=1))
    with pytest.raises(ConfigError, match="lambda_identity 0.5 needs domains with equal channels"):
        CycleGAN(channels_a=3, channels_b=1, lambda_identity=0.5)
    with pytest.raises(ConfigError, match="spatial_dims must be 2 or 3"):
        CycleGAN(spatial_dims=1)
    with pytest.raises(ConfigError, match="direction"):
        CycleGAN(direction="AB")  # type: ignore[arg-type]


# ------------------------------------------------------------------ loss terms by hand
def scaling(factor: float) -> nn.Conv2d:
    """A 1x1 convolution that multiplies its input by ``factor``: a generator we can compute by hand."""
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(factor)
        conv.bias.zero_()
    return conv


def zero_discriminator() -> nn.Conv2d:
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
    return conv


def test_generator_loss_terms_by_hand() -> None:
    """G_AB(x) = 2x, G_BA(x) = 0.25x, D = 0: rec_a = 0.5a, rec_b = 0.5b; LSGAN (0 - 1)^2 = 1.

    cycle_a = 10 * mean|0.5a - a| = 5 mean|a|; identity_a = 10 * 0.5 * mean|0.25a - a| = 3.75 mean|a|;
    identity_b = 5 * mean|2b - b| = 5 mean|b|.
    """
    model = CycleGAN(generator_ab=scaling(2.0), generator_ba=scaling(0.25), discriminator_a=zero_discriminator(),
                     discriminator_b=zero_discriminator(), lambda_identity=0.5)
    a, b = torch.tensor([[[[1.0, -2.0]]]]), torch.tensor([[[[0.5, 0.25]]]])
    losses = model.generator_losses(a, b, model.generator_ba(b), model.generator_ab(a))
    expected = {"gan_ab": 1.0, "gan_ba": 1.0, "cycle_a": 5 * 1.5, "cycle_b": 5 * 0.375,
                "identity_a": 3.75 * 1.5, "identity_b": 5 * 0.375}
    assert {k: float(v.detach()) for k, v in losses.items()} == pytest.approx(expected)
    d_loss = model._discriminator_loss(model.discriminator_a, a, model.generator_ba(b))
    assert float(d_loss) == pytest.approx(0.5 * (1.0 + 0.0))  # real: (0 - 1)^2, fake: (0 - 0)^2


# ------------------------------------------------------------------ training updates
def test_one_batch_updates_all_four_networks(tiny) -> None:
    model = tiny(CycleGAN, pool_size=3, lambda_identity=0.5)
    before = snapshot(model)
    fit = trainer(max_steps=2)
    fit.fit(model, datamodule=Batches(1))
    assert fit.global_step == 2  # one batch: the generators' step and the discriminators'
    assert all_changed(before, model)  # every weight of both generators and both discriminators moved
    g_opt, d_opt = fit.optimizers
    assert {id(p) for group in g_opt.param_groups for p in group["params"]} == \
        {id(p) for p in [*model.generator_ab.parameters(), *model.generator_ba.parameters()]}
    assert {id(p) for group in d_opt.param_groups for p in group["params"]} == \
        {id(p) for p in [*model.discriminator_a.parameters(), *model.discriminator_b.parameters()]}
    assert g_opt.param_groups[0]["betas"] == (0.5, 0.999)
    assert {float(s["step"]) for o in (g_opt, d_opt) for s in o.state.values()} == {1.0}
    logged = fit.callback_metrics
    assert {"train_loss", "train_loss_d_a", "train_loss_d_b", "train_gan_ab", "train_gan_ba", "train_cycle_a",
            "train_cycle_b", "train_identity_a", "train_identity_b"} <= set(logged)
    assert all(torch.isfinite(v) for v in logged.values())
    assert len(model.pool_a) == len(model.pool_b) == 2  # the batch's generated images are pooled
    assert all(p.requires_grad for p in model.parameters())  # toggling left nothing frozen


def test_learning_rate_is_constant_then_decays_per_epoch(tiny) -> None:
    """Default schedule: half of the run constant, then linear decay; ticked once per epoch."""
    model = tiny(CycleGAN, pool_size=0)
    seen: list[float] = []

    class Rates(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    fit = trainer(max_epochs=4, callbacks=[Rates()])
    fit.fit(model, datamodule=Batches(1))
    scheduler = fit.lr_scheduler_configs[0].scheduler
    assert isinstance(scheduler, ConstantThenLinearDecay) and (scheduler.constant, scheduler.decay) == (2, 2)
    # Lightning calls on_train_epoch_start before the first batch ticks the schedulers: the rate at
    # the start of epoch e is the one of epoch e - 1; the last one is read from the optimizer
    rates = [*seen[1:], fit.optimizers[0].param_groups[0]["lr"]]
    assert rates == pytest.approx([2e-4, 2e-4, 2e-4 * 2 / 3, 2e-4 / 3])


def test_learning_rate_per_batch(tiny) -> None:
    model = tiny(CycleGAN, pool_size=0, lr_interval="step",
                 discriminator_lr_scheduler=lambda o: ConstantThenLinearDecay(o, constant=1, decay=1))
    fit = trainer(max_steps=8)  # 4 batches
    fit.fit(model, datamodule=Batches(4))
    generator, discriminator = (c.scheduler for c in fit.lr_scheduler_configs)
    assert (generator.constant, generator.decay) == (2, 2) and generator.last_epoch == 3
    assert fit.optimizers[0].param_groups[0]["lr"] == pytest.approx(2e-4 / 3)
    assert fit.optimizers[1].param_groups[0]["lr"] == 0.0  # past the end of its schedule: 0, never negative


# ------------------------------------------------------------------ prediction through the core
def test_prediction_uses_the_generator_of_the_direction(tiny) -> None:
    image = np.random.default_rng(0).random((72, 80), dtype=np.float32) * 2 - 1
    model = tiny(CycleGAN, roi_size=[32, 32]).eval()
    a_to_b = predict(model, image)
    assert a_to_b.dtype == np.float32 and a_to_b.shape == image.shape
    np.testing.assert_allclose(a_to_b, predict(model.generator_ab, image, roi_size=[32, 32], overlap=0.25), atol=1e-5)
    model.direction = "BtoA"
    np.testing.assert_allclose(predict(model, image), predict(model.generator_ba, image, roi_size=[32, 32], overlap=0.25),
                               atol=1e-5)
    model.direction, model.output_threshold = "AtoB", 0.0
    mask = predict(model, image)
    assert mask.dtype == np.uint8 and np.array_equal(mask, (a_to_b > 0).astype(np.uint8))
    assert CycleGAN.predict_step is FCN.predict_step  # the base's: the core's writer predicts


# ------------------------------------------------------------------ resume
class StartRecorder(pl.Callback):
    """What a fit starts from, after any checkpoint is restored."""

    def __init__(self) -> None:
        self.start: dict[str, Any] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = {
            "global_step": trainer.global_step,
            "adam_steps": [sorted({float(s["step"]) for s in o.state.values()}) for o in trainer.optimizers],
            "adam_moment": float(next(iter(trainer.optimizers[1].state.values()))["exp_avg"].abs().sum())
            if trainer.optimizers[1].state else 0.0,
            "scheduler_ticks": [c.scheduler.last_epoch for c in trainer.lr_scheduler_configs],
            "lrs": [o.param_groups[0]["lr"] for o in trainer.optimizers],
            "pools": [len(pl_module.pool_a), len(pl_module.pool_b)],
            "thresholds": [float(pl_module.threshold_a), float(pl_module.threshold_b)],
        }


class StopAfter(pl.Callback):
    """Interrupt a run after ``steps`` optimizer steps, as a killed job would be."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step >= self.steps:
            trainer.should_stop = True


def fit_utom(tiny, unpaired_data, ckpt_dir: Path, stop_after: int | None = None,  # noqa: ANN001
             ckpt_path: str | None = None) -> tuple[pl.Trainer, StartRecorder]:
    """UTOM for 12 optimizer steps (6 batches), checkpoints every 2 steps, maybe interrupted."""
    pl.seed_everything(0)
    model = tiny(UTOM, pool_size=3, lr_interval="step", threshold_b=0.0)
    recorder = StartRecorder()
    callbacks = [ModelCheckpoint(dirpath=ckpt_dir, save_last=True, every_n_train_steps=2), recorder]
    fit = trainer(max_steps=12, max_epochs=None, enable_checkpointing=True,
                  callbacks=callbacks + ([StopAfter(stop_after)] if stop_after else []))
    fit.fit(model, datamodule=unpaired_data(), ckpt_path=ckpt_path)
    return fit, recorder


def test_resume_restores_both_optimizers_schedulers_pools_and_thresholds(tiny, unpaired_data, tmp_path: Path) -> None:
    """4 domain-A images, one per batch. Interrupted after 3 batches (mid-epoch), resumed to the end (6 batches)."""
    ckpt_dir = tmp_path / "ckpt"
    first, _ = fit_utom(tiny, unpaired_data, ckpt_dir, stop_after=6)
    saved = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 6
    assert [float(next(iter(o["state"].values()))["step"]) for o in saved["optimizer_states"]] == [3.0, 3.0]
    # default schedule over the run's 6 batches: 3 constant, 3 decaying; 3 batches done: ticks 0, 1, 2
    assert [(s["constant"], s["decay"], s["last_epoch"]) for s in saved["lr_schedulers"]] == [(3, 3, 2)] * 2
    threshold_a = float(saved["state_dict"]["threshold_a"])
    assert threshold_a == pytest.approx(float(first.lightning_module.threshold_a)) and -1 < threshold_a < 1
    moment = float(next(iter(saved["optimizer_states"][1]["state"].values()))["exp_avg"].abs().sum())

    fit, recorder = fit_utom(tiny, unpaired_data, ckpt_dir, ckpt_path=str(ckpt_dir / "last.ckpt"))
    start = recorder.start
    assert start["global_step"] == 6
    assert start["adam_steps"] == [[3.0], [3.0]]  # both optimizers' step counts came back ...
    assert start["adam_moment"] == pytest.approx(moment)  # ... and their moments
    assert start["scheduler_ticks"] == [2, 2] and start["lrs"] == pytest.approx([2e-4, 2e-4])
    assert start["pools"] == [3, 3]  # the image pools are in the checkpoint
    assert start["thresholds"] == pytest.approx([threshold_a, 0.0])  # kept, not chosen again
    final = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["global_step"] == fit.global_step == 12
    assert [float(next(iter(o["state"].values()))["step"]) for o in final["optimizer_states"]] == [6.0, 6.0]
    assert [(s["constant"], s["decay"], s["last_epoch"]) for s in final["lr_schedulers"]] == [(3, 3, 5)] * 2
    assert [o.param_groups[0]["lr"] for o in fit.optimizers] == pytest.approx([2e-4 / 4] * 2)  # 1 - 3 / 4 at tick 5
    json.dumps(start)
