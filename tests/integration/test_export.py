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
from im2im_core.testing import DEMO_DATA, one_line_error, train_demo

FORMATS = ("pytorch_state_dict", "torchscript", "onnx")
HOLDOUT = DEMO_DATA / "holdout"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Every network connection fails, and none may be tried (bioimageio.spec only warns when a look-up fails)."""
    attempts: list[tuple] = []

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        attempts.append(args[1:] if args else ())
        raise OSError("network access during a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield
    assert not attempts, f"network connections tried: {attempts}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo preset trained for a few steps: its last checkpoint."""
    return train_demo(tmp_path_factory.mktemp("export_run"), steps=6, images=4, channels=(8, 16, 32), strides=(2, 2))


@pytest.fixture(scope="module")
def package(run: Path) -> Path:
    output = run.parents[2] / "demo_model.zip"
    attempts: list[tuple] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", lambda *a: (attempts.append(a[1:]), (_ for _ in ()).throw(OSError("no")))[1])
        code = main(["export", "--ckpt_path", str(run), "--output", str(output), "--authors", "Ada Lovelace; Alan Turing"])
    assert code == 0 and not attempts
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
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    common = ["--data.predict_path", str(HOLDOUT), "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]
    assert main(["predict", "--ckpt_path", str(run), "--prediction.output_dir", str(tmp_path / "ckpt"), *common]) == 0
    reference = _masks(tmp_path / "ckpt")
    assert len(reference) == 4 and sum(int(m.sum()) for m in reference.values()) > 0
    image = BioImage(sorted((HOLDOUT / "IM").glob("*.tif"))[0]).get_image_data("YX")
    raw_reference = predict(run, image, normalize="auto", postprocess=None)
    for weight_format in FORMATS:
        out = tmp_path / weight_format
        capsys.readouterr()
        assert main(["predict", "--model", str(package), "--model.init_args.weight_format", weight_format,
                     "--prediction.output_dir", str(out), *common]) == 0
        assert "Dice on 4 images with targets" in capsys.readouterr().out  # scored against the holdout masks
        masks = _masks(out)
        assert masks.keys() == reference.keys()
        for name, mask in masks.items():
            assert np.array_equal(mask, reference[name]), (weight_format, name)
        from im2im_core.export.imported import PackagedModel

        raw = predict(PackagedModel(str(package), weight_format), image, postprocess=None)  # its own normalization
        difference = float(np.abs(raw - raw_reference).max())
        with capsys.disabled():
            print(f"\n{weight_format}: largest raw (logit) difference to the checkpoint {difference:.2e}")
        assert difference < 1e-3
    assert np.array_equal(predict(package, image), predict(run, image, normalize="auto"))


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
    assert main(["predict", "--model", str(package / "rdf.yaml"), "--data.predict_path", str(HOLDOUT),
                 "--prediction.output_dir", str(out),
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


_error = one_line_error


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

    halo = _foreign_package(tmp_path / "halo")  # valid for bioimage.io, not for im2im's windows
    rdf = yaml.safe_load((halo / "rdf.yaml").read_text())
    for axis in rdf["outputs"][0]["axes"][2:]:
        axis["halo"] = 4
    (halo / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    message = _error(["predict", "--model", str(halo), *predict_args], capsys)
    assert str(halo) in message and "halo" in message
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
    config["data"]["normalize"] = [{"class_path": "monai.transforms.HistogramNormalized", "init_args": {"keys": ["IM"]}}]
    contents["im2im"]["config"] = yaml.safe_dump(config)
    changed = tmp_path / "center.ckpt"
    torch.save(contents, changed)
    message = _error(["export", "--ckpt_path", str(changed), "--output", str(tmp_path / "m.zip")], capsys)
    assert "HistogramNormalized" in message and "PercentileNormalized" in message
    assert not (tmp_path / "m.zip").exists()



def test_a_package_streams_to_ome_zarr_with_tta_and_takes_5d_inputs(run: Path, package: Path, tmp_path: Path) -> None:
    out = tmp_path / "zarr"
    assert main(["predict", "--model", str(package), "--data.predict_path", str(HOLDOUT), "--prediction.output_dir", str(out),
                 "--prediction.output_format", "ome-zarr", "--prediction.inference.tta", "flips",
                 "--trainer.enable_progress_bar", "false"]) == 0
    stores = sorted(out.glob("*.ome.zarr"))
    assert len(stores) == 4
    first = sorted((HOLDOUT / "IM").glob("*.tif"))[0]
    image = BioImage(first).get_image_data("YX")
    streamed = BioImage(stores[0]).get_image_data("YX")
    assert np.array_equal(streamed, predict(run, image, normalize="auto", tta="flips"))  # TTA as from the checkpoint
    series = np.stack([np.stack([image, image[::-1]]), np.stack([image[:, ::-1], image])])[:, None]  # T, C, Z, Y, X
    labels = predict(package, series, dims="TCZYX", slice_by_slice=True)
    assert labels.shape == series.shape
    assert np.array_equal(labels[1, 0, 0], predict(package, image[:, ::-1].copy()))


def test_a_format_04_package_predicts(tmp_path: Path, offline: None) -> None:
    """Most of the model zoo is format 0.4: it is converted to 0.5 when read."""
    package = _foreign_package(tmp_path / "new")
    old = tmp_path / "old"
    old.mkdir()
    for name in ("unet.pt", "in.npy", "out.npy", "README.md"):
        shutil.copy(package / name, old / name)
    rdf = {"format_version": "0.4.10", "type": "model", "name": "foreign unet 04", "description": "format 0.4",
           "documentation": "README.md", "authors": [{"name": "Someone Else"}], "license": "MIT",
           "cite": [{"text": "none", "doi": "10.1000/1"}], "timestamp": "2024-01-01T00:00:00",
           "test_inputs": ["in.npy"], "test_outputs": ["out.npy"],
           "inputs": [{"name": "raw", "axes": "bcyx", "data_type": "float32", "shape": {"min": [1, 1, 16, 16],
                                                                                       "step": [0, 0, 2, 2]},
                       "preprocessing": [{"name": "zero_mean_unit_variance", "kwargs": {"mode": "per_sample",
                                                                                       "axes": "cyx"}}]}],
           "outputs": [{"name": "prob", "axes": "bcyx", "data_type": "float32",
                        "shape": {"reference_tensor": "raw", "scale": [1, 1, 1, 1], "offset": [0, 0, 0, 0]},
                        "postprocessing": [{"name": "sigmoid"}]}],
           "weights": {"torchscript": {"source": "unet.pt", "pytorch_version": "2.0"}}}
    (old / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    image = BioImage(sorted((HOLDOUT / "IM").glob("*.tif"))[0]).get_image_data("YX")
    assert np.allclose(predict(old, image), predict(package, image), atol=1e-6)


def test_export_writes_the_samples_pixel_size_and_leaves_nothing_when_zipping_fails(
        run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from im2im_core.inference.outputs import save_ome_tiff

    sample = tmp_path / "sample.ome.tiff"
    image = BioImage(sorted((HOLDOUT / "IM").glob("*.tif"))[0]).get_image_data("YX")
    save_ome_tiff(image, sample, "YX", {"Y": 0.65, "X": 0.65})
    output = tmp_path / "sized.zip"
    assert main(["export", "--ckpt_path", str(run), "--output", str(output), "--sample", str(sample),
                 "--weights", "torchscript"]) == 0
    with zipfile.ZipFile(output) as archive:
        axes = yaml.safe_load(archive.read("rdf.yaml"))["inputs"][0]["axes"]
    assert [(a.get("unit"), a.get("scale")) for a in axes[2:]] == [("micrometer", 0.65)] * 2

    import bioimageio.spec

    def full_disk(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bioimageio.spec, "save_bioimageio_package", full_disk)
    failed = tmp_path / "failed.zip"
    message = _error(["export", "--ckpt_path", str(run), "--output", str(failed), "--weights", "torchscript"], capsys)
    assert "No space left" in message and str(failed) in message
    assert not failed.exists() and not list(tmp_path.glob(".*partial*")) and not list(tmp_path.glob("*.zip.*"))
