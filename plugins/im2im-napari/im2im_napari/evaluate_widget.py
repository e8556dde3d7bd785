"""The evaluate widget: a prediction layer against a ground-truth layer, the metrics of ``im2im evaluate`` in a table."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton, Table
from napari.layers import Image, Labels
from qtpy.QtWidgets import QVBoxLayout, QWidget

from im2im_core.errors import ConfigError
from im2im_napari.evaluation import KINDS, score_layers
from im2im_napari.qt_common import layer_combo, notify_error


class EvaluateWidget(QWidget):
    """Score a prediction layer against a ground-truth layer: Dice and IoU (masks), AP (instances),
    Pearson, SSIM and PSNR (intensities), one row per image of a stack and their mean.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.prediction = layer_combo(napari_viewer, "prediction", Labels, Image)
        self.target = layer_combo(napari_viewer, "ground truth", Labels, Image)
        self.spatial = ComboBox(label="images are", choices=[("2D (each plane of a stack)", 2), ("3D (ZYX)", 3)], value=2)
        self.kind = ComboBox(label="kind", choices=KINDS, value="auto")
        self.normalize = CheckBox(label="percentile-normalize intensities", value=False)
        self.run_button = PushButton(text="Evaluate")
        self.summary = Label(value="")
        self.table = Table()
        self.form = Container(widgets=[self.prediction, self.target, self.spatial, self.kind, self.normalize,
                                       self.run_button, self.summary, self.table])
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        self.run_button.changed.connect(self.evaluate)

    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer choices (napari calls it when layers change)."""
        self.form.reset_choices()

    def evaluate(self, *_: Any) -> None:
        """Score the chosen layers and fill the table (errors become notifications)."""
        try:
            pred, target = self.prediction.value, self.target.value
            if pred is None or target is None:
                raise ConfigError("choose a prediction layer and a ground-truth layer to evaluate")
            kind, names, rows = score_layers((pred.name, pred.data), (target.name, target.data), self.spatial.value,
                                             self.kind.value, self.normalize.value)
        except Exception as exc:  # noqa: BLE001 (every error becomes a notification)
            notify_error(exc)
            return
        labels = [str(i) for i in range(len(rows) - 1)] + ["mean"]
        self.table.value = {"data": [[round(v, 4) for v in row] for row in rows], "index": labels, "columns": names}
        self.summary.value = f"{kind}: {pred.name} against {target.name}, {len(rows) - 1} image(s)"
