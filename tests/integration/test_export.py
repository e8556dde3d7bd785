"""Models leave and enter im2im: export to a bioimage.io package, test it with bioimageio.core, predict from it."""

from __future__ import annotations

import shutil
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from bioio import BioImage

from im2im_cli.main import main
from im2im_core.inference import predict
from im2im_core.testing import DEMO_DATA, copy_pairs

FORMATS = ("pytorch_state_dict", "torchscript", "onnx")
HOLDOUT = DEMO_DATA / "holdout"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every network connection fails: export and test must not need one."""
    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError("network access during a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo preset trained for a few steps: its last checkpoint."""
    root = tmp_path_factory.mktemp("export_run")
    data = copy_pairs(root / "data", slice(0, 4))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        code = main(["fit", "--config", "demo", "--data.data_path", str(data), "--trainer.max_steps", "6",
                     "--trainer.enable_progress_bar", "false", "--data.batch_size", "4", "--data.patch_size", "[64, 64]",
                     "--model.init_args.backbone.init_args.channels", "[8, 16, 32]",
                     "--model.init_args.backbone.init_args.strides", "[2, 2]"])
    assert code == 0
    return root / "im2im_runs" / "demo" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def package(run: Path) -> Path:
    output = run.parents[2] / "demo_model.zip"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", lambda *a: (_ for _ in ()).throw(OSError("network access")))
        code = main(["export", "--ckpt_path", str(run), "--output", str(output), "--authors", "Ada Lovelace; Alan Turing"])
    assert code == 0
    return output


def test_the_package_holds_every_weight_format_and_the_runs_processing(package: Path) -> None:
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        readme = archive.read("README.md").decode()
    assert {"weights.pt", "weights_torchscript.pt", "weights.onnx", "test_input.npy", "test_output.npy", "cover.png"} <= names
    assert set(rdf["weights"]) == set(FORMATS)
    steps = [step["id"] for step in rdf["inputs"][0]["preprocessing"]]
    assert "scale_range" in steps
    assert [step["id"] for step in rdf["outputs"][0]["postprocessing"]][:2] == ["sigmoid", "binarize"]
    y_size = next(a for a in rdf["inputs"][0]["axes"] if a.get("id") == "y")["size"]
    assert y_size == {"min": 4, "step": 4}  # two strides of 2, measured
    assert [a["name"] for a in rdf["authors"]] == ["Ada Lovelace", "Alan Turing"]
    assert "model:" in readme and "class_path" in readme  # the training config


@pytest.mark.parametrize("weight_format", FORMATS)
def test_bioimageio_core_tests_the_package_offline(package: Path, weight_format: str, offline: None) -> None:
    from bioimageio.core import test_model

    summary = test_model(package, weight_format=weight_format)
    failed = [f"{d.name}: {[e.msg[:200] for e in d.errors]}" for d in summary.details if d.status != "passed"]
    assert summary.status == "passed", failed
    assert any("reproduce" in d.name.lower() and d.status == "passed" for d in summary.details)


def _masks(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: BioImage(p).get_image_data("YX") for p in sorted(folder.glob("*.ome.tiff"))}


def test_predicting_from_the_package_gives_the_checkpoints_masks(run: Path, package: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--data.predict_path", str(HOLDOUT), "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]
    assert main(["predict", "--ckpt_path", str(run), "--prediction.output_dir", str(tmp_path / "ckpt"), *common]) == 0
    reference = _masks(tmp_path / "ckpt")
    assert len(reference) == 4 and sum(int(m.sum()) for m in reference.values()) > 0
    image = BioImage(sorted((HOLDOUT / "IM").glob("*.tif"))[0]).get_image_data("YX")
    raw_reference = predict(run, image, normalize="auto", postprocess=None)
    for weight_format in FORMATS:
        out = tmp_path / weight_format
        assert main(["predict", "--model", str(package), "--model.init_args.weight_format", weight_format,
                     "--prediction.output_dir", str(out), *common]) == 0
        masks = _masks(out)
        assert masks.keys() == reference.keys()
        for name, mask in masks.items():
            assert np.array_equal(mask, reference[name]), (weight_format, name)
        from im2im_core.export.imported import PackagedModel

        raw = predict(PackagedModel(str(package), weight_format), image, normalize="auto", postprocess=None)
        difference = float(np.abs(raw - raw_reference).max())
        print(f"{weight_format}: largest raw difference to the checkpoint {difference:.2e}")
        assert difference < 1e-3


