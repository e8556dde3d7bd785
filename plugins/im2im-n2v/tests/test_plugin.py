"""Registration of the plugin, its presets, and two training steps of each preset on small real images."""

from __future__ import annotations

import shutil
from pathlib import Path

import im2im_n2v
import numpy as np
import pytest
import tifffile
from im2im_n2v import plugin
from im2im_n2v.n2v import N2V
from im2im_n2v.unet import N2VUNet

from im2im_cli.main import main
from im2im_cli.testing import printed_config
from im2im_core.inference.checkpoint import training_statistics
from im2im_core.testing import assert_exports_and_round_trips, assert_gone_when_plugins_disabled, assert_registers, read_preset

PRESETS = ("denoise_n2v_2d", "denoise_n2v_3d", "denoise_n2v2_2d", "denoise_structn2v_2d")
NAMES = {"frameworks": ["N2V"], "backbones": ["n2v_unet"], "presets": PRESETS}
#: shrink the U-Net of a preset so that two steps take a second
TINY = ["--model.init_args.backbone.init_args.features", "[4,8]"]


# ------------------------------------------------------------------ registration
def test_plugin_registers_its_names(registry) -> None:
    assert_registers(registry, "n2v", im2im_n2v.__version__, NAMES)
    assert registry.get("frameworks", "N2V") is N2V
    assert registry.get("backbones", "n2v_unet") is N2VUNet


def test_disabling_plugins_removes_its_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert_gone_when_plugins_disabled(monkeypatch, NAMES)


