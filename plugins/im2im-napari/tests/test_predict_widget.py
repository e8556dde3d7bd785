"""The predict widget: streaming to OME-Zarr, cancel, and the errors a user can make, as notifications."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from im2im_cli.main import main
from im2im_core.testing import DEMO_DATA, DEMO_DATA_3D, train_demo
from im2im_napari.predict_widget import PredictWidget


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2D demo checkpoint and a 3D one, each after two steps of a tiny network (the tests need a model, not a good one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    two_d = train_demo(root / "2d")
    data = root / "3d" / "data"
    shutil.copytree(DEMO_DATA_3D, data)
    assert main(["fit", "--config", "semanticseg_3d", "--data.data_path", str(data), "--trainer.max_steps", "2",
                 "--trainer.default_root_dir", str(root / "3d" / "run"), "--trainer.enable_progress_bar", "false",
                 "--data.patch_size", "[8, 32, 32]", "--data.batch_size", "2",
                 "--model.init_args.backbone.init_args.channels", "[4, 8, 16]"]) == 0
    torch.set_num_threads(threads)
    return {"2d": two_d, "3d": root / "3d" / "run"}


def demo_image() -> np.ndarray:
    import tifffile

    return tifffile.imread(sorted((DEMO_DATA / "holdout" / "IM").glob("*.tif"))[0])


def predict_widget(viewer: Any, model: Path, layer: Any) -> PredictWidget:
    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.model_path.value = model
    if layer is not None:
        widget.layer.value = layer
    return widget


def errors(notifications: list[Any]) -> list[str]:
    return [n.message for n in notifications if n.severity == "error"]


def test_prediction_streams_to_ome_zarr_and_is_shown_lazily(make_napari_viewer: Any, wait_idle: Any, tmp_path: Path,
                                                            models: dict[str, Path], notifications: list[Any]) -> None:
    viewer = make_napari_viewer()
    layer = viewer.add_image(demo_image(), name="nuclei", scale=(0.5, 0.5))
    widget = predict_widget(viewer, models["2d"], layer)
    widget.output_dir.value = tmp_path / "out"
    widget.start()
    wait_idle(widget)
    assert not errors(notifications)
    result = viewer.layers["nuclei prediction"]
    assert (tmp_path / "out" / "nuclei_pred.ome.zarr").is_dir()
    assert type(result.data).__name__ == "Array"  # dask: read from the file as napari shows it
    assert tuple(result.scale) == (0.5, 0.5) and result.data.shape == layer.data.shape
    # the same output again is refused, and the file stays as it was
    widget.start()
    wait_idle(widget)
    assert errors(notifications) and "output exists" in errors(notifications)[-1]
    assert errors(notifications)[-1].startswith("im2im: error:")


def test_cancel_stops_the_prediction_and_leaves_no_layer_and_no_file(make_napari_viewer: Any, wait_idle: Any, qtbot: Any,
                                                                     tmp_path: Path, models: dict[str, Path],
                                                                     notifications: list[Any]) -> None:
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.tile(demo_image(), (4, 4)), name="large")
    widget = predict_widget(viewer, models["2d"], layer)
    widget.window.value = "64, 64"  # 1000+ windows: cancel comes long before the end
    widget.output_dir.value = tmp_path / "out"
    seen: list[tuple[int, int]] = []
    widget.relay.progress.connect(lambda done, total: (seen.append((done, total)), widget.cancel()))
    widget.start()
    wait_idle(widget)
    assert seen and seen[-1][0] < seen[-1][1], "cancel came after the last window"
    assert [lay.name for lay in viewer.layers] == ["large"]
    assert not any((tmp_path / "out").iterdir()), list((tmp_path / "out").iterdir())
    assert widget.status.value == "cancelled" and not errors(notifications)


def test_a_3d_model_on_a_2d_layer_is_a_notification(make_napari_viewer: Any, wait_idle: Any, models: dict[str, Path],
                                                    notifications: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    viewer = make_napari_viewer()
    layer = viewer.add_image(demo_image(), name="flat")
    widget = predict_widget(viewer, models["3d"], layer)
    widget.start()
    wait_idle(widget)
    assert errors(notifications) == ["im2im: error: layer 'flat' (256x256) has 2 spatial axes; the model is 3D and needs "
                                     "Z, Y and X (choose a 2D model or another layer)"]
    assert [lay.name for lay in viewer.layers] == ["flat"]
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("case", ["no layer", "no model", "missing model", "bad window", "bad overlap"])
def test_input_errors_are_notifications(make_napari_viewer: Any, wait_idle: Any, models: dict[str, Path],
                                        notifications: list[Any], tmp_path: Path, case: str) -> None:
    viewer = make_napari_viewer()
    layer = viewer.add_image(demo_image(), name="nuclei") if case != "no layer" else None
    widget = predict_widget(viewer, models["2d"], layer)
    expected = {"no layer": "no image layer chosen", "no model": "no model chosen",
                "missing model": f"model {tmp_path / 'nothing.ckpt'} does not exist", "bad window": "window 'big'",
                "bad overlap": "overlap 'half': expected a fraction"}[case]
    if case == "no model":
        widget.model_path.line_edit.value = ""
    if case == "missing model":
        widget.model_path.value = tmp_path / "nothing.ckpt"
    if case == "bad window":
        widget.window.value = "big"
    if case == "bad overlap":
        widget.overlap.value = "half"
    widget.start()
    wait_idle(widget)
    assert len(errors(notifications)) == 1 and expected in errors(notifications)[0], errors(notifications)
    assert errors(notifications)[0].startswith("im2im: error:")
    assert len(viewer.layers) == (0 if case == "no layer" else 1)
