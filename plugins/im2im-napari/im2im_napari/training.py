"""Training from the train widget: the ``im2im fit`` arguments it runs, layers written as a data folder,
and the callback behind the live plot and the stop button (no Qt here).

The widget builds a :class:`TrainingRequest`, turns it into the arguments a user would type
(:func:`fit_arguments`) and runs them through :func:`im2im_cli.main.run_lightning`, so a run
from the viewer is the same run as ``im2im fit`` with those options, in the same run folder.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer

from im2im_core.axes import spatial_of
from im2im_core.errors import ConfigError, DataError

#: Subfolder of the run folder that receives the layers a run trains on (replaced by each run).
LAYERS_FOLDER = "layers"


@dataclass(frozen=True)
class PresetInfo:
    """What the widget shows of a preset and changes in it."""

    name: str
    description: str
    dims: str
    target: str
    max_epochs: int | None
    patch_size: list[int] | None
    batch_size: int | None
    lr_keys: tuple[str, ...]
    lr: float | None

    @property
    def spatial_dims(self) -> int:
        """2 or 3: the spatial axes of ``data.dims``."""
        return len(spatial_of(self.dims))

    @property
    def needs_target(self) -> bool:
        """Whether training needs a target layer (not self-supervised)."""
        return self.target != "none"


def _lr_keys(section: Any, prefix: str) -> list[tuple[str, float]]:
    """Dotted keys of every ``lr`` inside ``section`` (the optimizers of a model config)."""
    found: list[tuple[str, float]] = []
    if isinstance(section, dict):
        for key, value in section.items():
            path = f"{prefix}.{key}"
            if key == "lr" and isinstance(value, (int, float)):
                found.append((path, float(value)))
            else:
                found += _lr_keys(value, path)
    return found


def preset_info(name: str) -> PresetInfo:
    """The registered preset ``name``, read for the widget."""
    from im2im_core.plugins import get_registry

    preset = get_registry().get("presets", name)
    config = yaml.safe_load(preset.text()) or {}
    data, trainer = config.get("data") or {}, config.get("trainer") or {}
    lrs = _lr_keys(config.get("model") or {}, "model")
    return PresetInfo(name, preset.description, str(data.get("dims", "YX")), str(data.get("target", "mask")),
                      trainer.get("max_epochs"), data.get("patch_size"), data.get("batch_size"),
                      tuple(key for key, _ in lrs), lrs[0][1] if lrs else None)


def preset_names() -> list[str]:
    """Names of the registered presets, sorted."""
    from im2im_core.plugins import get_registry

    return sorted(get_registry().entries["presets"])


@dataclass
class TrainingRequest:
    """The train widget's fields.

    Parameters
    ----------
    preset : str
        A registered preset (``im2im presets``).
    run_dir : Path
        The run folder (``--trainer.default_root_dir``): logs, checkpoints, predictions.
    data_path : Path
        The training data folder, in any layout ``im2im fit`` reads (or the folder the layers
        were written to, :func:`write_layers`).
    epochs : int, optional
        ``--trainer.max_epochs`` (total, counting the epochs before a resume).
    minutes : float, optional
        ``--trainer.max_time`` instead of epochs.
    patch_size, batch_size, lr
        ``--data.patch_size``, ``--data.batch_size``, and every optimizer's learning rate.
    resume : bool
        Continue from the run folder's ``last.ckpt``.
    """

    preset: str
    run_dir: Path
    data_path: Path
    epochs: int | None = None
    minutes: float | None = None
    patch_size: Sequence[int] | None = None
    batch_size: int | None = None
    lr: float | None = None
    resume: bool = False


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest ``last*.ckpt`` below ``run_dir``, if any."""
    lasts = sorted(Path(run_dir).rglob("last*.ckpt"), key=lambda p: p.stat().st_mtime) if Path(run_dir).is_dir() else []
    return lasts[-1] if lasts else None


def _max_time(minutes: float) -> str:
    seconds = max(1, round(minutes * 60))
    return f"00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def fit_arguments(request: TrainingRequest) -> list[str]:
    """The ``im2im fit`` arguments of ``request`` (what a user would type after ``im2im``)."""
    info = preset_info(request.preset)
    args = ["fit", "--config", request.preset, "--trainer.default_root_dir", str(request.run_dir),
            "--data.data_path", str(request.data_path)]
    if request.minutes is not None:
        args += ["--trainer.max_time", _max_time(request.minutes), "--trainer.max_epochs", "-1"]
    elif request.epochs is not None:
        args += ["--trainer.max_epochs", str(int(request.epochs))]
    if request.patch_size is not None:
        if len(request.patch_size) != info.spatial_dims:
            raise ConfigError(f"patch size {list(request.patch_size)} has {len(request.patch_size)} entries; preset "
                              f"{request.preset} has axes {info.dims} and needs one per spatial axis")
        args += ["--data.patch_size", "[" + ",".join(str(int(n)) for n in request.patch_size) + "]"]
    if request.batch_size is not None:
        args += ["--data.batch_size", str(int(request.batch_size))]
    if request.lr is not None:
        for key in info.lr_keys:
            args += [f"--{key}", repr(float(request.lr))]
    if request.resume:
        checkpoint = last_checkpoint(request.run_dir)
        if checkpoint is None:
            raise ConfigError(f"nothing to resume: run folder {request.run_dir} holds no last.ckpt")
        args += ["--ckpt_path", str(checkpoint)]
    return args


