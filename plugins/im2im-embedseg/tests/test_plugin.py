"""Registration of the plugin, its presets, two training steps of each preset, and prediction."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

import im2im_embedseg
from im2im_cli.main import main
from im2im_cli.testing import printed_config
from im2im_core.testing import assert_exports_and_round_trips, assert_gone_when_plugins_disabled, assert_registers, read_preset
from im2im_embedseg import plugin

PRESETS = ("instanceseg_2d", "instanceseg_3d")
NAMES = {"frameworks": ["EmbedSeg"], "backbones": ["branched_erfnet"], "presets": PRESETS}


# ------------------------------------------------------------------ registration
def test_plugin_registers_its_names(registry) -> None:
    assert_registers(registry, "embedseg", im2im_embedseg.__version__, NAMES)
    assert registry.get("frameworks", "EmbedSeg").__module__ == "im2im_embedseg.framework"
    assert registry.get("backbones", "branched_erfnet").__module__ == "im2im_embedseg.erfnet"


def test_disabling_plugins_removes_its_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert_gone_when_plugins_disabled(monkeypatch, NAMES)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_parses(name: str) -> None:
    path = plugin.PRESETS / f"{name}.yaml"
    config = read_preset(path)
    assert config["data"]["target"] == "labels" and config["data"]["data_path"] is None
    dims = len(config["data"]["patch_size"])
    assert config["model"]["init_args"]["backbone"]["init_args"]["out_channels"] == 2 * dims + 1


@pytest.mark.parametrize("name", PRESETS)
def test_preset_builds_a_config(registry, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``im2im fit --config NAME --print_config`` resolves every class path of the preset."""
    printed = printed_config(name, capsys)
    assert printed["model"]["class_path"] == "im2im_embedseg.framework.EmbedSeg"
    assert printed["model"]["init_args"]["backbone"]["class_path"] == "im2im_embedseg.erfnet.BranchedERFNet"


# ------------------------------------------------------------------ two training steps of each preset
def fit_two_steps(preset: str, data: Path, patch: str, capsys: pytest.CaptureFixture[str]) -> Path:
    code = main(["fit", "--config", preset, "--data.data_path", str(data), "--data.patch_size", patch,
                 "--data.batch_size", "2", "--data.samples_per_image", "2", "--trainer.max_steps", "2",
                 "--trainer.max_epochs", "-1", "--trainer.check_val_every_n_epoch", "1",
                 "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
                 "--trainer.accelerator", "cpu", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false"])
    assert code == 0, capsys.readouterr().err
    checkpoint = Path("im2im_runs") / preset / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    return checkpoint


def test_instanceseg_2d_trains_and_predicts(registry, data_2d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """BBBC039 crops (instance labels): 2 steps, one validation (AP), then ``im2im predict``."""
    monkeypatch.chdir(tmp_path)
    checkpoint = fit_two_steps("instanceseg_2d", data_2d, "[64,64]", capsys)
    loops = torch.load(checkpoint, map_location="cpu", weights_only=True)["loops"]["fit_loop"]
    assert loops["epoch_loop.val_loop.batch_progress"]["total"]["completed"] == 1  # validation_step ran
    (tmp_path / "predict").mkdir()
    first = sorted((data_2d / "IM").glob("*.tif"))[0]
    shutil.copy(first, tmp_path / "predict" / first.name)
    code = main(["predict", "--config", "instanceseg_2d", "--ckpt_path", str(checkpoint),
                 "--data.predict_path", str(tmp_path / "predict"), "--data.patch_size", "[64,64]",
                 "--prediction.output_dir", "out", "--prediction.inference.tta", "flips",
                 "--prediction.inference.roi_size", "[128,128]",
                 "--trainer.accelerator", "cpu", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"])
    assert code == 0, capsys.readouterr().err
    outputs = sorted(Path("out").glob("*_pred.ome.tiff"))
    assert [p.name for p in outputs] == [f"{first.stem}_pred.ome.tiff"]
    labels = tifffile.imread(outputs[0])
    assert labels.dtype == np.uint16 and labels.squeeze().shape == (256, 256)


def test_instanceseg_3d_trains(registry, data_3d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """NEUBIAS z-stacks (16x64x64) with labels from their confocal twins: 2 steps and a validation."""
    monkeypatch.chdir(tmp_path)
    fit_two_steps("instanceseg_3d", data_3d, "[8,32,32]", capsys)


def test_instanceseg_2d_exports_and_predicts_the_same_labels_from_the_package(registry, data_2d: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The package holds the decoded network; im2im clusters its outputs as it does the checkpoint's."""
    monkeypatch.chdir(tmp_path)
    checkpoint = fit_two_steps("instanceseg_2d", data_2d, "[64,64]", capsys)
    assert_exports_and_round_trips(checkpoint, data_2d / "IM", tmp_path)
