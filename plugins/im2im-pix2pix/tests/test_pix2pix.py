"""The Pix2Pix framework: training updates, losses, FCN start, core prediction, checkpoint resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from im2im_core.data import Im2ImDataModule
from im2im_core.data.normalization import PercentileNormalized
from im2im_core.data.transforms import Binarized
from im2im_core.errors import ConfigError, DataError
from im2im_core.frameworks import FCN, Im2ImFramework
from im2im_core.inference import predict, predict_batch
from im2im_core.networks import FNet, PatchGAN
from im2im_core.testing import copy_pairs
from im2im_pix2pix.pix2pix import Pix2Pix

#: BBBC039 nuclei crops with masks, bundled with the core


def tiny_generator(spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 1) -> FNet:
    return FNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, depth=2, mult_chan=4)


def tiny_pix2pix(**kwargs: Any) -> Pix2Pix:
    torch.manual_seed(0)
    kwargs.setdefault("generator", tiny_generator())
    kwargs.setdefault("discriminator", PatchGAN(2, 2, channels=4, n_layers=2))
    return Pix2Pix(**kwargs)


def batch(n: int = 2, size: int = 32, spatial_dims: int = 2) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    image = torch.rand(n, 1, *[size] * spatial_dims)
    return {"IM": image, "GT": image.roll(3, dims=-1) ** 2}


def parameters(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return all(not torch.equal(b, p) for b, p in zip(before, module.parameters(), strict=True) if p.numel() > 1)


class OneBatch(pl.LightningDataModule):
    def __init__(self, data: dict[str, torch.Tensor], batches: int = 1) -> None:
        super().__init__()
        self.data, self.batches = data, batches

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        n = len(self.data["IM"])
        samples = [{key: value[i] for key, value in self.data.items()} for i in range(n)] * self.batches
        return torch.utils.data.DataLoader(samples, batch_size=n)


def fit(model: Pix2Pix, data: dict[str, torch.Tensor], steps: int) -> pl.Trainer:
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=OneBatch(data, batches=steps))
    return trainer


# ------------------------------------------------------------------ construction
def test_default_discriminator_fits_the_generator() -> None:
    model = Pix2Pix(generator=tiny_generator(3, in_channels=3, out_channels=2), spatial_dims=3)
    assert isinstance(model.discriminator, PatchGAN)
    assert model.discriminator.spatial_dims == 3 and model.discriminator.n_layers == 3
    first = next(m for m in model.discriminator.modules() if isinstance(m, torch.nn.Conv3d))
    assert first.in_channels == 3 + 2  # conditional: input and output stacked


def test_feature_matching_needs_features() -> None:
    with pytest.raises(ConfigError, match="features"):
        tiny_pix2pix(discriminator=torch.nn.Conv2d(2, 1, 3), feature_matching=10.0)


def test_unknown_gan_loss() -> None:
    with pytest.raises(ConfigError, match="unknown GAN loss"):
        tiny_pix2pix(gan_loss="wasserstein")


# ------------------------------------------------------------------ training
@pytest.mark.parametrize(("gan_loss", "options"), [
    ("least_squares", {}),
    ("bce", {"pool_size": 4}),
    ("hinge", {"feature_matching": 10.0, "discriminator": PatchGAN(2, 2, channels=4, n_layers=1, num_d=2, norm="INSTANCE")}),
], ids=["lsgan", "bce-pool", "hinge-multiscale-fm"])
def test_one_batch_updates_generator_and_discriminator_once(gan_loss: str, options: dict[str, Any]) -> None:
    model = tiny_pix2pix(gan_loss=gan_loss, **options)
    g_before, d_before = parameters(model.generator), parameters(model.discriminator)
    trainer = fit(model, batch(), steps=2)
    assert trainer.global_step == 2  # one discriminator step and one generator step
    assert changed(g_before, model.generator) and changed(d_before, model.discriminator)
    g_opt, d_opt = trainer.optimizers
    assert {float(s["step"]) for s in g_opt.state.values()} == {1.0} == {float(s["step"]) for s in d_opt.state.values()}
    assert {id(p) for group in g_opt.param_groups for p in group["params"]} == {id(p) for p in model.generator.parameters()}
    assert g_opt.param_groups[0]["lr"] == 2e-4 and g_opt.param_groups[0]["betas"] == (0.5, 0.999)
    logged = trainer.callback_metrics
    assert {"train_loss", "train_loss_d", "train_gan_g", "train_l1"} <= set(logged)
    assert all(torch.isfinite(logged[k]) for k in logged)
    assert ("train_feature_matching" in logged) == ("feature_matching" in options)
    if "pool_size" in options:  # the pool keeps (input, output) pairs: an output comes back with its own input
        assert len(model.pool) == 2 and model.pool.images[0].shape == (1 + 1, 32, 32)
    assert all(p.requires_grad for p in model.parameters())  # toggling the optimizers left nothing frozen


def test_bf16_mixed_precision_trains() -> None:
    """BCE on logits is autocast-safe (sigmoid + BCELoss, as in MONAI's adversarial loss, is not)."""
    model = tiny_pix2pix(gan_loss="bce")
    trainer = pl.Trainer(accelerator="cpu", precision="bf16-mixed", max_steps=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=OneBatch(batch(), batches=1))
    assert trainer.global_step == 2 and all(torch.isfinite(v) for v in trainer.callback_metrics.values())


def test_l1_weight_pulls_the_generator_to_the_target() -> None:
    """With a large L1 weight, a few batches on one pair bring the output closer to the target."""
    model = tiny_pix2pix(lambda_l1=100.0, generator_optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
    data = batch()
    with torch.no_grad():
        before = float(torch.nn.functional.l1_loss(model.generator.eval()(data["IM"]), data["GT"]))
    fit(model.train(), data, steps=20)
    with torch.no_grad():
        after = float(torch.nn.functional.l1_loss(model.generator.eval()(data["IM"]), data["GT"]))
    assert after < 0.5 * before


# ------------------------------------------------------------------ starting from an FCN
def test_generator_starts_from_an_fcn_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(5)
    fcn = FCN(backbone=tiny_generator(), task="regression")
    path = tmp_path / "fcn.ckpt"
    torch.save({"state_dict": fcn.state_dict(), "global_step": 10}, path)
    model = tiny_pix2pix(generator_checkpoint=str(path))
    assert not torch.equal(model.generator.conv_more[0].conv.weight if hasattr(model.generator, "conv_more")
                           else next(model.generator.parameters()), next(fcn.backbone.parameters()))
    model.setup("fit")
    for (name, mine), theirs in zip(model.generator.state_dict().items(), fcn.backbone.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs), name
    # loaded once: a later setup (validate after fit) keeps the trained weights
    with torch.no_grad():
        next(model.generator.parameters()).add_(1.0)
    model.setup("validate")
    assert not torch.equal(next(model.generator.parameters()), next(fcn.backbone.parameters()))


def test_generator_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        tiny_pix2pix(generator_checkpoint=str(tmp_path / "missing.ckpt")).setup("fit")
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(1)}}, other)
    with pytest.raises(DataError, match="no backbone"):
        tiny_pix2pix(generator_checkpoint=str(other)).setup("fit")
    wider = tmp_path / "wider.ckpt"
    wide_fcn = FCN(backbone=FNet(spatial_dims=2, in_channels=1, out_channels=1, depth=2, mult_chan=8))
    torch.save({"state_dict": wide_fcn.state_dict()}, wider)
    with pytest.raises(ConfigError, match="does not fit the generator"):
        tiny_pix2pix(generator_checkpoint=str(wider)).setup("fit")


