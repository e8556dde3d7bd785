"""The train widget: a preset, data from layers or a folder, the few options a user changes, a live plot."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    RadioButtons,
    SpinBox,
    TextEdit,
)
from napari.layers import Image, Labels
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QVBoxLayout, QWidget

from im2im_cli.main import run_lightning
from im2im_core.errors import ConfigError
from im2im_napari.live_plot import LivePlot
from im2im_napari.qt_common import Relay, error_message, layer_combo, notify_error, optional_number, path_text, start_worker
from im2im_napari.training import (
    LAYERS_FOLDER,
    LiveTraining,
    TrainingRequest,
    fit_arguments,
    last_checkpoint,
    preset_info,
    preset_names,
    printed_config,
    write_layers,
)


def _sizes(text: str, what: str) -> list[int] | None:
    text = text.strip()
    if not text:
        return None
    try:
        return [int(part) for part in text.replace("x", ",").split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{what} {text!r}: expected whole numbers such as '128, 128'") from None


def _learning_rate(text: str) -> float | None:
    value = optional_number(text, "learning rate", "a number such as 0.001")
    if value is not None and value <= 0:
        raise ConfigError(f"learning rate {text!r}: expected a positive number")
    return value


class TrainWidget(QWidget):
    """Train any registered preset from napari layers or a data folder, as ``im2im fit`` would.

    The run is ``im2im fit --config PRESET`` with the options of the form (the "advanced" box
    shows the full config and the command); it writes the run folder the CLI would, with the
    layers saved under ``<run folder>/layers``. Training runs in a worker thread; the plot
    shows the training loss and the validation metrics as they come; stop ends it after the
    current step with ``last.ckpt`` saved, and "resume" continues from it.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        names = preset_names()
        self.preset = ComboBox(label="preset", choices=names, value="demo" if "demo" in names else names[0])
        self.description = Label(value="")
        self.source = RadioButtons(label="data", choices=["layers", "folder"], value="layers", orientation="horizontal")
        self.image_layer = layer_combo(napari_viewer, "image layer", Image)
        self.target_layer = layer_combo(napari_viewer, "target layer", Labels, Image, nullable=True)
        self.data_dir = FileEdit(label="data folder", mode="d", value="")
        self.budget = RadioButtons(label="budget", choices=["epochs", "minutes"], value="epochs", orientation="horizontal")
        self.epochs = SpinBox(label="epochs", min=1, max=100000, value=40)
        self.minutes = FloatSpinBox(label="minutes", min=0.1, max=100000.0, step=1.0, value=10.0, visible=False)
        self.patch_size = LineEdit(label="patch size", value="")
        self.batch_size = SpinBox(label="batch size", min=1, max=4096, value=8)
        self.lr = LineEdit(label="learning rate", value="")
        self.run_dir = FileEdit(label="run folder", mode="d", value="")
        self.resume = CheckBox(label="resume from the run's last.ckpt", value=False)
        self.train_button = PushButton(text="Train")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.show_config = CheckBox(label="advanced: show the full config", value=False)
        self.config_text = TextEdit(value="", visible=False)
        self.status = Label(value="")
        self.form = Container(widgets=[self.preset, self.description, self.source, self.image_layer, self.target_layer,
                                       self.data_dir, self.budget, self.epochs, self.minutes, self.patch_size,
                                       self.batch_size, self.lr, self.run_dir, self.resume, self.train_button,
                                       self.stop_button, self.status, self.show_config, self.config_text])
        self.config_text.native.setReadOnly(True)
        self.plot = LivePlot()
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        layout.addWidget(self.plot)
        self.relay = Relay()
        self.relay.metric.connect(self.plot.add)
        self.stop_event = threading.Event()
        self.worker: Any = None
        self.preset.changed.connect(self._preset_changed)
        self.source.changed.connect(self._source_changed)
        self.budget.changed.connect(self._budget_changed)
        self.show_config.changed.connect(self._refresh_config)
        self.train_button.changed.connect(self.start)
        self.stop_button.changed.connect(self.stop)
        self._preset_changed()
        self._source_changed()

    # ------------------------------------------------------------------ form
    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer choices (napari calls it when layers change)."""
        self.form.reset_choices()

    def _preset_changed(self, *_: Any) -> None:
        info = preset_info(self.preset.value)
        self.description.value = info.description
        if info.max_epochs and info.max_epochs > 0:
            self.epochs.value = int(info.max_epochs)
        self.patch_size.value = ", ".join(str(n) for n in info.patch_size) if info.patch_size else ""
        if info.batch_size:
            self.batch_size.value = int(info.batch_size)
        self.lr.value = f"{info.lr:g}" if info.lr is not None else ""
        self.lr.enabled = bool(info.lr_keys)
        self.run_dir.value = Path.cwd() / "im2im_runs" / info.name
        self.target_layer.enabled = info.needs_target
        self._refresh_config()

    def _source_changed(self, *_: Any) -> None:
        layers = self.source.value == "layers"
        self.image_layer.visible, self.target_layer.visible, self.data_dir.visible = layers, layers, not layers

    def _budget_changed(self, *_: Any) -> None:
        self.epochs.visible, self.minutes.visible = self.budget.value == "epochs", self.budget.value == "minutes"

    def _refresh_config(self, *_: Any) -> None:
        self.config_text.visible = self.show_config.value
        if not self.show_config.value:
            return
        try:
            args = fit_arguments(self.request())
            self.config_text.value = f"# im2im {' '.join(args)}\n" + printed_config(args)
        except Exception as exc:  # noqa: BLE001 (shown where the config would be)
            self.config_text.value = error_message(exc)

    def request(self, data_path: Path | None = None) -> TrainingRequest:
        """The :class:`TrainingRequest` of the form (``data_path``: where the layers go, for layer data)."""
        if not path_text(self.run_dir):
            raise ConfigError("no run folder chosen: choose the folder where the run's checkpoints and logs go")
        run_dir = Path(path_text(self.run_dir)).expanduser()
        if self.source.value == "layers":  # where write_layers puts them: IM and GT, or images alone
            data = data_path or run_dir / LAYERS_FOLDER / ("" if preset_info(self.preset.value).needs_target else "IM")
        else:
            text = path_text(self.data_dir)
            if not text:
                raise ConfigError("no data folder chosen: choose a folder with IM and GT subfolders (or choose layers)")
            data = Path(text).expanduser()
        epochs = self.epochs.value if self.budget.value == "epochs" else None
        minutes = self.minutes.value if self.budget.value == "minutes" else None
        return TrainingRequest(self.preset.value, run_dir, data, epochs=epochs, minutes=minutes,
                               patch_size=_sizes(self.patch_size.value, "patch size"), batch_size=self.batch_size.value,
                               lr=_learning_rate(self.lr.value) if self.lr.enabled else None, resume=self.resume.value)

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        """Whether a training run is in progress."""
        return self.worker is not None

    def _layers(self) -> tuple[tuple[str, Any, bool], tuple[str, Any] | None]:
        image = self.image_layer.value
        if image is None:
            raise ConfigError("no image layer chosen: open an image (or File > Open Sample > im2im) and choose it")
        target = self.target_layer.value if self.target_layer.enabled else None
        return (image.name, image.data, image.rgb), ((target.name, target.data) if target is not None else None)

    def start(self, *_: Any) -> None:
        """Start ``im2im fit`` in a worker thread (errors become notifications)."""
        if self.running:
            return
        try:
            request = self.request()
            layers = self._layers() if self.source.value == "layers" else None
            if not request.resume and last_checkpoint(request.run_dir) is not None:
                show_info(f"im2im: run folder {request.run_dir} holds a checkpoint; training starts afresh (tick resume "
                          f"to continue it)")
        except Exception as exc:  # noqa: BLE001 (every error becomes a notification)
            notify_error(exc)
            return
        self.stop_event = threading.Event()
        callback = LiveTraining(self.relay.metric.emit, self.stop_event)

        def work() -> Path | None:
            if layers is not None:
                request.data_path = write_layers(request.run_dir, request.preset, *layers)
            run_lightning(fit_arguments(request), callbacks=[callback])
            return last_checkpoint(request.run_dir)

        self.plot.clear()
        self.train_button.enabled, self.stop_button.enabled = False, True
        self.status.value = f"training {request.preset} in {request.run_dir} ..."
        self.worker = start_worker(work, self._done, self._failed, self._finished)

    def stop(self, *_: Any) -> None:
        """Stop training after the current step (``last.ckpt`` is saved)."""
        self.stop_event.set()

    def _done(self, checkpoint: Path | None) -> None:
        self.status.value = f"done: {checkpoint}" if checkpoint else "done (no checkpoint saved)"
        show_info(f"im2im: training ended; checkpoint {checkpoint}")

    def _failed(self, exc: BaseException) -> None:
        self.status.value = "failed"
        notify_error(exc)

    def _finished(self) -> None:
        self.worker = None
        self.train_button.enabled, self.stop_button.enabled = True, False
