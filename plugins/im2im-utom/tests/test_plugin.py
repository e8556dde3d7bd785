"""Registration of the plugin, its presets, and two training steps of each preset on small real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml

import im2im_utom
from im2im_cli.main import main
from im2im_core.testing import assert_exports_and_round_trips, assert_gone_when_plugins_disabled, assert_registers, read_preset
from im2im_utom import plugin
from im2im_utom.cyclegan import CycleGAN
from im2im_utom.utom import UTOM

TASKS = ("unpaired_seg_2d", "unpaired_modality_3d", "unpaired_stain_2d")
PRESETS = tuple(f"{task}_{variant}" for task in TASKS for variant in ("cyclegan", "utom"))
NAMES = {"frameworks": ["CycleGAN", "UTOM"], "presets": PRESETS}
#: shrink the networks of a preset so that two steps take a second
TINY = [arg for net in ("generator_ab", "generator_ba") for arg in
        (f"--model.init_args.{net}.init_args.channels", "4", f"--model.init_args.{net}.init_args.n_blocks", "1")] + \
       [arg for net in ("discriminator_a", "discriminator_b") for arg in (f"--model.init_args.{net}.init_args.channels", "4")]
QUIET = ["--trainer.accelerator", "cpu", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false"]


# ------------------------------------------------------------------ registration
def test_plugin_registers_its_names(registry) -> None:
    assert_registers(registry, "utom", im2im_utom.__version__, NAMES)
    assert registry.get("frameworks", "CycleGAN") is CycleGAN and registry.get("frameworks", "UTOM") is UTOM
    # the GAN parts it uses are the core's, registered by the built-ins
    assert registry.owners["backbones"]["patchgan"] == registry.owners["backbones"]["resnet_generator"] == "builtin"


def test_disabling_plugins_removes_its_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert_gone_when_plugins_disabled(monkeypatch, NAMES)


@pytest.mark.parametrize("path", sorted(plugin.PRESETS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_preset_parses(path: Path) -> None:
    config = read_preset(path)
    assert "prediction" in config
    assert config["model"]["class_path"] == ("UTOM" if path.stem.endswith("_utom") else "CycleGAN")
    data, args = config["data"], config["model"]["init_args"]
    assert data["data_path"] is None and data["layout"] == "unpaired"
    dims = len(data["patch_size"])
    ab, ba = args["generator_ab"]["init_args"], args["generator_ba"]["init_args"]
    assert (ab["in_channels"], ab["out_channels"]) == (ba["out_channels"], ba["in_channels"])
    assert args["discriminator_a"]["init_args"]["in_channels"] == ab["in_channels"]  # unconditional: one domain
    assert args["discriminator_b"]["init_args"]["in_channels"] == ab["out_channels"]
    for net in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"):
        assert args[net]["init_args"]["spatial_dims"] == dims
    assert all(size % 4 == 0 and size >= 24 for size in data["patch_size"])  # 2 downsamplings; 3-layer PatchGAN


def test_presets_come_in_pairs_that_differ_only_by_utom() -> None:
    """Same networks, data and training for CycleGAN and UTOM: the saliency constraint is the one difference."""
    for task in TASKS:
        cyclegan = yaml.safe_load((plugin.PRESETS / f"{task}_cyclegan.yaml").read_text())
        utom = yaml.safe_load((plugin.PRESETS / f"{task}_utom.yaml").read_text())
        assert cyclegan["data"] == utom["data"]
        extra = set(utom["model"]["init_args"]) - set(cyclegan["model"]["init_args"])
        assert extra == {"threshold_a", "threshold_b", "polarity_a", "polarity_b", "steepness", "rho0", "rho_decay",
                         "rho_progress"}
        assert all(utom["model"]["init_args"][k] == v for k, v in cyclegan["model"]["init_args"].items())


# ------------------------------------------------------------------ two training steps of each preset
def train_two_steps(preset: str, data: Path, patch: str, capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    """Two batches: four optimizer steps (generators and discriminators twice each)."""
    code = main(["fit", "--config", preset, "--data.data_path", str(data), "--data.patch_size", patch,
                 "--data.batch_size", "2", "--data.samples_per_image", "2", *TINY, *extra,
                 "--trainer.max_steps", "4", *QUIET])
    assert code == 0, capsys.readouterr().err
    run = Path("im2im_runs") / preset
    saved = yaml.safe_load((run / "config.yaml").read_text())["model"]  # every short name resolved
    assert saved["class_path"] == ("im2im_utom.utom.UTOM" if preset.endswith("_utom") else "im2im_utom.cyclegan.CycleGAN")
    assert saved["init_args"]["generator_ab"]["class_path"] == "im2im_core.networks.resnet_generator.ResNetGenerator"
    assert saved["init_args"]["discriminator_b"]["class_path"] == "im2im_core.networks.patchgan.PatchGAN"
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 4
    assert [float(next(iter(s["state"].values()))["step"]) for s in checkpoint["optimizer_states"]] == [2.0, 2.0]
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if isinstance(v, torch.Tensor))
    return run


def test_unpaired_seg_2d_cyclegan_trains(registry, images_and_masks: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    train_two_steps("unpaired_seg_2d_cyclegan", images_and_masks, "[64,64]", capsys)


def test_unpaired_seg_2d_utom_trains_and_predicts_both_directions(registry, images_and_masks: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Images to masks (AtoB, uint8 masks) and masks to images (BtoA, intensities) through ``im2im predict``."""
    monkeypatch.chdir(tmp_path)
    run = train_two_steps("unpaired_seg_2d_utom", images_and_masks, "[64,64]", capsys)
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert -1 < float(state["threshold_a"]) < 1  # Otsu of the images in [-1, 1]
    assert float(state["threshold_b"]) == 0.0  # given for the masks (-1/1)
    images = sorted((images_and_masks / "IM").glob("*.tif"))[:1]
    masks = sorted((images_and_masks / "GT").glob("*.tif"))[:1]
    predict = ["predict", "--config", str(run / "config.yaml"), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
               *QUIET]
    for folder, files in (("images", images), ("masks", masks)):
        (tmp_path / folder).mkdir()
        for path in files:
            (tmp_path / folder / path.name).write_bytes(path.read_bytes())
    assert main([*predict, "--data.predict_path", "images", "--prediction.output_dir", "to_masks"]) == 0
    # BtoA: the second generator, on masks normalized as domain B was (0/1 to -1/1), under the key IM
    normalize_masks = ('[{"class_path": "Binarized", "init_args": {"keys": ["IM"]}}, '
                       '{"class_path": "monai.transforms.ScaleIntensityRanged", "init_args": {"keys": ["IM"], '
                       '"a_min": 0, "a_max": 1, "b_min": -1, "b_max": 1}}]')
    assert main([*predict, "--data.predict_path", "masks", "--prediction.output_dir", "to_images",
                 "--model.init_args.direction", "BtoA", "--model.init_args.output_threshold", "null",
                 "--data.normalize", normalize_masks]) == 0, capsys.readouterr().err
    mask = tifffile.imread(next(Path("to_masks").glob("*.ome.tiff")))
    image = tifffile.imread(next(Path("to_images").glob("*.ome.tiff")))
    source = tifffile.imread(images[0])
    assert mask.shape == image.shape == source.shape == (256, 256)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert image.dtype == np.float32 and np.isfinite(image).all() and -1 <= image.min() < image.max() <= 1  # tanh


