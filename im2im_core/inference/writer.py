"""Write predictions as OME-TIFF, atomically, and evaluate them against targets when known."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from im2im_core.data.layouts import _stem
from im2im_core.data.readers import BioioReader
from im2im_core.errors import DataError
from im2im_core.metrics import dice, pearson

SPATIAL = "ZYX"


def output_path(input_path: str | Path, output_dir: str | Path, suffix: str = "_pred") -> Path:
    """The OME-TIFF file a prediction of ``input_path`` is written to."""
    return Path(output_dir) / f"{_stem(Path(input_path))}{suffix}.ome.tiff"


def write_ome_tiff(array: np.ndarray, path: Path, dims: str, pixel_sizes: dict[str, float]) -> None:
    """Write ``array`` with axes ``dims`` to ``path`` through a temporary file and a rename.

    A crash while writing leaves no file at ``path``.
    """
    from bioio_base.types import PhysicalPixelSizes
    from bioio_ome_tiff.writers import OmeTiffWriter

    partial = path.with_name(f".{path.name}.partial.ome.tiff")
    sizes = PhysicalPixelSizes(pixel_sizes.get("Z"), pixel_sizes.get("Y"), pixel_sizes.get("X"))
    try:
        OmeTiffWriter.save(array, str(partial), dim_order=dims, physical_pixel_sizes=sizes)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


class PredictionWriter(BasePredictionWriter):
    """Save each prediction next to its input's name; print a metric when a target exists.

    Parameters
    ----------
    output_dir : str
        Folder for the outputs, created if needed.
    overwrite : bool
        Replace outputs that exist already. Without it, prediction stops before computing
        anything if one of its outputs exists.
    suffix : str
        Added to the input's name: ``cell.tif`` -> ``cell_pred.ome.tiff``.
    evaluate : bool
        For inputs with a target (``IM``/``GT`` layout), print Dice (mask outputs) or
        Pearson's r (intensity outputs) per image and their mean.
    """

    def __init__(self, output_dir: str = "predictions", overwrite: bool = False, suffix: str = "_pred",
                 evaluate: bool = True) -> None:
        super().__init__(write_interval="batch")
        self.output_dir, self.overwrite, self.suffix, self.evaluate = Path(output_dir), overwrite, suffix, evaluate
        self.scores: list[tuple[str, str, float]] = []

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.scores = []
        samples = getattr(trainer.datamodule, "predict_samples", [])
        if not self.overwrite:
            existing = [p for s in samples if (p := output_path(s["IM"], self.output_dir, self.suffix)).exists()]
            if existing:
                raise DataError(f"output exists: {existing[0]} ({len(existing)} in all); pass --prediction.overwrite true to replace")
        self.output_dir.mkdir(parents=True, exist_ok=True)

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: torch.Tensor,
                           batch_indices: Any, batch: dict[str, Any], batch_idx: int, dataloader_idx: int) -> None:
        datamodule = trainer.datamodule
        for i, input_path in enumerate(batch["IM_path"]):
            array = prediction[i].cpu().numpy()
            dims = "C" + SPATIAL[-(array.ndim - 1):]
            sizes = {k: float(v[i]) for k, v in batch.get("IM_pixel_sizes", {}).items()}
            write_ome_tiff(array, output_path(input_path, self.output_dir, self.suffix), dims, sizes)
            target_path = batch.get("GT_path", [""])[i]
            if self.evaluate and target_path:
                self._score(input_path, array, target_path, getattr(datamodule, "dims", "YX"))

    def _score(self, input_path: str, array: np.ndarray, target_path: str, dims: str) -> None:
        target = BioioReader(dims=dims).read(target_path).numpy()
        if target.ndim < array.ndim:
            target = target[None]
        if target.shape != array.shape:
            raise DataError(f"target {target_path} has shape {target.shape}, prediction of {input_path} has {array.shape}")
        if np.issubdtype(array.dtype, np.integer):
            self.scores.append((Path(input_path).name, "Dice", dice(array, target)))
        else:
            self.scores.append((Path(input_path).name, "Pearson", pearson(array, target)))

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        print(f"predictions written to {self.output_dir}")
        if not self.scores:
            return
        for name, metric, value in self.scores:
            print(f"  {name}: {metric} {value:.4f}")
        metric = self.scores[0][1]
        values = [v for _, _, v in self.scores]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{metric} on {len(values)} images with targets: mean {statistics.mean(values):.4f} +- {spread:.4f}")