def printed_config(args: list[str]) -> str:
    """The full config that ``args`` run (``im2im fit ... --print_config``), as YAML text."""
    from im2im_cli.main import run_lightning

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        run_lightning([*args, "--print_config"])
    return out.getvalue()


def _images(data: np.ndarray, layer: str, info: PresetInfo, rgb: bool) -> list[np.ndarray]:
    """The separate images of a layer's array: planes along its leading axes (see ``layer_axes``)."""
    space = data.ndim - (1 if rgb else 0)
    if rgb and "C" not in info.dims:
        raise DataError(f"layer {layer!r} is RGB, but preset {info.name} reads one channel (data.dims {info.dims}); "
                        f"choose a single-channel layer")
    if space not in (info.spatial_dims, info.spatial_dims + 1):
        raise DataError(f"layer {layer!r} ({'x'.join(map(str, data.shape))}) has {space} axes besides colour; preset "
                        f"{info.name} trains on {info.spatial_dims}D images: give {info.spatial_dims} axes, or "
                        f"{info.spatial_dims + 1} for a stack of separate images")
    if rgb:
        data = np.moveaxis(data, -1, data.ndim - 1 - info.spatial_dims)
    return list(data) if space == info.spatial_dims + 1 else [data]


def _written_here(folder: Path, path: Path) -> bool:
    """Whether ``path`` is one of the files :func:`write_layers` writes (``IM`` or ``GT``/``image_NNNN.tif``)."""
    relative = path.relative_to(folder).parts
    return len(relative) == 2 and relative[0] in ("IM", "GT") and re.fullmatch(r"image_\d{4}\.tif", relative[1]) is not None


def write_layers(run_dir: Path, preset: str, image: tuple[str, Any, bool],
                 target: tuple[str, Any] | None) -> Path:
    """Write an image layer (and its target layer) as the data folder ``run_dir/layers/{IM,GT}``.

    ``image`` is ``(name, data, rgb)``, ``target`` ``(name, data)``; a stack along the first axis
    becomes one file per image. The folder is this function's own and is replaced on every call.
    Returns the data folder.

    Raises
    ------
    DataError
        If a layer has the wrong number of axes for the preset, or the two differ in shape.
    """
    import tifffile

    info = preset_info(preset)
    name, data, rgb = image
    images = _images(np.asarray(data), name, info, rgb)
    targets = None
    if info.needs_target:
        if target is None:
            raise DataError(f"preset {preset} learns from targets (data.target {info.target}): choose a target layer")
        targets = _images(np.asarray(target[1]), target[0], info, False)
        image_shape = images[0].shape[-info.spatial_dims:]
        if len(targets) != len(images) or targets[0].shape[-info.spatial_dims:] != image_shape:
            raise DataError(f"layers {name!r} ({'x'.join(map(str, np.shape(data)))}) and {target[0]!r} "
                            f"({'x'.join(map(str, np.shape(target[1])))}) differ in shape; a target must cover its image")
    folder = Path(run_dir) / LAYERS_FOLDER
    if folder.exists():
        foreign = [p for p in folder.rglob("*") if p.is_file() and not _written_here(folder, p)]
        if foreign:
            raise DataError(f"{folder} holds files the train widget did not write ({foreign[0]}, ...); it replaces that "
                            f"folder on every run, so move them or choose another run folder")
        shutil.rmtree(folder)
    for sub, arrays in (("IM", images), ("GT", targets)):
        if arrays is None:
            continue
        (folder / sub).mkdir(parents=True)
        for i, array in enumerate(arrays):
            tifffile.imwrite(folder / sub / f"image_{i:04d}.tif", np.ascontiguousarray(array))
    return folder if targets is not None else folder / "IM"


class LiveTraining(Callback):
    """Reports the training loss and validation metrics as they come, stops when asked, saves at the end.

    Parameters
    ----------
    report : callable
        ``report(name, step, value)``: ``train_loss`` after each step, every ``val_*`` metric
        after each validation.
    stop : threading.Event
        Set by the stop button: training ends after the current step.

    When training ends (its budget, or stop) each checkpoint callback's ``last.ckpt`` is saved
    with the final weights, so that predict and resume start from where training ended
    rather than from the last periodic checkpoint.
    """

    def __init__(self, report: Callable[[str, int, float], None], stop: threading.Event) -> None:
        self.report, self.stop = report, stop

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Report ``train_loss``; ask the trainer to stop if the stop button was pressed."""
        loss = trainer.callback_metrics.get("train_loss")
        if loss is None and isinstance(outputs, dict) and "loss" in outputs:
            loss = outputs["loss"]
        if loss is not None:
            self.report("train_loss", trainer.global_step, float(loss))
        if self.stop.is_set():
            trainer.should_stop = True

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Report every ``val_*`` metric (not during the sanity check)."""
        if trainer.sanity_checking:
            return
        for name, value in trainer.callback_metrics.items():
            if name.startswith("val_"):
                self.report(name, trainer.global_step, float(value))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Save ``last.ckpt`` of every checkpoint callback that keeps one."""
        for callback in trainer.checkpoint_callbacks:
            if getattr(callback, "save_last", None) and getattr(callback, "dirpath", None):
                name = callback.format_checkpoint_name({}, filename=callback.CHECKPOINT_NAME_LAST)
                # saving, not loading: the full state (optimizer, loops) that resuming needs
                trainer.save_checkpoint(name, weights_only=False)