@pytest.mark.parametrize("variant", ["cyclegan", "utom"])
def test_unpaired_modality_3d_trains(registry, stacks_3d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     variant: str, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    # 16 x 32 x 32 patches (the crops are 16 planes deep): PatchGANs of 2 layers, which need 12 pixels per axis
    two_layers = [f"--model.init_args.discriminator_{d}.init_args.n_layers=2" for d in "ab"]
    train_two_steps(f"unpaired_modality_3d_{variant}", stacks_3d, "[16,32,32]", capsys, *two_layers)


@pytest.mark.parametrize("variant", ["cyclegan", "utom"])
def test_unpaired_stain_2d_trains(registry, he_and_ihc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  variant: str, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    run = train_two_steps(f"unpaired_stain_2d_{variant}", he_and_ihc, "[64,64]", capsys)
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert state["generator_ab.model.0.1.conv.weight"].shape[1] == 3  # RGB in
    if variant == "utom":  # brightfield: dark tissue on a bright slide, thresholds by Otsu in [-1, 1]
        assert all(-1 < float(state[f"threshold_{d}"]) < 1 for d in "ab")


def test_unpaired_seg_2d_cyclegan_exports_the_generator_of_its_direction(registry, images_and_masks: Path,
                                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Percentiles to [-1, 1] with clipping in, thresholded masks out, the same from the package."""
    monkeypatch.chdir(tmp_path)
    run = train_two_steps("unpaired_seg_2d_cyclegan", images_and_masks, "[64,64]", capsys)
    assert_exports_and_round_trips(run / "checkpoints" / "last.ckpt", images_and_masks / "IM", tmp_path)
