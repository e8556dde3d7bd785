"""Registration of the plugin, its presets, and two training steps of each preset on small real images."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

import im2im_pix2pix
from im2im_cli.main import main
from im2im_cli.testing import printed_config
from im2im_core.testing import assert_exports_and_round_trips, assert_gone_when_plugins_disabled, assert_registers, read_preset
from im2im_pix2pix import plugin
from im2im_pix2pix.pix2pix import Pix2Pix

PRESETS = ("labelfree_3d_pix2pix", "synthetic_2d_from_mask", "staintransfer_2d_pix2pix")
NAMES = {"frameworks": ["Pix2Pix"], "presets": PRESETS}
#: shrink the networks of a preset so that two steps take a second: (generator width, discriminator width)
TINY = ["--model.init_args.generator.init_args.mult_chan", "4", "--model.init_args.discriminator.init_args.channels", "4"]


# ------------------------------------------------------------------ registration
def test_plugin_registers_its_names(registry) -> None:
    assert_registers(registry, "pix2pix", im2im_pix2pix.__version__, NAMES)
    assert registry.get("frameworks", "Pix2Pix") is Pix2Pix
    # the GAN parts it uses are the core's, registered by the built-ins
    assert registry.owners["backbones"]["patchgan"] == registry.owners["backbones"]["resnet_generator"] == "builtin"


def test_disabling_plugins_removes_its_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert_gone_when_plugins_disabled(monkeypatch, NAMES)


@pytest.mark.parametrize("path", sorted(plugin.PRESETS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_preset_parses(path: Path) -> None:
    config = read_preset(path)
    assert "prediction" in config
    assert config["model"]["class_path"] == "Pix2Pix"
    assert config["data"]["data_path"] is None  # the user gives --data.data_path
    args = config["model"]["init_args"]
    generator, discriminator = args["generator"]["init_args"], args["discriminator"]["init_args"]
    # conditional discriminator: input and output channels stacked; one spatial_dims for both
    assert discriminator["in_channels"] == generator["in_channels"] + generator["out_channels"]
    assert discriminator["spatial_dims"] == generator["spatial_dims"] == len(config["data"]["patch_size"])


@pytest.mark.parametrize("name", PRESETS)
def test_preset_builds_a_config(registry, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``im2im fit --config NAME --print_config`` resolves every class path of the preset."""
    printed = printed_config(name, capsys)
    assert printed["model"]["class_path"] == "im2im_pix2pix.pix2pix.Pix2Pix"
    assert printed["model"]["init_args"]["discriminator"]["class_path"] == "im2im_core.networks.patchgan.PatchGAN"


@pytest.mark.skipif(importlib.util.find_spec("im2im_stain") is None, reason="im2im-stain is not installed")
def test_staintransfer_2d_of_im2im_stain_builds_with_pix2pix(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """im2im-stain's staintransfer_2d gives only ``generator:``; the rest are Pix2Pix's defaults."""
    from im2im_core.plugins import reset_registry

    monkeypatch.setenv("IM2IM_PLUGINS", "pix2pix,stain")
    reset_registry()
    try:
        with pytest.raises(SystemExit):
            main(["fit", "--config", "staintransfer_2d", "--print_config"])
    finally:
        reset_registry()
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    assert model["class_path"] == "im2im_pix2pix.pix2pix.Pix2Pix"
    assert model["init_args"]["discriminator"] is None  # built from the generator's channels: 3 + 1


# ------------------------------------------------------------------ two training steps of each preset
def train_two_steps(preset: str, data: Path, patch: str, capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    """Two batches (four optimizer steps: discriminator and generator each twice)."""
    code = main(["fit", "--config", preset, "--data.data_path", str(data), "--data.patch_size", patch,
                 "--data.batch_size", "2", "--data.samples_per_image", "2", *TINY, *extra,
                 "--trainer.max_steps", "4", "--trainer.limit_val_batches", "0", "--trainer.accelerator", "cpu",
                 "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false"])
    assert code == 0, capsys.readouterr().err
    run = Path("im2im_runs") / preset
    assert (run / "config.yaml").is_file()
    import torch

    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 4
    assert [float(next(iter(s["state"].values()))["step"]) for s in checkpoint["optimizer_states"]] == [2.0, 2.0]
    return run


def test_labelfree_3d_pix2pix_trains(registry, data_3d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    # 16 x 32 x 32 patches: fnet depth 4 needs multiples of 16; PatchGAN n_layers 2 needs 12 pixels (3 needs 24)
    train_two_steps("labelfree_3d_pix2pix", data_3d, "[16,32,32]", capsys,
                    "--model.init_args.discriminator.init_args.n_layers", "2")


def test_synthetic_2d_from_mask_trains_and_predicts(registry, masks_to_images: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Trains two steps, then predicts a whole crop through the core from the checkpoint and its saved config."""
    from im2im_core.inference import predict

    monkeypatch.chdir(tmp_path)
    run = train_two_steps("synthetic_2d_from_mask", masks_to_images, "[64,64]", capsys)
    mask = (tifffile.imread(next((masks_to_images / "IM").glob("*.tif"))) > 0).astype(np.float32)
    output = predict(run / "checkpoints" / "last.ckpt", mask)
    assert output.shape == mask.shape and output.dtype == np.float32 and np.isfinite(output).all()


def test_staintransfer_2d_pix2pix_trains(registry, rgb_pairs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    train_two_steps("staintransfer_2d_pix2pix", rgb_pairs, "[64,64]", capsys)


def test_synthetic_2d_from_mask_exports_its_generator(registry, masks_to_images: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Binarized masks in (a binarize step), the generator's images out, the same from the package."""
    monkeypatch.chdir(tmp_path)
    run = train_two_steps("synthetic_2d_from_mask", masks_to_images, "[64,64]", capsys)
    assert_exports_and_round_trips(run / "checkpoints" / "last.ckpt", masks_to_images / "IM", tmp_path)