def _foreign_package(folder: Path, weights: str = "torchscript") -> Path:
    """A package not made by im2im: a traced MONAI U-Net, z-score in, sigmoid out, built with bioimageio.spec."""
    from bioimageio.spec import load_model_description
    from monai.networks.nets import UNet

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    network = UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(4, 8), strides=(2,)).eval()
    image = BioImage(sorted((HOLDOUT / "IM").glob("*.tif"))[0]).get_image_data("YX")[:64, :64].astype(np.float32)
    test_input = image[None, None]
    normalized = (test_input - test_input.mean()) / (test_input.std() + 1e-6)
    with torch.no_grad():
        traced = torch.jit.trace(network, torch.from_numpy(normalized))
        test_output = torch.sigmoid(network(torch.from_numpy(normalized))).numpy()
    traced.save(str(folder / "unet.pt"))
    np.save(folder / "in.npy", test_input)
    np.save(folder / "out.npy", test_output)
    (folder / "README.md").write_text("A random U-Net for a test.\n")
    space = [{"type": "space", "id": a, "size": {"min": 16, "step": 2}} for a in "yx"]
    rdf = {
        "format_version": "0.5.4", "type": "model", "name": "foreign unet", "description": "a package made without im2im",
        "documentation": "README.md", "authors": [{"name": "Someone Else"}], "license": "MIT",
        "cite": [{"text": "none", "doi": "10.1000/1"}],
        "inputs": [{"id": "raw", "test_tensor": {"source": "in.npy"},
                    "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["c0"]}, *space],
                    "preprocessing": [{"id": "zero_mean_unit_variance", "kwargs": {"eps": 1e-6}}]}],
        "outputs": [{"id": "prob", "test_tensor": {"source": "out.npy"},
                     "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["p"]},
                              *[{"type": "space", "id": a, "size": {"tensor_id": "raw", "axis_id": a}} for a in "yx"]],
                     "postprocessing": [{"id": "sigmoid"}]}],
        "weights": {"torchscript": {"source": "unet.pt", "pytorch_version": torch.__version__.split("+")[0]}},
    }
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    assert hasattr(load_model_description(folder / "rdf.yaml"), "weights")  # bioimageio.spec accepts it
    if weights != "torchscript":  # rename the weights entry to another format, for the error test
        rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
        rdf["weights"] = {weights: {"source": "unet.pt", "tensorflow_version": "2.15"}}
        (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    return folder


def test_a_package_made_elsewhere_predicts_through_im2im(tmp_path: Path, offline: None) -> None:
    package = _foreign_package(tmp_path / "foreign")
    out = tmp_path / "out"
    assert main(["predict", "--model", str(package), "--data.predict_path", str(HOLDOUT), "--prediction.output_dir", str(out),
                 "--trainer.enable_progress_bar", "false"]) == 0
    outputs = sorted(out.glob("*.ome.tiff"))
    assert len(outputs) == 4
    image = BioImage(sorted((HOLDOUT / "IM").glob("*.tif"))[0]).get_image_data("YX").astype(np.float32)
    predicted = BioImage(outputs[0]).get_image_data("YX")
    assert predicted.shape == image.shape and predicted.dtype == np.float32
    network = torch.jit.load(str(package / "unet.pt"))
    with torch.no_grad():
        whole = torch.sigmoid(network(torch.from_numpy((image - image.mean()) / image.std())[None, None]))[0, 0].numpy()
    assert np.corrcoef(predicted.ravel(), whole.ravel())[0, 1] > 0.999  # windows of the package's sizes, blended


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("im2im: error:") and "\n" not in message and "Traceback" not in message
    return message


def test_bad_packages_get_one_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predict_args = ["--data.predict_path", str(HOLDOUT), "--prediction.output_dir", str(tmp_path / "out")]
    missing = _foreign_package(tmp_path / "missing")
    (missing / "unet.pt").unlink()
    message = _error(["predict", "--model", str(missing), *predict_args], capsys)
    assert str(missing) in message and "unet.pt" in message

    axes = _foreign_package(tmp_path / "axes")
    rdf = yaml.safe_load((axes / "rdf.yaml").read_text())
    rdf["inputs"][0]["axes"] = [a for a in rdf["inputs"][0]["axes"] if a["type"] != "channel"]  # 3 axes, a 4-D test tensor
    (axes / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    message = _error(["predict", "--model", str(axes), *predict_args], capsys)
    assert str(axes) in message and "test" in message.lower()

    keras = _foreign_package(tmp_path / "keras", weights="keras_hdf5")
    message = _error(["predict", "--model", str(keras), *predict_args], capsys)
    assert str(keras) in message and "keras_hdf5" in message and "torchscript" in message
    assert not (tmp_path / "out").exists()


def test_export_refuses_to_replace_a_package_and_names_bad_options(run: Path, package: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    before = package.read_bytes()
    message = _error(["export", "--ckpt_path", str(run), "--output", str(package)], capsys)
    assert "--overwrite" in message and package.read_bytes() == before
    message = _error(["export", "--ckpt_path", str(run), "--output", str(tmp_path / "m.zip"), "--weights", "keras"], capsys)
    assert "keras" in message and "torchscript" in message
    message = _error(["export", "--ckpt_path", str(run), "--output", str(tmp_path / "m.zip"),
                      "--sample", str(tmp_path / "none.tif")], capsys)
    assert "none.tif" in message
    assert not list(tmp_path.glob("*.zip")) and not list(tmp_path.glob(".*partial"))
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_export_names_a_normalization_the_spec_cannot_express(run: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    contents = torch.load(run, map_location="cpu", weights_only=True)
    config = yaml.safe_load(contents["im2im"]["config"])
    config["data"]["normalize"] = [{"class_path": "im2im_core.data.normalization.CenterNormalized",
                                    "init_args": {"keys": ["IM"], "spatial_dims": 2}}]
    contents["im2im"]["config"] = yaml.safe_dump(config)
    changed = tmp_path / "center.ckpt"
    torch.save(contents, changed)
    message = _error(["export", "--ckpt_path", str(changed), "--output", str(tmp_path / "m.zip")], capsys)
    assert "CenterNormalized" in message and "PercentileNormalized" in message
    assert not (tmp_path / "m.zip").exists()



def test_a_package_streams_to_ome_zarr_with_tta_and_keeps_a_time_axis(package: Path, tmp_path: Path) -> None:
    out = tmp_path / "zarr"
    assert main(["predict", "--model", str(package), "--data.predict_path", str(HOLDOUT), "--prediction.output_dir", str(out),
                 "--prediction.output_format", "ome-zarr", "--prediction.inference.tta", "flips",
                 "--trainer.enable_progress_bar", "false"]) == 0
    assert len(list(out.glob("*.ome.zarr"))) == 4
    image = BioImage(sorted((HOLDOUT / "IM").glob("*.tif"))[0]).get_image_data("YX")
    series = np.stack([image, image[::-1]])[:, None]  # T, C, Y, X
    labels = predict(package, series, dims="TCYX")
    assert labels.shape == series.shape and np.array_equal(labels[1, 0], predict(package, image[::-1].copy()))
