"""The models the predict widget accepts: a checkpoint, a run folder, or a bioimage.io package."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from im2im_core.errors import ConfigError


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to predict, with what the widget needs to know about it.

    Parameters
    ----------
    source : Path
        The checkpoint or package file it was loaded from.
    module : torch.nn.Module
        What :func:`im2im_core.inference.predict` takes.
    spatial_dims : int
        2 or 3.
    normalize : Any
        The input normalization its training used (``resolve_normalize("auto", source)``).
    """

    source: Path
    module: Any
    spatial_dims: int
    normalize: Any


def model_file(path: str | Path) -> Path:
    """The checkpoint or package that ``path`` names.

    A ``.ckpt`` file; a bioimage.io package (``.zip``, ``rdf.yaml`` or its folder); or a run
    folder of ``im2im fit``, whose ``last.ckpt`` (anywhere below it) is taken.

    Raises
    ------
    ConfigError
        If ``path`` is none of these, naming what was expected.
    """
    from im2im_core.export.imported import is_package

    given = Path(str(path)).expanduser()
    if not str(path).strip():
        raise ConfigError("no model chosen: choose a checkpoint (.ckpt), a run folder of im2im fit, or a bioimage.io "
                          "package (.zip)")
    if not given.exists():
        raise ConfigError(f"model {given} does not exist: expected a checkpoint (.ckpt), a run folder of im2im fit, "
                          f"or a bioimage.io package (.zip)")
    if is_package(given):
        return given
    if given.is_file() and given.suffix == ".ckpt":
        return given
    if given.is_dir():
        lasts = sorted(given.rglob("last*.ckpt"), key=lambda p: p.stat().st_mtime)
        if lasts:
            return lasts[-1]
        raise ConfigError(f"run folder {given} holds no last.ckpt (has im2im fit saved a checkpoint there yet?)")
    raise ConfigError(f"model {given}: expected a checkpoint (.ckpt), a run folder of im2im fit, or a bioimage.io "
                      f"package (.zip or rdf.yaml)")


def load(path: str | Path) -> LoadedModel:
    """Load the model :func:`model_file` finds at ``path`` (on the CPU, eval mode)."""
    from im2im_core.export.imported import PackagedModel, is_package
    from im2im_core.inference import load_model
    from im2im_core.inference.predict_array import as_framework, resolve_normalize

    source = model_file(path)
    module = PackagedModel(str(source)) if is_package(source) else load_model(source)
    framework = as_framework(module, None, False)
    return LoadedModel(source, module, framework.spatial_dims, resolve_normalize("auto", source))
