"""The ``prediction:`` section of ``im2im predict``: how to predict, where to write, and scoring.

The writer predicts each batch with the core's engine (:func:`~im2im_core.inference.predict_batch.predict_batch`)
and its own :class:`~im2im_core.inference.options.PredictionSettings`, writes each prediction
atomically (OME-TIFF or OME-Zarr) and, for inputs with a target, prints Dice (masks) or
Pearson's r (intensities).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from bioio import BioImage
from lightning.pytorch.callbacks import BasePredictionWriter

from im2im_core import keys
from im2im_core.axes import with_channels
from im2im_core.errors import ConfigError, DataError
from im2im_core.inference.options import Inference, PredictionSettings
from im2im_core.inference.outputs import (
    EXTENSIONS,
    OutputFormat,
    ZarrOutput,
    atomic_output,
    output_path,
    remove_stale_partials,
    write_ome_tiff,
)
from im2im_core.inference.postprocess import Postprocess
from im2im_core.inference.predict_batch import predict_batch
from im2im_core.metrics import dice, pearson

__all__ = ["PredictionWriter", "output_path", "write_ome_tiff"]


def write_ome_zarr(array: np.ndarray, path: Path, dims: str, pixel_sizes: dict[str, float | None],
                   overwrite: bool = True) -> None:
    """Write ``array`` with axes ``dims`` as OME-Zarr, through a temporary folder and a rename."""
    with atomic_output(path, overwrite) as partial:
        ZarrOutput(partial, array.shape, dims, array.dtype, pixel_sizes).write(tuple(slice(0, n) for n in array.shape), array)


def gathered_scores(scores: list[tuple[str, str, float]]) -> list[tuple[str, str, float]]:
    """The scores of every process, sorted by image name; ``scores`` itself outside distributed runs.

    Each DDP process predicts its own share of the files (Lightning's unrepeated sampler), so
    each holds only its share of the scores. Lightning's ``all_gather`` moves tensors only;
    torch's ``all_gather_object`` moves these (name, metric, value) lists.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return list(scores)
    shares: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(shares, scores)
    return sorted((entry for share in shares for entry in share), key=lambda entry: entry[0])


class WindowProgressBar:
    """A second progress bar, below Lightning's bar of files: windows of the current image.

    Called as ``progress(done, total)`` by :func:`~im2im_core.inference.predict`; a new
    image or timepoint (``done`` going back) starts the bar again.
    """

    def __init__(self) -> None:
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None or self.bar.total != total or done < self.bar.n:
            self.close()
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="windows", unit="window", position=1, leave=False, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        """Remove the bar from the terminal."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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
    output_format : {"ome-tiff", "ome-zarr"}
        File format of the outputs. OME-Zarr outputs are written band by band as prediction
        goes, from inputs read lazily when the data's normalization allows it (percentiles),
        so an image larger than memory can be predicted.
    inference : Inference, optional
        Window size, overlap, blending, windows per batch, TTA, slice-by-slice prediction,
        mixed precision (``--prediction.inference.tta flips``); default: ``Inference()``.
    postprocess : Postprocess, optional
        Activation, threshold or argmax, connected components, small-object removal
        (``--prediction.postprocess.label true``); default: the framework's own post-processing.
    skip_existing : bool
        Leave inputs whose output exists already and predict the others: continues an
        interrupted folder prediction (outputs appear only when complete, so an existing one is
        whole). Excludes ``overwrite``.
    """

    def __init__(self, output_dir: str = "predictions", overwrite: bool = False, suffix: str = "_pred",
                 evaluate: bool = True, output_format: OutputFormat = "ome-tiff", inference: Inference | None = None,
                 postprocess: Postprocess | None = None, skip_existing: bool = False) -> None:
        super().__init__(write_interval="batch")
        if overwrite and skip_existing:
            raise ConfigError("prediction.overwrite and prediction.skip_existing exclude each other: choose one")
        if output_format not in EXTENSIONS:
            raise ConfigError(f"prediction.output_format {output_format!r} is not one of {', '.join(EXTENSIONS)}")
        self.output_dir, self.overwrite, self.suffix, self.evaluate = Path(output_dir), overwrite, suffix, evaluate
        self.output_format, self.skip_existing = output_format, skip_existing
        self.inference = inference if inference is not None else Inference()
        self.postprocess = postprocess
        self.scores: list[tuple[str, str, float]] = []
        self.window_bar: WindowProgressBar | None = None

    def _path(self, input_path: str) -> Path:
        return output_path(input_path, self.output_dir, self.suffix, self.output_format)

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Check that no output would be replaced (unless ``overwrite``); create ``output_dir`` and the progress bar."""
        self.scores = []
        samples = getattr(trainer.datamodule, "predict_samples", [])
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise DataError(f"prediction.output_dir {self.output_dir} is a file; expected a folder")
        outputs = [self._path(sample[keys.IMAGE]) for sample in samples]
        if self.output_dir.is_dir() and trainer.is_global_zero:
            for output in outputs:
                remove_stale_partials(output)  # left by a killed run; never taken for an output
        existing = [p for p in outputs if p.exists()]
        if existing and self.skip_existing:
            print(f"{len(existing)} of {len(samples)} outputs exist already in {self.output_dir}: left as they are")
        elif existing and not self.overwrite:
            raise DataError(f"output exists: {existing[0]} ({len(existing)} in all); pass --prediction.overwrite true "
                            "to replace, or --prediction.skip_existing true to predict only the others")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.window_bar = WindowProgressBar() if trainer.progress_bar_callback is not None and trainer.is_global_zero else None
        trainer.strategy.barrier("im2im-outputs-checked")  # no process writes before every one has checked

    def settings(self) -> PredictionSettings:
        """The settings this writer's run predicts with (window options, post-processing, progress, store)."""
        return PredictionSettings(inference=self.inference,
                                  postprocess=self.postprocess if self.postprocess is not None else "auto",
                                  progress=self.window_bar,
                                  open_output=self.open_output if self.output_format == "ome-zarr" else None)

    @contextmanager
    def open_output(self, input_path: str, pixel_sizes: dict[str, float]) -> Iterator[Callable[..., ZarrOutput]]:
        """The OME-Zarr store factory for the output of ``input_path``, under a temporary name
        that becomes the output's when the block ends without error.
        """
        with atomic_output(self._path(input_path), self.overwrite) as partial:
            yield lambda shape, dims, dtype: ZarrOutput(partial, shape, dims, dtype, pixel_sizes)

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Any, batch: dict[str, Any], batch_idx: int, dataloader_idx: int) -> None:
        """Predict the batch with the core's engine and this writer's settings, write and score each output."""
        if self.skip_existing and all(self._path(path).exists() for path in batch[keys.IMAGE_PATH]):
            return
        with trainer.precision_plugin.predict_step_context():  # --trainer.precision, as Lightning's predict_step
            outputs = predict_batch(pl_module, batch, self.settings())
        datamodule = trainer.datamodule
        for i, input_path in enumerate(batch[keys.IMAGE_PATH]):
            item = outputs[i]
            path = self._path(input_path)
            target_path = batch.get(keys.TARGET_PATH, [""])[i]
            dims = batch[keys.IMAGE_DIMS][i]
            if item is None:  # streamed to its OME-Zarr file
                if self.evaluate and target_path:
                    written = BioImage(path).get_image_dask_data(dims).compute()
                    self._score(input_path, written, target_path, datamodule)
                continue
            array = np.asarray(item)
            if len(dims) != array.ndim:  # several output channels and no C axis in the input
                dims = with_channels(dims)
            sizes = batch[keys.IMAGE_PIXEL_SIZES][i]
            if self.output_format == "ome-zarr":
                write_ome_zarr(array, path, dims, sizes, overwrite=self.overwrite)
            else:
                write_ome_tiff(array, path, dims, sizes, overwrite=self.overwrite)
            if self.evaluate and target_path:
                self._score(input_path, array, target_path, datamodule)

    def _score(self, input_path: str, array: np.ndarray, target_path: str, datamodule: Any) -> None:
        dims = datamodule.dims
        target = datamodule.make_reader().read(target_path).numpy()
        if target.ndim < array.ndim:  # no C axis: add it (after T)
            target = np.expand_dims(target, 1 if "T" in dims else 0)
        if target.shape != array.shape:
            raise DataError(f"target {target_path} has shape {target.shape}, prediction of {input_path} has {array.shape}")
        if np.issubdtype(array.dtype, np.integer):
            self.scores.append((Path(input_path).name, "Dice", dice(array, target)))
        else:
            self.scores.append((Path(input_path).name, "Pearson", pearson(array, target)))

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Close the progress bar; print where the predictions are and the scores of every image
        against its target (under DDP, gathered from all processes and printed once, by rank 0).
        """
        if self.window_bar is not None:
            self.window_bar.close()
        scores = gathered_scores(self.scores)
        if not trainer.is_global_zero:
            return
        print(f"predictions written to {self.output_dir}")
        if not scores:
            return
        for name, metric, value in scores:
            print(f"  {name}: {metric} {value:.4f}")
        metric = scores[0][1]
        values = [v for _, _, v in scores]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{metric} on {len(values)} images with targets: mean {statistics.mean(values):.4f} +- {spread:.4f}")
