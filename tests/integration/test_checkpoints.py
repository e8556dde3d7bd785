"""Checkpoints describe themselves and never run code: the run config inside, ``weights_only`` loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from bioio import BioImage

from im2im_cli.main import main
from im2im_core.errors import ConfigError, DataError
from im2im_core.inference import load_model, predict, read_checkpoint
from im2im_core.testing import DEMO_DATA, copy_pairs


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the demo preset, two steps (its config.yaml in the run folder, as ``im2im fit`` writes it)."""
    root = tmp_path_factory.mktemp("run")
    data = copy_pairs(root / "data", slice(0, 3))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # the preset writes im2im_runs/demo
        code = main(["fit", "--config", "demo", "--data.data_path", str(data), "--trainer.max_steps", "2",
                     "--trainer.enable_progress_bar", "false", "--data.batch_size", "4", "--data.patch_size", "[64, 64]",
                     "--model.init_args.backbone.init_args.channels", "[8, 16]",
                     "--model.init_args.backbone.init_args.strides", "[2]"])
    assert code == 0
    return root / "im2im_runs" / "demo"


def _predict(checkpoint: Path, out: Path, *config: str) -> dict[str, np.ndarray]:
    code = main(["predict", *config, "--ckpt_path", str(checkpoint), "--data.predict_path", str(DEMO_DATA / "holdout"),
                 "--prediction.output_dir", str(out), "--trainer.enable_progress_bar", "false",
                 "--trainer.logger", "false"])
    assert code == 0
    return {p.name: BioImage(p).get_image_data("YX") for p in sorted(out.glob("*.ome.tiff"))}


def test_the_checkpoint_holds_its_resolved_run_config(run: Path) -> None:
    contents = read_checkpoint(run / "checkpoints" / "last.ckpt")
    config = yaml.safe_load(contents["im2im"]["config"])
    assert config["model"]["class_path"] == "im2im_core.frameworks.fcn.FCN"
    assert config["model"]["init_args"]["spatial_dims"] == 2  # filled from data.dims
    assert config["data"]["dims"] == "YX" and "hyper_parameters" not in contents


def test_predict_from_the_checkpoint_alone_writes_the_same_with_or_without_config(run: Path, tmp_path: Path) -> None:
    checkpoint = run / "checkpoints" / "last.ckpt"
    saved_config = next(run.rglob("config.yaml"))
    kept = tmp_path / "config.yaml"
    kept.write_text(saved_config.read_text())
    before = {"alone": _predict(checkpoint, tmp_path / "a"),
              "config": _predict(checkpoint, tmp_path / "b", "--config", str(kept))}
    saved_config.unlink()
    after = {"alone": _predict(checkpoint, tmp_path / "c"), "config": _predict(checkpoint, tmp_path / "d", "--config", str(kept))}
    assert not list(run.rglob("config.yaml"))  # predicting writes no config.yaml into the run folder
    reference = before["alone"]
    assert len(reference) == 4
    for outputs in (before["config"], after["alone"], after["config"]):
        assert outputs.keys() == reference.keys()
        for name, mask in outputs.items():
            np.testing.assert_array_equal(mask, reference[name])
    image = BioImage(DEMO_DATA / "holdout" / "IM" / "IXMtest_G13_s9.tif").get_image_data("YX")
    python = predict(checkpoint, image, normalize=(0.5, 99.5))  # the Python API, from the .ckpt alone
    np.testing.assert_array_equal(python, reference["IXMtest_G13_s9_pred.ome.tiff"])


class _CreatesAFile:
    """Unpickling this calls ``open(path, "w")``: a checkpoint that runs code when loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return open, (str(self.path), "w")


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _CreatesAFile(marker)}, path)
    return path, marker


def test_a_checkpoint_that_runs_code_is_refused_everywhere(evil: tuple[Path, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path, marker = evil
    for subcommand in ("predict", "validate", "fit"):
        code = main([subcommand, "--config", "demo", "--ckpt_path", str(path), "--data.predict_path", str(tmp_path)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "refused" in err and str(path) in err, (subcommand, err)
    with pytest.raises(DataError, match="refused"):
        predict(path, np.zeros((32, 32), np.float32))
    with pytest.raises(DataError, match="refused"):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty", "not a checkpoint"])
def test_a_damaged_checkpoint_gets_one_clear_message(run: Path, tmp_path: Path, damage: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    source = (run / "checkpoints" / "last.ckpt").read_bytes()
    path = tmp_path / "bad.ckpt"
    contents = {"truncated": source[: len(source) // 2], "random bytes": np.random.default_rng(0).bytes(4096),
                "empty": b""}
    if damage == "not a checkpoint":
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        path.write_bytes(contents[damage])
    code = main(["predict", "--ckpt_path", str(path), "--data.predict_path", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(path) in err and "Traceback" not in err, err


def test_a_checkpoint_without_a_run_config_asks_for_one(tmp_path: Path) -> None:
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ConfigError, match="holds no im2im run config"):
        load_model(path)


def test_weights_of_another_framework_are_named(run: Path, tmp_path: Path) -> None:
    config = tmp_path / "other.yaml"
    config.write_text("model:\n  class_path: FCN\n  init_args:\n    backbone:\n      class_path: fnet\n"
                      "      init_args: {spatial_dims: 2, in_channels: 1, out_channels: 1, depth: 2}\n")
    with pytest.raises(ConfigError, match="does not fit the model FCN"):
        load_model(run / "checkpoints" / "last.ckpt", config=config)


def test_last_checkpoint_holds_the_final_step_after_a_periodic_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo preset saves every 20 steps; a run that stops at step 22 (as ``max_time`` stops one
    between saves) must leave step 22 in ``last.ckpt``, not Lightning's step 20.
    """
    data = copy_pairs(tmp_path / "data", slice(0, 2))
    monkeypatch.chdir(tmp_path)
    code = main(["fit", "--config", "demo", "--data.data_path", str(data), "--trainer.max_steps", "22",
                 "--trainer.enable_progress_bar", "false", "--trainer.limit_val_batches", "0", "--data.val_fraction", "0",
                 "--data.batch_size", "2", "--data.samples_per_image", "2", "--data.patch_size", "[32, 32]",
                 "--model.init_args.backbone.init_args.channels", "[4, 8]",
                 "--model.init_args.backbone.init_args.strides", "[2]"])
    assert code == 0
    checkpoints = tmp_path / "im2im_runs" / "demo" / "checkpoints"
    periodic = sorted(checkpoints.glob("*step=20.ckpt"))
    assert len(periodic) == 1 and read_checkpoint(periodic[0])["global_step"] == 20  # the periodic save happened
    assert read_checkpoint(checkpoints / "last.ckpt")["global_step"] == 22
