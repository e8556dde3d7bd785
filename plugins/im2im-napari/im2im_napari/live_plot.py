"""The train widget's live plot: training loss and validation metrics against the step (matplotlib)."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure


class LivePlot(FigureCanvasQTAgg):
    """Two panels that grow as :meth:`add` receives values: ``train_loss`` left, ``val_*`` right."""

    def __init__(self) -> None:
        self.figure = Figure(figsize=(4, 2.2), tight_layout=True)
        super().__init__(self.figure)
        self.setMinimumHeight(170)
        self.loss_axes, self.val_axes = self.figure.subplots(1, 2)
        self.series: dict[str, tuple[list[int], list[float]]] = {}
        self.clear()

    def clear(self) -> None:
        """Forget every value (a new run)."""
        self.series = {}
        self._draw()

    def add(self, name: str, step: int, value: float) -> None:
        """Add one value of metric ``name`` at ``step`` and redraw."""
        steps, values = self.series.setdefault(name, ([], []))
        steps.append(step)
        values.append(value)
        self._draw()

    def _draw(self) -> None:
        for axes, title in ((self.loss_axes, "training loss"), (self.val_axes, "validation")):
            axes.clear()
            axes.set_title(title, fontsize=8)
            axes.set_xlabel("step", fontsize=7)
            axes.tick_params(labelsize=6)
        for name, (steps, values) in self.series.items():
            axes = self.loss_axes if name == "train_loss" else self.val_axes
            axes.plot(steps, values, marker="o" if axes is self.val_axes else None, markersize=3, label=name)
        if any(name != "train_loss" for name in self.series):
            self.val_axes.legend(fontsize=6)
        self.draw_idle()
