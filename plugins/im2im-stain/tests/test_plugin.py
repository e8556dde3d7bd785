"""Registration of the plugin, its presets, and two training steps of each preset."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

import im2im_stain
from im2im_cli.main import main
from im2im_cli.testing import printed_config
from im2im_core.testing import assert_gone_when_plugins_disabled, assert_registers, read_preset
from im2im_stain import plugin
from im2im_stain.macenko import separate_stains

PRESETS = ("semanticseg_he_2d", "staintransfer_2d")
TRANSFORMS = ("MacenkoNormalized", "StainSeparated", "ReinhardNormalized")
NAMES = {"transforms": TRANSFORMS, "presets": PRESETS}
HAS_PIX2PIX = importlib.util.find_spec("im2im_pix2pix") is not None


# ------------------------------------------------------------------ registration
def test_plugin_registers_its_names(registry) -> None:
    assert_registers(registry, "stain", im2im_stain.__version__, NAMES)
    for name in TRANSFORMS:
        assert registry.get("transforms", name).__module__ == "im2im_stain.transforms"


def test_disabling_plugins_removes_its_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert_gone_when_plugins_disabled(monkeypatch, NAMES)


def preset_files() -> list[Path]:
    return sorted(plugin.PRESETS.rglob("*.yaml"))


@pytest.mark.parametrize("path", preset_files(), ids=lambda p: p.relative_to(plugin.PRESETS).as_posix())
def test_every_preset_parses(path: Path) -> None:
    config = read_preset(path)
    assert config["data"]["dims"] == "YXS"
    assert config["data"]["data_path"] is None  # the user gives --data.data_path


@pytest.mark.parametrize(("installed", "framework"), [(True, "Pix2Pix"), (False, "FCN")])
def test_staintransfer_uses_pix2pix_only_when_installed(monkeypatch: pytest.MonkeyPatch,
                                                       installed: bool, framework: str) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):  # noqa: ANN002, ANN003
        if name == "im2im_pix2pix":
            return object() if installed else None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    preset = plugin.im2im_register_presets()["staintransfer_2d"]
    assert preset.name == "staintransfer_2d" and preset.description
    assert yaml.safe_load(preset.text())["model"]["class_path"].split(".")[-1] == framework


@pytest.mark.parametrize("name", PRESETS)
def test_preset_builds_a_config(registry, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``im2im fit --config NAME --print_config`` resolves every class path of the preset."""
    printed = printed_config(name, capsys)
    assert printed["data"]["dims"] == "YXS"
    assert printed["model"]["class_path"].endswith("Pix2Pix" if HAS_PIX2PIX and name == "staintransfer_2d" else ".FCN")


# ------------------------------------------------------------------ two training steps of each preset
def write_pairs(folder: Path, images: list[np.ndarray], targets: list[np.ndarray]) -> Path:
    for sub in ("IM", "GT"):
        (folder / sub).mkdir(parents=True)
    for i, (image, target) in enumerate(zip(images, targets, strict=True)):
        tifffile.imwrite(folder / "IM" / f"tile{i}.tif", np.moveaxis(image, 0, -1).astype(np.uint8), photometric="rgb")
        tifffile.imwrite(folder / "GT" / f"tile{i}.tif", target)
    return folder


def crops(image: np.ndarray, corners: list[tuple[int, int]], size: int = 96) -> list[np.ndarray]:
    return [image[:, y:y + size, x:x + size] for y, x in corners]


def train_two_steps(preset: str, data: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code = main(["fit", "--config", preset, "--data.data_path", str(data), "--data.patch_size", "[64,64]",
                 "--data.batch_size", "2", "--data.samples_per_image", "2",
                 "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0", "--trainer.accelerator", "cpu",
                 "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false"])
    error = capsys.readouterr().err
    assert code == 0, error
    saved = Path("im2im_runs") / preset / "config.yaml"
    assert saved.is_file()
    return saved


def test_semanticseg_he_2d_trains(registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, he_image: np.ndarray,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """H&E tiles; target: a hematoxylin threshold (nuclei-like mask), test data only."""
    tiles = crops(he_image, [(64, 0), (96, 96), (224, 192), (384, 288)])  # 52-71% tissue each
    masks = [(separate_stains(tile)[0] > 1.0).astype(np.uint8) for tile in tiles]
    data = write_pairs(tmp_path / "he", tiles, masks)
    monkeypatch.chdir(tmp_path)
    saved = train_two_steps("semanticseg_he_2d", data, capsys).read_text()
    assert "im2im_stain.transforms.MacenkoNormalized" in saved
    assert "Unable to serialize" not in saved  # the saved config can be run again


def test_staintransfer_2d_trains(registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ihc_image: np.ndarray,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """IHC tiles; target: their hematoxylin concentration (one channel), test data only."""
    tiles = crops(ihc_image, [(0, 0), (160, 160), (160, 0)])
    targets = [separate_stains(tile, None)[0] for tile in tiles]
    data = write_pairs(tmp_path / "ihc", tiles, targets)
    monkeypatch.chdir(tmp_path)
    train_two_steps("staintransfer_2d", data, capsys)
