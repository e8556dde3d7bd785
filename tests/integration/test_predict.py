"""Prediction into files: OME-TIFF and OME-Zarr, axes and pixel sizes, atomic writes, no overwriting."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from bioio import BioImage
from bioio_base.types import PhysicalPixelSizes
from bioio_ome_tiff.writers import OmeTiffWriter
from monai.networks.nets import UNet
from torch import nn

from im2im_core.data import Im2ImDataModule
from im2im_core.errors import DataError
from im2im_core.frameworks.fcn import FCN
from im2im_core.inference import Inference, predict_file
from im2im_core.inference.writer import PredictionWriter, WindowProgressBar


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv3d(2, 1, 1)).eval()


class _Crash(nn.Module):
    """Passes windows through until the ``after``-th call, then fails as an interrupt would."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.conv, self.calls, self.after = nn.Conv3d(1, 1, 1), 0, after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        return self.conv(x)


@pytest.fixture
def image_5d(tmp_path: Path) -> Path:
    """A 2-timepoint, 1-channel 12x40x48 OME-TIFF with pixel sizes."""
    path = tmp_path / "cells.ome.tiff"
    data = np.random.default_rng(0).integers(0, 4000, (2, 1, 12, 40, 48), dtype=np.uint16)
    OmeTiffWriter.save(data, str(path), dim_order="TCZYX", physical_pixel_sizes=PhysicalPixelSizes(0.5, 0.1, 0.1))
    return path


@pytest.mark.parametrize("output_format", ["ome-tiff", "ome-zarr"])
def test_5d_file_keeps_axes_and_pixel_sizes(image_5d: Path, tmp_path: Path, output_format: str):
    out = predict_file(_net(), image_5d, tmp_path / "out", dims="TCZYX", output_format=output_format, roi_size=[16, 32, 32])
    assert out.name == f"cells_pred.{output_format.replace('-', '.')}"
    result = BioImage(out)
    assert result.dims.order == "TCZYX" and result.shape == (2, 1, 12, 40, 48)
    assert result.physical_pixel_sizes == pytest.approx((0.5, 0.1, 0.1))
    assert result.dtype == np.float32 and np.isfinite(result.get_image_data("TCZYX")).all()
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # nothing left beside it


@pytest.mark.parametrize("output_format", ["ome-tiff", "ome-zarr"])
def test_interrupted_prediction_leaves_no_output_file(image_5d: Path, tmp_path: Path, output_format: str):
    crash = _Crash(after=12)  # 9 windows per timepoint: the first timepoint is complete (and in the store)
    with pytest.raises(KeyboardInterrupt):
        predict_file(crash, image_5d, tmp_path / "out", dims="TCZYX", output_format=output_format,
                     roi_size=[16, 16, 16], sw_batch_size=1, optimize=False)
    assert crash.calls == 13
    assert list((tmp_path / "out").iterdir()) == []


def test_existing_output_stays_untouched_without_overwrite(image_5d: Path, tmp_path: Path):
    out = tmp_path / "out" / "cells_pred.ome.tiff"
    out.parent.mkdir()
    out.write_bytes(b"an earlier result")
    with pytest.raises(DataError, match="output exists"):
        predict_file(_net(), image_5d, tmp_path / "out", dims="TCZYX")
    assert out.read_bytes() == b"an earlier result"
    predict_file(_net(), image_5d, tmp_path / "out", dims="TCZYX", overwrite=True, roi_size=[16, 32, 32])
    assert BioImage(out).shape == (2, 1, 12, 40, 48)


def _predict_folder(folder: Path, writer: PredictionWriter) -> None:
    torch.manual_seed(0)
    model = FCN(backbone=UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=[4, 8], strides=[2]))
    datamodule = Im2ImDataModule(predict_path=str(folder), dims="YX", patch_size=[64, 64])
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, callbacks=[writer], enable_progress_bar=False,
                         enable_checkpointing=False)
    trainer.predict(model, datamodule=datamodule, return_predictions=False)


def test_predict_loop_writes_ome_zarr_and_refuses_to_overwrite(data_2d: Path, tmp_path: Path, capsys):
    out_dir = tmp_path / "predictions"
    writer = PredictionWriter(output_dir=str(out_dir), output_format="ome-zarr",
                              inference=Inference(roi_size=[128, 128], tta="flips"))
    _predict_folder(data_2d, writer)
    outputs = sorted(out_dir.iterdir())
    assert [p.name for p in outputs] == [f"{p.stem}_pred.ome.zarr" for p in sorted((data_2d / "IM").iterdir())]
    mask = BioImage(outputs[0]).get_image_data("CYX")
    assert mask.shape == (1, 256, 256) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert "Dice on 4 images with targets" in capsys.readouterr().out
    before = {p: p.stat().st_mtime_ns for p in out_dir.rglob("*")}
    with pytest.raises(DataError, match="output exists"):
        _predict_folder(data_2d, PredictionWriter(output_dir=str(out_dir), output_format="ome-zarr"))
    assert {p: p.stat().st_mtime_ns for p in out_dir.rglob("*")} == before