@pytest.mark.parametrize("path", sorted(plugin.PRESETS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_preset_parses(path: Path) -> None:
    config = read_preset(path)
    assert "prediction" in config
    assert config["model"]["class_path"] == "N2V"
    assert config["data"]["data_path"] is None  # the user gives --data.data_path
    assert config["data"]["target"] == "none"
    assert len(config["data"]["patch_size"]) == len(config["data"]["dims"])


@pytest.mark.parametrize("name", PRESETS)
def test_preset_builds_a_config(registry, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``im2im fit --config NAME --print_config`` resolves every class path of the preset."""
    printed = printed_config(name, capsys)
    assert printed["model"]["class_path"] == "im2im_n2v.n2v.N2V"
    assert printed["model"]["init_args"]["backbone"]["class_path"] == "im2im_n2v.unet.N2VUNet"


# ------------------------------------------------------------------ two training steps of each preset
def train_two_steps(preset: str, data: Path, patch: str, capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    """Two training steps and one validation of the preset; returns its run folder."""
    code = main(["fit", "--config", preset, "--data.data_path", str(data), "--data.patch_size", patch,
                 "--data.batch_size", "4", "--data.samples_per_image", "2", *TINY, *extra,
                 "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.check_val_every_n_epoch", "1",
                 "--trainer.accelerator", "cpu", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false"])
    assert code == 0, capsys.readouterr().err
    run = Path("im2im_runs") / preset
    import torch

    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 2
    # the presets average the weights (EMAWeightAveraging): its state is saved with the checkpoint, whose
    # state_dict holds the average (at the end of training Lightning also swaps the average into the model)
    assert "current_model_state" in checkpoint and "averaging_state" in checkpoint
    assert checkpoint["state_dict"].keys() == checkpoint["current_model_state"].keys()
    # the presets z-score by the training images' mean and std, kept with the checkpoint for prediction
    stats = training_statistics(checkpoint)
    assert stats is not None and all(s > 0 for s in stats.std)  # one pair per channel
    return run


def predict_folder(run: Path, images: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[Path]:
    """``im2im predict`` of a folder with the run's last checkpoint (its stored config); the outputs."""
    code = main(["predict", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--data.predict_path", str(images),
                 "--prediction.output_dir", "outputs", "--trainer.accelerator", "cpu",
                 "--trainer.enable_progress_bar", "false", *extra])
    assert code == 0, capsys.readouterr().err
    return sorted(Path("outputs").iterdir())


@pytest.mark.parametrize("preset", ["denoise_n2v_2d", "denoise_n2v2_2d", "denoise_structn2v_2d"])
def test_2d_presets_train_and_predict_in_the_input_units(registry, preset: str, frames: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    run = train_two_steps(preset, frames, "[32,32]", capsys)
    outputs = predict_folder(run, frames, capsys)
    assert len(outputs) == 4
    output, image = tifffile.imread(outputs[0]), tifffile.imread(frames / "frame0.tif")
    assert output.shape == image.shape and output.dtype == np.float32
    # the normalization is undone: outputs are intensities of the camera's range (about 90 to 180),
    # not of 0..1 (an untrained network's outputs are off, but by far less than the range)
    assert 50 < float(output.mean()) < 250
    # from Python, a checkpoint alone gives the same normalization ("auto": the statistics it stores)
    from im2im_core.inference import predict_file

    again = predict_file(run / "checkpoints" / "last.ckpt", frames / "frame0.tif", "from_python", dims="YX")
    np.testing.assert_allclose(tifffile.imread(again), output, rtol=1e-4, atol=1e-3)


def test_a_time_series_trains_frame_by_frame_and_predicts_with_its_time_axis(registry, timelapse: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    run = train_two_steps("denoise_n2v_2d", timelapse, "[32,32]", capsys, "--data.dims", "TYX")
    (output,) = predict_folder(run, timelapse, capsys)
    image = tifffile.imread(next(timelapse.iterdir()))
    assert tifffile.imread(output).shape == image.shape == (8, 96, 96)
    # streamed to OME-Zarr, window band by window band, with flips as TTA: the same axes, the input's units
    shutil.rmtree("outputs")
    (zarr_output,) = predict_folder(run, timelapse, capsys, "--prediction.output_format", "ome-zarr",
                                    "--prediction.inference.tta", "flips")
    from im2im_core.data.readers import BioioReader

    streamed = BioioReader(dims="TYX").read(zarr_output).numpy()
    assert streamed.shape == image.shape and 50 < float(streamed.mean()) < 250


def test_3d_preset_trains_on_stacks_and_ignores_their_targets(registry, stacks: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="data.target is none: the targets found in .* are not used"):
        run = train_two_steps("denoise_n2v_3d", stacks, "[8,32,32]", capsys)
    outputs = predict_folder(run, stacks / "IM", capsys, "--data.dims", "ZYX")
    assert tifffile.imread(outputs[0]).shape == tifffile.imread(stacks / "IM" / "nucleus_0.tif").shape == (16, 64, 64)


@pytest.mark.parametrize("mode", ["joint", "independent"])
def test_two_channels_train_jointly_or_each_on_its_own(registry, mode: str, two_channels: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    if mode == "joint":  # data.C tells im2im fit the network's channels: 2 in, 2 out
        extra = ["--data.dims", "CYX", "--data.C", "[0,1]"]
    else:  # a one-channel network for each channel (data.C left out: it would ask for 2 channels in)
        extra = ["--data.dims", "CYX", "--model.init_args.channels", "independent",
                 "--model.init_args.backbone.init_args.in_channels", "1",
                 "--model.init_args.backbone.init_args.out_channels", "1"]
    run = train_two_steps("denoise_n2v_2d", two_channels, "[32,32]", capsys, *extra)
    outputs = predict_folder(run, two_channels, capsys)
    assert tifffile.imread(outputs[0]).shape == (2, 96, 96)


def test_denoise_n2v2_2d_exports_and_restores_the_input_units_from_the_package(registry, frames: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Training-set z-score in, its inverse out (scale_linear): the same denoised frames from the package."""
    monkeypatch.chdir(tmp_path)
    run = train_two_steps("denoise_n2v2_2d", frames, "[32,32]", capsys)
    assert_exports_and_round_trips(run / "checkpoints" / "last.ckpt", frames, tmp_path)
