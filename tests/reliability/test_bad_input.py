"""Bad input as a user gives it: one line on stderr, exit code 2, the culprit named, nothing left behind.

Each case builds its bad input in a fresh folder, runs ``im2im`` in-process, and checks that
the message is one line naming the file, key or value, that no traceback is printed, that no
partial output appears, and that outputs that existed before are byte-identical after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from im2im_cli.main import main
from im2im_core.testing import DEMO_DATA, copy_pairs


class CreatesAFile:
    """Unpickling this calls ``open(path, "w")``: a file that runs code when loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return open, (str(self.path), "w")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass
class Case:
    """``argv(folder, run)`` -> the command line; the message must contain each of ``expect`` (with
    ``{folder}`` replaced by the case's folder).
    """

    argv: Callable[[Path, Path], list[str]]
    expect: tuple[str, ...]


def _fit(*extra: str) -> Callable[[Path, Path], list[str]]:
    return lambda folder, run: ["fit", "--config", "demo", "--data.data_path", str(folder / "data"),
                                "--trainer.max_steps", "1", *[e.format(folder=folder) for e in extra]]


def _predict(*extra: str, source: str = "images") -> Callable[[Path, Path], list[str]]:
    return lambda folder, run: ["predict", "--ckpt_path", str(run), "--data.predict_path", str(folder / source),
                                "--prediction.output_dir", str(folder / "out"),
                                *[e.format(folder=folder) for e in extra]]


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array)


def _damage(folder: Path, name: str) -> None:
    """Prepare the bad input a case needs in ``folder`` (``data/`` training pairs, ``images/`` to predict).

    Cases not named here use the crops as they are (``2D images to a 3D preset``: the 2D crops).
    """
    copy_pairs(folder / "data", slice(0, 3))
    copy_pairs(folder / "images", slice(0, 2), split="holdout")
    data_image = sorted((folder / "data" / "IM").glob("*.tif"))[0]
    data_label = folder / "data" / "GT" / data_image.name
    predict_image = sorted((folder / "images" / "IM").glob("*.tif"))[0]
    pixels = tifffile.imread(data_image)
    if name == "bad config yaml":
        (folder / "bad.yaml").write_text("trainer: [1, 2\nmodel: {")
    elif name == "config is a list":
        (folder / "list.yaml").write_text("- trainer\n- model\n")
    elif name == "empty data folder":
        (folder / "empty").mkdir()
    elif name == "truncated tiff to predict":
        predict_image.write_bytes(predict_image.read_bytes()[:3000])
    elif name == "random bytes as training image":
        data_image.write_bytes(np.random.default_rng(0).bytes(5000))
    elif name == "mismatched pair":
        _write(data_label, tifffile.imread(data_label)[:200, :180])
    elif name == "missing target":
        data_label.unlink()
    elif name == "z-stack to a 2D preset":
        _write(data_image, np.stack([pixels] * 5))
        _write(data_label, np.stack([tifffile.imread(data_label)] * 5))
    elif name == "rgb to a 1-channel preset":
        _write(predict_image, np.stack([tifffile.imread(predict_image)] * 3, axis=-1).astype(np.uint8))
    elif name == "float instance labels":
        _write(data_label, tifffile.imread(data_label).astype(np.float32) / 3.0)
    elif name == "negative instance labels":
        _write(data_label, tifffile.imread(data_label).astype(np.int32) - 1)
    elif name == "NaN in a training image":
        _write(data_image, np.where(np.arange(pixels.size).reshape(pixels.shape) == 99, np.nan, pixels.astype(np.float32)))
    elif name == "images and masks subfolders":
        (folder / "data" / "IM").rename(folder / "data" / "images")
        (folder / "data" / "GT").rename(folder / "data" / "masks")
    elif name == "time-lapse to training":
        tifffile.imwrite(data_image, np.stack([pixels] * 4), metadata={"axes": "TYX"})
    elif name == "output folder is a file":
        (folder / "out").write_text("not a folder")
    elif name in ("truncated checkpoint", "random-bytes checkpoint", "empty checkpoint", "not a checkpoint",
                  "checkpoint that runs code"):
        path = folder / "bad.ckpt"
        if name == "random-bytes checkpoint":
            path.write_bytes(np.random.default_rng(1).bytes(4096))
        elif name == "empty checkpoint":
            path.write_bytes(b"")
        elif name == "not a checkpoint":
            torch.save({"weights": torch.zeros(3)}, path)
        elif name == "checkpoint that runs code":
            torch.save({"state_dict": {}, "payload": CreatesAFile(folder / "pwned")}, path)