def test_predict_loop_keeps_time_axis_and_normalizes_each_timepoint(image_5d: Path, tmp_path: Path):
    """``im2im predict`` with ``data.dims: TCZYX``: each timepoint normalized and predicted in turn."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    image_5d.rename(folder / image_5d.name)
    source = BioImage(folder / image_5d.name).get_image_data("TCZYX").astype(np.float32)
    source[1] = source[0] * 3 + 500  # the first timepoint, brighter: normalized on its own, it predicts the same
    OmeTiffWriter.save(source.astype(np.uint16), str(folder / image_5d.name), dim_order="TCZYX",
                       physical_pixel_sizes=PhysicalPixelSizes(0.5, 0.1, 0.1))
    torch.manual_seed(0)
    model = FCN(backbone=UNet(spatial_dims=3, in_channels=1, out_channels=1, channels=[4, 8], strides=[2]), task="regression")
    inference = Inference(roi_size=[8, 32, 32], optimize=False)
    writer = PredictionWriter(output_dir=str(tmp_path / "out"), inference=inference)
    calls: list[tuple[int, int]] = []
    writer_start = writer.on_predict_start

    class WatchedBar(WindowProgressBar):
        def __call__(self, done: int, total: int) -> None:
            calls.append((done, total))
            super().__call__(done, total)

    def start_and_watch(trainer: pl.Trainer, module: pl.LightningModule) -> None:
        writer_start(trainer, module)
        assert writer.window_bar is not None  # the progress bar is on: windows get a bar of their own
        writer.window_bar = WatchedBar()

    writer.on_predict_start = start_and_watch
    datamodule = Im2ImDataModule(predict_path=str(folder), dims="TCZYX", patch_size=[8, 32, 32], target="intensity")
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, callbacks=[writer], enable_checkpointing=False)
    trainer.predict(model, datamodule=datamodule, return_predictions=False)

    result = BioImage(tmp_path / "out" / "cells_pred.ome.tiff")
    assert result.dims.order == "TCZYX" and result.shape == (2, 1, 12, 40, 48)
    assert result.physical_pixel_sizes == pytest.approx((0.5, 0.1, 0.1))
    output = result.get_image_data("TCZYX")
    from im2im_core.inference import predict

    for t in range(2):
        low, high = np.percentile(source[t], [0.5, 99.5])
        expected = predict(model, (source[t] - low) / (high - low), dims="CZYX", inference=inference)
        np.testing.assert_allclose(output[t], expected, atol=1e-5)
    np.testing.assert_allclose(output[0], output[1], atol=1e-3)
    assert calls and calls[-1][0] == calls[-1][1] and sum(done == total for done, total in calls) == 2  # one pass per timepoint


class _Fails2D(nn.Module):
    """A 2D network that fails at its ``after``-th call, as a crash mid-image would."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.conv, self.calls, self.after = nn.Conv2d(1, 1, 3, padding=1), 0, after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls >= self.after:
            raise RuntimeError("network failed")
        return self.conv(x)


def _predict_with(backbone: nn.Module, folder: Path, out_dir: Path, output_format: str, **datamodule_args) -> None:
    model = FCN(backbone=backbone, task="regression")
    writer = PredictionWriter(output_dir=str(out_dir), output_format=output_format, evaluate=False,
                              inference=Inference(roi_size=[64, 64], sw_batch_size=1, optimize=False))
    datamodule = Im2ImDataModule(predict_path=str(folder), dims="YX", patch_size=[64, 64], **datamodule_args)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, callbacks=[writer], enable_progress_bar=False,
                         enable_checkpointing=False)
    trainer.predict(model, datamodule=datamodule, return_predictions=False)


def test_ome_zarr_output_streams_from_a_lazy_input_and_equals_the_in_memory_result(data_2d: Path, tmp_path: Path):
    datamodule = Im2ImDataModule(predict_path=str(data_2d), dims="YX", patch_size=[64, 64])
    datamodule.setup("predict")
    sample = datamodule.predict_dataloader().dataset[0]
    assert hasattr(sample["IM"], "compute") and sample["IM_normalize"] == (0.5, 99.5)  # read band by band
    torch.manual_seed(0)
    network = nn.Conv2d(1, 1, 5, padding=2)
    for output_format in ("ome-tiff", "ome-zarr"):
        _predict_with(network, data_2d, tmp_path / output_format, output_format)
    for tiff in sorted((tmp_path / "ome-tiff").iterdir()):
        zarr = tmp_path / "ome-zarr" / tiff.name.replace(".ome.tiff", ".ome.zarr")
        np.testing.assert_allclose(BioImage(zarr).get_image_data("CYX"), BioImage(tiff).get_image_data("CYX"), atol=1e-6)
    # any other normalization needs the image whole: read into memory, normalized there, same output
    from monai.transforms import Identityd

    from im2im_core.data.normalization import PercentileNormalized

    custom = [PercentileNormalized(["IM"]), Identityd(["IM"])]
    in_memory = Im2ImDataModule(predict_path=str(data_2d), dims="YX", patch_size=[64, 64], normalize=custom)
    in_memory.setup("predict")
    assert not hasattr(in_memory.predict_dataloader().dataset[0]["IM"], "compute")
    _predict_with(network, data_2d, tmp_path / "in_memory", "ome-zarr", normalize=custom)
    for streamed in sorted((tmp_path / "ome-zarr").iterdir()):
        np.testing.assert_allclose(BioImage(tmp_path / "in_memory" / streamed.name).get_image_data("CYX"),
                                   BioImage(streamed).get_image_data("CYX"), atol=1e-5)


def test_a_failure_while_streaming_leaves_no_output_file(data_2d: Path, tmp_path: Path):
    with pytest.raises(RuntimeError, match="network failed"):
        _predict_with(_Fails2D(after=3), data_2d, tmp_path / "out", "ome-zarr")
    assert list((tmp_path / "out").iterdir()) == []
