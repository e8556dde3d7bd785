"""Checkpoints that describe themselves: read safely, rebuilt from the run config they hold.

``im2im fit`` stores the run's resolved config (YAML text, every class by import path) in each
checkpoint under the key :data:`CONFIG_KEY`, so a ``.ckpt`` file alone rebuilds its model:
``im2im predict --ckpt_path X``, :func:`load_model` and :func:`im2im_core.predict` need no
``config.yaml`` beside it. Files are read with ``torch.load(weights_only=True)``, which refuses
anything but tensors and plain containers: a checkpoint cannot run code when it is loaded.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
import yaml

from im2im_core.data.normalization import TRAINING_STATISTICS, MeanStd
from im2im_core.errors import ConfigError, DataError
from im2im_core.keys import IMAGE

#: Key of the checkpoint entry ``{"config": YAML text, "version": im2im version}`` written by ``im2im fit``.
CONFIG_KEY = "im2im"


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The contents of a checkpoint file, loaded with ``weights_only=True``.

    Raises
    ------
    DataError
        If the file is missing, truncated or not a PyTorch file, holds objects that would run
        code when unpickled, or has no ``state_dict``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}")
    try:
        contents = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        unsafe = re.search(r"GLOBAL (\S+)", text)
        if unsafe is not None:
            raise DataError(f"checkpoint {path} refused: it holds objects that could run code when loaded (it would "
                            f"call {unsafe.group(1)}); expected tensors and plain values only") from None
        raise DataError(f"checkpoint {path} cannot be read: truncated or not a PyTorch checkpoint "
                        f"(its pickled data does not parse)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"checkpoint {path} cannot be read: truncated or not a PyTorch checkpoint ({reason})") from None
    if not isinstance(contents, dict) or not isinstance(contents.get("state_dict"), dict):
        raise DataError(f"checkpoint {path} is not a Lightning checkpoint: expected a dict with a 'state_dict'")
    return contents


def run_config(contents: dict[str, Any]) -> str | None:
    """The run config (YAML text) stored in checkpoint ``contents`` by ``im2im fit``, if any."""
    entry = contents.get(CONFIG_KEY)
    if isinstance(entry, dict) and isinstance(entry.get("config"), str):
        return entry["config"]
    return None


def training_statistics(contents: dict[str, Any]) -> MeanStd | None:
    """The input's training-set statistics (``TrainingSetNormalized``) in checkpoint ``contents``, if any.

    Lightning saves the data module's state under the data module's class name; whichever
    entry holds :data:`~im2im_core.data.normalization.TRAINING_STATISTICS` is read.
    """
    for entry in contents.values():
        if isinstance(entry, dict) and TRAINING_STATISTICS in entry:
            for step in entry[TRAINING_STATISTICS]:
                if IMAGE in step:
                    return MeanStd.from_dict(step[IMAGE])
    return None


def _resolve_short_names(node: Any) -> Any:
    """Replace registered short ``class_path`` names (``FCN``, ``UNet``) by import paths."""
    if isinstance(node, list):
        return [_resolve_short_names(item) for item in node]
    if not isinstance(node, dict):
        return node
    resolved = {key: _resolve_short_names(value) for key, value in node.items()}
    name = resolved.get("class_path")
    if isinstance(name, str) and "." not in name:
        from im2im_core.plugins import get_registry

        path = get_registry().import_path(name)
        if path is None:
            raise ConfigError(f"unknown class_path {name!r} in the model config; give a full import path")
        resolved["class_path"] = path
    return resolved


def build_model(config_text: str, source: str) -> torch.nn.Module:
    """Instantiate the ``model`` section of a run config (YAML text); ``source`` names it in errors."""
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningModule

    try:
        section = (yaml.safe_load(config_text) or {}).get("model")
    except (yaml.YAMLError, AttributeError) as exc:
        raise ConfigError(f"{source}: not a YAML mapping: {exc}") from None
    if not isinstance(section, dict) or "class_path" not in section:
        raise ConfigError(f"{source}: no 'model' section with a class_path")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningModule, "model", required=True)
    try:
        parsed = parser.parse_object({"model": _resolve_short_names(section)})
        return parser.instantiate_classes(parsed).model
    except Exception as exc:
        raise ConfigError(f"{source}: cannot build the model: {str(exc).splitlines()[0]}") from None


def build_datamodule(config_text: str, source: str) -> Any:
    """Instantiate the ``data`` section of a run config as an :class:`~im2im_core.data.Im2ImDataModule` (no file read)."""
    from jsonargparse import ArgumentParser

    from im2im_core.data import Im2ImDataModule

    try:
        section = (yaml.safe_load(config_text) or {}).get("data") or {}
    except (yaml.YAMLError, AttributeError) as exc:
        raise ConfigError(f"{source}: not a YAML mapping: {exc}") from None
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(Im2ImDataModule, "data")
    try:
        return parser.instantiate_classes(parser.parse_object({"data": _resolve_short_names(section)})).data
    except Exception as exc:
        raise ConfigError(f"{source}: cannot build the data module: {str(exc).splitlines()[0]}") from None


def check_fits(model: torch.nn.Module, state_dict: dict[str, Any], checkpoint: str | Path, source: str) -> None:
    """Refuse, in one line, weights that do not fit ``model`` (another framework, network or size).

    Raises
    ------
    ConfigError
        Naming the checkpoint, the model class, ``source`` (the config it was built from),
        and the first weights that are missing, unexpected or of another shape.
    """
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    reshaped = [f"{key} {tuple(state_dict[key].shape)} != {tuple(value.shape)}" for key, value in expected.items()
                if key in state_dict and hasattr(state_dict[key], "shape") and tuple(state_dict[key].shape) != tuple(value.shape)]
    if missing or unexpected or reshaped:
        examples = ", ".join([*missing[:2], *unexpected[:2], *reshaped[:2]])
        raise ConfigError(f"checkpoint {checkpoint} does not fit the model {type(model).__name__} of {source}: "
                          f"{len(missing)} weights missing, {len(unexpected)} unexpected, {len(reshaped)} of another "
                          f"shape (e.g. {examples}); give the config of the run that wrote it")


def load_model(checkpoint: str | Path, config: str | Path | None = None,
               map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Build the model of a checkpoint and load its weights (eval mode).

    Parameters
    ----------
    checkpoint : str or Path
        A ``.ckpt`` file written by ``im2im fit``.
    config : str or Path, optional
        A config YAML with a ``model`` section to build instead of the one the checkpoint
        holds (needed only for checkpoints written outside ``im2im fit``).
    map_location : str or torch.device
        Where the weights are loaded.
    """
    contents = read_checkpoint(checkpoint, map_location)
    if config is not None:
        config_path = Path(config)
        if not config_path.is_file():
            raise ConfigError(f"config not found: {config_path}")
        text, source = config_path.read_text(), str(config_path)
    else:
        text, source = run_config(contents), f"checkpoint {checkpoint}"
        if text is None:
            raise ConfigError(f"checkpoint {checkpoint} holds no im2im run config (it was not written by im2im fit); "
                              f"pass config=PATH of a config with its model section")
    model = build_model(text, source)
    check_fits(model, contents["state_dict"], checkpoint, source)
    model.load_state_dict(contents["state_dict"])
    return model.eval()