# ------------------------------------------------------------------ prediction through the core
def test_prediction_is_the_generator_through_the_core_sliding_window() -> None:
    model = tiny_pix2pix(roi_size=[32, 32]).eval()
    image = np.random.default_rng(0).random((80, 72), dtype=np.float32)
    framework_output = predict(model, image)
    network_output = predict(model.generator, image, roi_size=[32, 32], overlap=0.25)
    assert framework_output.shape == (80, 72) and framework_output.dtype == np.float32
    np.testing.assert_allclose(framework_output, network_output, atol=1e-5)
    assert Pix2Pix.predict_step is FCN.predict_step is Im2ImFramework.predict_step  # the core predicts
    [whole] = predict_batch(model, {"IM": torch.from_numpy(image)[None, None]})
    np.testing.assert_allclose(whole[0], framework_output, atol=1e-5)


# ------------------------------------------------------------------ resume
class StartRecorder(pl.Callback):
    """What a fit starts from, after any checkpoint is restored."""

    def __init__(self) -> None:
        self.start: dict[str, Any] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = {
            "global_step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "adam_steps": [sorted({float(s["step"]) for s in o.state.values()}) for o in trainer.optimizers],
            "scheduler_epochs": [c.scheduler.last_epoch for c in trainer.lr_scheduler_configs],
            "lrs": [o.param_groups[0]["lr"] for o in trainer.optimizers],
            "pool": len(pl_module.pool),
        }


