"""The predict widget: a model, an image layer, TTA and window options; the result as a new layer."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, LineEdit, ProgressBar, PushButton
from napari.layers import Image
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QVBoxLayout, QWidget

from im2im_core.errors import ConfigError
from im2im_core.inference import Inference
from im2im_napari.models import load
from im2im_napari.prediction import LayerInput, LayerPrediction, PredictionCancelled, PredictionRequest, predict_layer
from im2im_napari.qt_common import Relay, layer_combo, notify_error, optional_number, path_text, start_worker

#: TTA choices, as ``prediction.inference.tta`` takes them.
TTA_CHOICES = ("none", "flips", "rot90", "flips_rot90")


def _window(text: str) -> list[int] | None:
    """``"auto"`` or empty: None (the framework's window, else automatic); else sizes such as ``256, 256``."""
    text = text.strip()
    if text in ("", "auto"):
        return None
    try:
        sizes = [int(part) for part in text.replace("x", ",").split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"window {text!r}: expected 'auto' or sizes such as '256, 256'") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"window {text!r}: expected 'auto' or positive sizes such as '256, 256'")
    return sizes


class PredictWidget(QWidget):
    """Predict an image layer with an im2im checkpoint, run folder or bioimage.io package.

    The prediction runs in a worker thread, window by window with a progress bar; cancel stops
    it at the next window and leaves no layer and no file. Masks and instance labels become a
    labels layer, intensities an image layer, with the input's scale and name. With an output
    folder the result streams to ``<folder>/<layer>_pred.ome.zarr`` and is shown lazily
    (required for inputs over 1 GiB or lazy ones).
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.model_path = FileEdit(label="model", mode="r", filter="*.ckpt *.zip *.yaml",
                                   tooltip="a checkpoint (.ckpt), a run folder of im2im fit, or a bioimage.io package")
        self.layer = layer_combo(napari_viewer, "image", Image)
        self.tta = ComboBox(label="TTA", choices=TTA_CHOICES, value="none")
        self.window = LineEdit(label="window", value="auto", tooltip="'auto' or sizes such as '256, 256'")
        self.overlap = LineEdit(label="overlap", value="", tooltip="fraction shared with each neighbour; empty: the model's")
        self.output_dir = FileEdit(label="output folder", mode="d", value="",
                                   tooltip="optional: stream the result to an OME-Zarr file here")
        self.overwrite = CheckBox(label="overwrite", value=False)
        self.run_button = PushButton(text="Predict")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="windows", value=0, max=1)
        self.status = Label(value="")
        self.form = Container(widgets=[self.model_path, self.layer, self.tta, self.window, self.overlap, self.output_dir,
                                       self.overwrite, self.run_button, self.cancel_button, self.progress, self.status])
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        layout.addStretch()
        self.relay = Relay()
        self.relay.progress.connect(self._show_progress)
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        self.cancel_event = threading.Event()
        self.worker: Any = None

    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer choice (napari calls it when layers change)."""
        self.form.reset_choices()

    @property
    def running(self) -> bool:
        """Whether a prediction is in progress."""
        return self.worker is not None

    def _request(self) -> PredictionRequest:
        layer = self.layer.value
        if layer is None:
            raise ConfigError("no image layer chosen: open an image (or File > Open Sample > im2im) and choose it")
        overlap = optional_number(self.overlap.value, "overlap", "a fraction in [0, 1), or empty for the model's default")
        inference = Inference(roi_size=_window(self.window.value), overlap=overlap, tta=self.tta.value)
        text = path_text(self.output_dir)
        output = Path(text).expanduser() if text else None
        layer_input = LayerInput(layer.name, layer.data, tuple(layer.scale), layer.rgb)
        return PredictionRequest(layer_input, inference=inference, output_dir=output, overwrite=self.overwrite.value)

    def start(self, *_: Any) -> None:
        """Start predicting in a worker thread (errors become notifications)."""
        if self.running:
            return
        try:
            request = self._request()
        except Exception as exc:  # noqa: BLE001 (every error becomes a notification)
            notify_error(exc)
            return
        model_path = path_text(self.model_path)
        self.cancel_event = threading.Event()
        cancel, relay = self.cancel_event, self.relay

        def work() -> LayerPrediction:
            return predict_layer(load(model_path), request, progress=relay.progress.emit, cancel=cancel)

        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.status.value = f"predicting {request.layer.name} ..."
        self.worker = start_worker(work, self._add_layer, self._failed, self._finished)

    def cancel(self, *_: Any) -> None:
        """Stop the running prediction at its next window."""
        self.cancel_event.set()

    def _show_progress(self, done: int, total: int) -> None:
        self.progress.max = max(total, 1)
        self.progress.value = min(done, total)

    def _add_layer(self, result: LayerPrediction) -> None:
        add = self.viewer.add_labels if result.kind == "labels" else self.viewer.add_image
        add(result.data, name=result.name, scale=result.scale)
        self.status.value = f"{result.name}: {result.kind}" + (f", saved to {result.path}" if result.path else "")

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, PredictionCancelled):
            self.status.value = "cancelled"
            show_info("im2im: prediction cancelled; nothing was added or written")
            return
        self.status.value = "failed"
        notify_error(exc)

    def _finished(self) -> None:
        self.worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False
