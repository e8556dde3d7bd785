"""The train widget: stop and resume, the full config it runs, and layer errors as notifications."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from im2im_napari.sample_data import demo_training
from im2im_napari.train_widget import TrainWidget


def train_widget(viewer: Any, run_dir: Path) -> tuple[TrainWidget, Any, Any]:
    images, labels = [getattr(viewer, f"add_{kind}")(data, **meta) for data, meta, kind in demo_training()]
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.preset.value = "demo"
    widget.image_layer.value, widget.target_layer.value = images, labels
    widget.run_dir.value = run_dir
    widget.patch_size.value = "64, 64"
    return widget, images, labels


def test_stop_saves_last_checkpoint_and_resume_continues(make_napari_viewer: Any, wait_idle: Any, tmp_path: Path,
                                                         notifications: list[Any]) -> None:
    viewer = make_napari_viewer()
    widget, _, _ = train_widget(viewer, tmp_path / "run")
    widget.epochs.value = 10000
    widget.relay.metric.connect(lambda name, step, value: widget.stop())  # stop at the first reported loss
    widget.start()
    wait_idle(widget, 300)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    stopped = torch.load(last, map_location="cpu", weights_only=True)
    assert stopped["global_step"] <= 2, "stop did not end training after the current step"
    widget.relay.metric.disconnect()
    widget.relay.metric.connect(widget.plot.add)
    widget.resume.value = True
    widget.epochs.value = stopped["epoch"] + 2
    widget.start()
    wait_idle(widget, 300)
    resumed = torch.load(last, map_location="cpu", weights_only=True)
    assert resumed["global_step"] > stopped["global_step"] and resumed["epoch"] >= stopped["epoch"] + 1
    assert not [n.message for n in notifications if n.severity == "error"]


def test_advanced_shows_the_config_and_command_that_run(make_napari_viewer: Any, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    widget, _, _ = train_widget(viewer, tmp_path / "run")
    widget.batch_size.value = 3
    widget.lr.value = "0.0005"
    widget.show_config.value = True
    text = widget.config_text.value
    assert text.startswith("# im2im fit --config demo --trainer.default_root_dir")
    assert "batch_size: 3" in text and "lr: 0.0005" in text and "- 64" in text
    assert str(tmp_path / "run" / "checkpoints") in text  # the whole run folder moves with it


def test_layer_errors_are_notifications(make_napari_viewer: Any, wait_idle: Any, tmp_path: Path,
                                        notifications: list[Any]) -> None:
    viewer = make_napari_viewer()
    widget, _, _ = train_widget(viewer, tmp_path / "run")
    widget.target_layer.value = viewer.add_labels(np.zeros((10, 128, 128), np.uint8), name="small labels")
    widget.start()
    wait_idle(widget)
    messages = [n.message for n in notifications if n.severity == "error"]
    assert messages == ["im2im: error: layers 'BBBC039 training nuclei' (10x256x256) and 'small labels' (10x128x128) "
                        "differ in shape; a target must cover its image"]
    assert not (tmp_path / "run" / "checkpoints").exists()