CASES: dict[str, Case] = {
    # ---- config
    "unknown preset": Case(lambda f, r: ["fit", "--config", "semanticseg2d"], ("semanticseg2d", "did you mean 'semanticseg_2d'")),
    "missing config file": Case(lambda f, r: ["fit", "--config", str(f / "nowhere.yaml")], ("nowhere.yaml", "neither a file")),
    "bad config yaml": Case(lambda f, r: ["fit", "--config", str(f / "bad.yaml")], ("bad.yaml", "not valid YAML")),
    "config is a list": Case(lambda f, r: ["fit", "--config", str(f / "list.yaml")], ("list.yaml", "expected a mapping")),
    "unknown network name": Case(_fit("--model.init_args.backbone", "Unet"), ("'Unet'", "did you mean 'UNet'")),
    "misspelled key": Case(_fit("--trainer.max_epochz", "3"), ("max_epochz",)),
    "wrong value type": Case(_fit("--trainer.max_epochs", "many"), ("max_epochs",)),
    "negative patch size": Case(_fit("--data.patch_size", "[-8, 64]"), ("patch_size", "-8")),
    "patch size of other dims": Case(_fit("--data.patch_size", "[64]"), ("patch_size", "[64]")),
    "zero batch size": Case(_fit("--data.batch_size", "0"), ("batch_size",)),
    "invalid dims": Case(_fit("--data.dims", "XY"), ("dims", "'XY'")),
    "unknown layout": Case(_fit("--data.layout", "pairs"), ("layout",)),
    "channels of the data and the network disagree": Case(_fit("--data.dims", "CYX", "--data.C", "[0, 0, 0]"),
                                                          ("in_channels is 1", "give 3")),
    "overlap 1.0": Case(_predict("--prediction.inference.overlap", "1.0"), ("overlap", "1.0")),
    "negative overlap": Case(_predict("--prediction.inference.overlap", "-0.1"), ("overlap", "-0.1")),
    "unknown tta": Case(_predict("--prediction.inference.tta", "spin"), ("prediction.inference", "spin", "flips")),
    "unknown output format": Case(_predict("--prediction.output_format", "png"), ("output_format",)),
    "overwrite and skip_existing": Case(_predict("--prediction.overwrite", "true", "--prediction.skip_existing", "true"),
                                        ("overwrite", "skip_existing")),
    "unknown subcommand": Case(lambda f, r: ["train", "--config", "demo"], ("'train'", "unknown subcommand")),
    # ---- data
    "missing data folder": Case(lambda f, r: _fit()(f, r)[:4] + [str(f / "absent"), "--trainer.max_steps", "1"], ("absent",)),
    "empty data folder": Case(lambda f, r: _fit()(f, r)[:4] + [str(f / "empty"), "--trainer.max_steps", "1"],
                              ("empty", "no images")),
    "missing predict folder": Case(_predict(source="absent"), ("absent",)),
    "truncated tiff to predict": Case(_predict(), ("IXMtest",)),
    "random bytes as training image": Case(_fit(), ("data/IM/",)),
    "mismatched pair": Case(_fit(), ("differ in spatial shape",)),
    "missing target": Case(_fit(), ("no target for input", "data/GT")),
    "z-stack to a 2D preset": Case(_fit(), ("along Z", "data.dims", "data.Z")),
    "rgb to a 1-channel preset": Case(_predict(), ("IXMtest", "YXS")),
    "2D images to a 3D preset": Case(lambda f, r: ["fit", "--config", "semanticseg_3d", "--data.data_path", str(f / "data"),
                                                   "--trainer.max_steps", "1"], ("single plane", "data/IM/")),
    "float instance labels": Case(_fit("--data.target", "labels"), ("data/GT/", "whole numbers")),
    "negative instance labels": Case(_fit("--data.target", "labels"), ("data/GT/", ">= 0")),
    "NaN in a training image": Case(_fit("--data.cache", "none"), ("data/IM/", "NaN")),
    "images and masks subfolders": Case(_fit(), ("images, masks", "--data.input_dir")),
    "time-lapse to training": Case(_fit(), ("along T", "data.T")),
    # ---- checkpoints
    "missing checkpoint": Case(lambda f, r: _predict()(f, f / "absent.ckpt"), ("absent.ckpt", "not found")),
    "truncated checkpoint": Case(lambda f, r: _predict()(f, f / "bad.ckpt"), ("bad.ckpt",)),
    "random-bytes checkpoint": Case(lambda f, r: _predict()(f, f / "bad.ckpt"), ("bad.ckpt", "cannot be read")),
    "empty checkpoint": Case(lambda f, r: _predict()(f, f / "bad.ckpt"), ("bad.ckpt",)),
    "not a checkpoint": Case(lambda f, r: _predict()(f, f / "bad.ckpt"), ("bad.ckpt", "state_dict")),
    "checkpoint that runs code": Case(lambda f, r: _predict()(f, f / "bad.ckpt"), ("bad.ckpt", "refused")),
    "checkpoint of another framework": Case(_predict("--config", "labelfree_2d"), ("does not fit the model FCN",)),
    # ---- outputs
    "output folder is a file": Case(_predict(), ("out", "is a file")),
    # ---- evaluate
    "evaluate without predictions": Case(lambda f, r: ["evaluate", "--pred", str(f / "absent"), "--gt", str(f / "data")],
                                         ("absent",)),
    "evaluate prediction without target": Case(lambda f, r: ["evaluate", "--pred", str(f / "images" / "IM"), "--gt",
                                                             str(f / "data")], ("no target",)),
}
TRUNCATED = {"truncated checkpoint"}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_one_clear_line(name: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _damage(tmp_path, name)
    if name in TRUNCATED:
        (tmp_path / "bad.ckpt").write_bytes(run.read_bytes()[: run.stat().st_size // 2])
    before = snapshot(tmp_path)
    case = CASES[name]
    code = main(case.argv(tmp_path, run))
    err = capsys.readouterr().err.strip()
    assert code == 2, (name, err[-2000:])
    assert len(err.splitlines()) == 1 and err.startswith("im2im: error: ") and "Traceback" not in err, err
    for part in case.expect:
        assert part in err, (name, part, err)
    assert snapshot(tmp_path) == before, f"{name}: files changed or appeared"  # no partial file, nothing overwritten
    assert not (tmp_path / "pwned").exists()


def test_an_existing_output_is_kept_byte_identical(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_pairs(tmp_path / "images", slice(0, 2), split="holdout")
    argv = _predict()(tmp_path, run)
    assert main(argv) == 0
    before = snapshot(tmp_path / "out")
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "output exists" in err and "--prediction.skip_existing" in err and len(err.splitlines()) == 1
    assert snapshot(tmp_path / "out") == before


def test_nan_pixels_in_an_image_to_predict_are_named(run: Path, tmp_path: Path) -> None:
    from im2im_core.errors import DataError
    from im2im_core.inference import predict

    image = tifffile.imread(sorted((DEMO_DATA / "holdout" / "IM").glob("*.tif"))[0]).astype(np.float32)
    image[10, 20] = np.nan
    with pytest.raises(DataError, match="NaN or infinite"):
        predict(run, image, normalize=(0.5, 99.5))
