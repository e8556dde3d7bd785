"""The three widgets in a headless napari viewer: train from layers, predict, evaluate, cancel, errors."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from im2im_napari.evaluate_widget import EvaluateWidget
from im2im_napari.predict_widget import PredictWidget
from im2im_napari.sample_data import demo_holdout, demo_training
from im2im_napari.train_widget import TrainWidget

#: A few epochs of the demo preset from the training layers: about 60 steps of 8 patches.
EPOCHS = 15


def add_sample(viewer: Any, sample: list[tuple[Any, dict[str, Any], str]]) -> list[Any]:
    """Add sample layer data (what File > Open Sample does) and return the layers."""
    return [getattr(viewer, f"add_{kind}")(data, **meta) for data, meta, kind in sample]


def test_train_from_layers_predict_and_evaluate(make_napari_viewer: Any, qtbot: Any, wait_idle: Any, tmp_path: Path,
                                                 notifications: list[Any]) -> None:
    viewer = make_napari_viewer(show=True)  # shown (on Xvfb): its canvas is drawn for the screenshot
    images, labels = add_sample(viewer, demo_training())
    train = TrainWidget(viewer)
    viewer.window.add_dock_widget(train, name="im2im: Train")
    train.preset.value = "demo"
    train.source.value = "layers"
    train.image_layer.value, train.target_layer.value = images, labels
    train.epochs.value = EPOCHS
    train.run_dir.value = tmp_path / "run"
    train.start()
    assert train.running
    wait_idle(train, 600)
    assert train.status.value.startswith("done"), [n.message for n in notifications]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "layers" / "IM").iterdir())[:2] == ["image_0000.tif", "image_0001.tif"]
    assert "train_loss" in train.plot.series and any(name.startswith("val_") for name in train.plot.series)

    held_images, held_labels = add_sample(viewer, demo_holdout())
    predict = PredictWidget(viewer)
    viewer.window.add_dock_widget(predict, name="im2im: Predict")
    predict.model_path.value = tmp_path / "run"
    predict.layer.value = held_images
    predict.start()
    wait_idle(predict, 120)
    result = viewer.layers[f"{held_images.name} prediction"]
    assert type(result).__name__ == "Labels"
    assert result.data.shape == held_images.data.shape
    assert tuple(result.scale) == tuple(held_images.scale)

    evaluate = EvaluateWidget(viewer)
    viewer.window.add_dock_widget(evaluate, name="im2im: Evaluate")
    evaluate.reset_choices()
    evaluate.prediction.value, evaluate.target.value = result, held_labels
    evaluate.evaluate()
    table = evaluate.table.to_dict("split")
    assert list(table["columns"]) == ["dice", "iou"] and list(table["index"])[-1] == "mean"
    assert len(table["data"]) == held_images.data.shape[0] + 1
    dice = table["data"][-1][0]
    print(f"held-out Dice of the widget-trained demo: {dice:.4f}")
    assert dice >= 0.8, f"Dice {dice} of the widget-trained demo on the held-out crops"
    assert not [n for n in notifications if n.severity == "error"]
    assert_screenshot(viewer, held_images, tmp_path / "napari.png")


def assert_screenshot(viewer: Any, layer: Any, path: Path) -> None:
    """A screenshot of the viewer with the three widgets docked and the prediction over the held-out crops.

    With ``IM2IM_SCREENSHOT_DIR`` set it is also copied there (docs/images keeps the one docs/napari.md shows).
    """
    from qtpy.QtWidgets import QApplication

    prediction = viewer.layers[f"{layer.name} prediction"]
    for other in viewer.layers:
        other.visible = other in (layer, prediction)
    prediction.contour = 2  # outlines over the nuclei they segment
    viewer.layers.selection.active = prediction
    viewer.dims.set_current_step(0, 1)  # a held-out crop (the training stack is longer)
    viewer.window.resize(1900, 1250)
    viewer.reset_view()
    deadline = time.monotonic() + 20
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    while canvas[..., :3].std() <= 10 and time.monotonic() < deadline:  # napari draws a new slice asynchronously
        QApplication.processEvents()
        time.sleep(0.1)
        canvas = viewer.screenshot(canvas_only=True, flash=False)
    assert canvas[..., :3].std() > 10, "the canvas shows nothing"
    shot = viewer.screenshot(str(path), canvas_only=False, flash=False)
    assert shot.shape[0] >= 1000 and shot.shape[1] >= 1800
    if os.environ.get("IM2IM_SCREENSHOT_DIR"):
        shutil.copy(path, Path(os.environ["IM2IM_SCREENSHOT_DIR"]) / "napari_widgets.png")
