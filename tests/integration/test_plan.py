"""``im2im plan``: real crops of three datasets become configs that train without edits; bad input is named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import tifffile
import yaml

from im2im_cli.main import main
from im2im_core.testing import DEMO_DATA, DEMO_DATA_3D, copy_pairs, one_line_error

DSB2018 = Path(__file__).resolve().parents[1] / "data" / "dsb2018"


def _plan(data: Path, output: Path, *options: str) -> dict:
    assert main(["plan", "--data.data_path", str(data), "--time", "2m", "--output", str(output), *options]) == 0
    assert (output.parent / "fingerprint.json").is_file()
    return yaml.safe_load(output.read_text())


def _fits_two_steps(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fit", "--config", str(config), "--trainer.max_steps", "2", "--trainer.max_time", "null",
                 "--trainer.limit_val_batches", "1", "--trainer.check_val_every_n_epoch", "1",
                 "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                 "--data.samples_per_image", "1"])
    assert code == 0, capsys.readouterr().err


def test_bbbc039_crops_plan_a_2d_segmentation_that_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    data = copy_pairs(tmp_path / "bbbc039", slice(0, 6))
    config = _plan(data, tmp_path / "plan" / "config.yaml", "--task", "segmentation")
    backbone = config["model"]["init_args"]["backbone"]
    # nuclei at least 6 px thick: on the CPU the first level runs at half resolution (MONAI UNet, strided first)
    assert backbone["class_path"] == "monai.networks.nets.UNet"
    assert backbone["init_args"]["strides"] == [2] * 6  # isotropic pixels: both axes pooled, down to 4 px
    assert config["data"]["patch_size"] == [256, 256] and config["data"]["batch_size"] >= 1
    text = (tmp_path / "plan" / "config.yaml").read_text()
    assert "# MONAI UNet" in text and "first convolution strided" in text and "# trial steps measured" in text
    fingerprint = json.loads((tmp_path / "plan" / "fingerprint.json").read_text())
    assert fingerprint["target"] == "labels" and fingerprint["images"] == 6 and 0 < fingerprint["foreground_fraction"] < 1
    assert fingerprint["objects_per_image"] > 5 and fingerprint["object_diameter"]["median"] > 5
    assert 6 <= fingerprint["object_width"]["p5"] < fingerprint["object_width"]["median"] < 40
    before = (tmp_path / "plan" / "fingerprint.json").read_text()
    message = one_line_error(["plan", "--data.data_path", str(data), "--output", str(tmp_path / "plan" / "other.yaml")],
                             capsys)
    assert "fingerprint.json exists" in message and "--overwrite" in message
    assert (tmp_path / "plan" / "fingerprint.json").read_text() == before and not (tmp_path / "plan" / "other.yaml").exists()
    _fits_two_steps(tmp_path / "plan" / "config.yaml", capsys)


def test_anisotropic_3d_stacks_plan_no_pooling_along_z_at_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """NEUBIAS widefield/confocal crops (16 x 64 x 64, Z spacing not in the files): regression, XY pooled first."""
    monkeypatch.chdir(tmp_path)
    data = Path(shutil.copytree(DEMO_DATA_3D, tmp_path / "stacks"))
    config = _plan(data, tmp_path / "plan" / "config.yaml")
    assert config["model"]["init_args"]["task"] == "regression" and config["data"]["target"] == "intensity"
    strides = config["model"]["init_args"]["backbone"]["init_args"]["strides"]
    assert strides[1] == [1, 2, 2]  # Z not pooled at the first level
    kernels = config["model"]["init_args"]["backbone"]["init_args"]["kernel_size"]
    assert kernels[0][0] == 1  # nor convolved along Z while its spacing is over twice XY's
    assert "Z spacing unknown" in (tmp_path / "plan" / "config.yaml").read_text()
    _fits_two_steps(tmp_path / "plan" / "config.yaml", capsys)


def test_the_spacing_option_decides_the_pooling(tmp_path: Path) -> None:
    data = Path(shutil.copytree(DEMO_DATA_3D, tmp_path / "stacks"))
    config = _plan(data, tmp_path / "iso" / "config.yaml", "--spacing", "1,1,1")
    assert config["model"]["init_args"]["backbone"]["init_args"]["strides"][1] == [2, 2, 2]


def test_dsb2018_crops_plan_a_segmentation_that_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    data = Path(shutil.copytree(DSB2018, tmp_path / "dsb"))
    config = _plan(data, tmp_path / "plan" / "config.yaml", "--task", "segmentation", "--memory", "2")
    assert config["data"]["data_path"] == str(data)
    # small nuclei (5th percentile under 6 px thick): nnU-Net's full-resolution first level
    assert config["model"]["init_args"]["backbone"]["class_path"] == "monai.networks.nets.DynUNet"
    assert "first level at full resolution: the thinnest objects" in (tmp_path / "plan" / "config.yaml").read_text()
    _fits_two_steps(tmp_path / "plan" / "config.yaml", capsys)


_error = one_line_error


def test_bad_input_gets_one_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = ["--output", str(tmp_path / "out" / "config.yaml")]
    message = _error(["plan", "--data.data_path", str(empty), *out], capsys)
    assert str(empty) in message and "no images" in message

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(next((DEMO_DATA / "train" / "IM").glob("*.tif")), mixed / "plane.tif")
    shutil.copy(DEMO_DATA_3D / "IM" / "nucleus_0.tif", mixed / "stack.tif")
    message = _error(["plan", "--data.data_path", str(mixed), "--data.dims", "ZYX", *out], capsys)
    assert "plane.tif" in message and "single plane" in message  # the reader names the odd one
    message = _error(["plan", "--data.data_path", str(mixed), *out], capsys)  # axes from the first file: YX
    assert "stack.tif" in message

    masks = tmp_path / "masks"
    copy_pairs(masks, slice(0, 3))
    for path in (masks / "GT").glob("*.tif"):
        tifffile.imwrite(path, (tifffile.imread(path) > 0).astype("uint8"))
    message = _error(["plan", "--data.data_path", str(masks), "--task", "instance", *out], capsys)
    assert "--task instance" in message and "binary masks" in message and str(masks) in message
    assert not (tmp_path / "out").exists()


def test_search_trains_variants_on_folds_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Two variants x two folds of a few seconds each; a second search reuses every finished run."""
    from im2im_core.planning import search

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(search, "MIN_RUN_SECONDS", 5)
    data = copy_pairs(tmp_path / "bbbc039", slice(0, 4))
    options = ["--task", "segmentation", "--search", "2", "--folds", "2", "--time", "20s"]
    _plan(data, tmp_path / "plan" / "config.yaml", *options)
    results = json.loads((tmp_path / "plan" / "search" / "results.json").read_text())
    assert [v["variant"] for v in results["variants"]] == ["planned", "lr_x3"]
    assert all(len(v["folds"]) == 2 and all(0 <= s <= 1 for s in v["folds"]) for v in results["variants"])
    assert "# --search 2:" in (tmp_path / "plan" / "config.yaml").read_text()
    finished = sorted((tmp_path / "plan" / "search").rglob("result.json"))
    stamps = [p.stat().st_mtime for p in finished]
    assert len(finished) == 4
    _plan(data, tmp_path / "plan" / "config.yaml", *options, "--overwrite")
    assert [p.stat().st_mtime for p in finished] == stamps  # nothing retrained