def fit_from_folder(data: Path, ckpt_dir: Path, max_steps: int, ckpt_path: str | None = None) -> tuple[pl.Trainer, StartRecorder]:
    pl.seed_everything(0)
    model = tiny_pix2pix(pool_size=3,
                         generator_lr_scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5),
                         discriminator_lr_scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.9))
    datamodule = Im2ImDataModule(data_path=str(data), target="intensity", patch_size=[32, 32], samples_per_image=1,
                                 batch_size=1, val_fraction=0,
                                 normalize=[Binarized(["IM"]), PercentileNormalized(["GT"])])
    recorder = StartRecorder()
    checkpoints = ModelCheckpoint(dirpath=ckpt_dir, filename="{step}", save_last=True, save_top_k=-1, every_n_train_steps=2)
    trainer = pl.Trainer(accelerator="cpu", max_steps=max_steps, max_epochs=100, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, callbacks=[checkpoints, recorder])
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer, recorder


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """4 images, 1 per batch: 4 batches (8 optimizer steps) an epoch; one epoch, a checkpoint every batch."""
    folder = tmp_path_factory.mktemp("resume")
    data = copy_pairs(folder / "data", slice(0, 4), swap=True)
    fit_from_folder(data, folder / "first", max_steps=8)
    return data, folder / "first"


@pytest.mark.parametrize("first_batches", [3, 4], ids=["mid-epoch", "after-last-batch-of-epoch"])
def test_resume_restores_both_optimizers_schedulers_pool_and_step(first_run: tuple[Path, Path], tmp_path: Path,
                                                                  first_batches: int) -> None:
    """Resume from the checkpoint after ``first_batches`` batches and train to 6 batches (12 steps)."""
    data, first = first_run
    ckpt_dir = tmp_path / "ckpt"
    ckpt_dir.mkdir()
    start_from = shutil.copy(first / f"step={2 * first_batches}.ckpt", ckpt_dir / "start.ckpt")
    saved = torch.load(start_from, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 2 * first_batches
    assert [float(next(iter(o["state"].values()))["step"]) for o in saved["optimizer_states"]] == [first_batches] * 2
    assert [s["last_epoch"] for s in saved["lr_schedulers"]] == [0, 0]

    trainer, recorder = fit_from_folder(data, ckpt_dir, max_steps=12, ckpt_path=str(start_from))
    start = recorder.start
    assert start["global_step"] == 2 * first_batches
    assert start["adam_steps"] == [[float(first_batches)]] * 2  # both optimizers' moments and step counts came back
    assert start["scheduler_epochs"] == [0, 0] and start["lrs"] == [2e-4, 2e-4]
    assert start["pool"] == 3  # the image pool is in the checkpoint too
    final = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["global_step"] == trainer.global_step == 12  # 6 batches in all, whatever the interruption
    assert [float(next(iter(o["state"].values()))["step"]) for o in final["optimizer_states"]] == [6.0, 6.0]
    # one epoch finished (4 batches): each scheduler stepped exactly once, also across the restart
    assert [s["last_epoch"] for s in final["lr_schedulers"]] == [1, 1]
    assert [o.param_groups[0]["lr"] for o in trainer.optimizers] == pytest.approx([1e-4, 1.8e-4])
    json.dumps(start)  # plain numbers only


class _CreatesAFile:
    """Unpickling this calls ``open(path, "w")``: a checkpoint that runs code when loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return open, (str(self.path), "w")


def test_a_generator_checkpoint_that_runs_code_is_refused(tmp_path: Path) -> None:
    from im2im_pix2pix.generator_checkpoint import load_generator_weights

    marker, evil = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"generator.x": torch.zeros(1)}, "payload": _CreatesAFile(marker)}, evil)
    with pytest.raises(DataError, match="generator_checkpoint: checkpoint .*evil.ckpt refused"):
        load_generator_weights(tiny_generator(), evil)
    assert not marker.exists()
