"""Rebuild a trained model from a Lightning checkpoint and the config of its run.

A checkpoint holds the weights, not the network's class and arguments (the framework's
``backbone`` is not a saved hyperparameter), so the run's ``config.yaml`` (written by
``im2im fit`` next to its logs) supplies the ``model`` section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from im2im_core.errors import ConfigError, DataError


def find_config(checkpoint: Path) -> Path:
    """The ``config.yaml`` of the run that wrote ``checkpoint``: next to it, one folder up, or the
    newest ``lightning_logs/version_*/config.yaml`` in either folder."""
    folders = [checkpoint.parent, checkpoint.parent.parent]
    for folder in folders:
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    logged = [p for folder in folders for p in folder.glob("lightning_logs/version_*/config.yaml")]
    if logged:
        return max(logged, key=lambda p: p.stat().st_mtime)
    raise ConfigError(f"no config.yaml found for checkpoint {checkpoint} (looked in {folders[0]}, {folders[1]} and "
                      f"their lightning_logs/version_*); pass config=PATH of the run's saved config")


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

        found = get_registry().find(name)
        if found is None:
            raise ConfigError(f"unknown class_path {name!r} in the model config; give a full import path")
        resolved["class_path"] = f"{found[1].__module__}.{found[1].__qualname__}"
    return resolved


def load_model(checkpoint: str | Path, config: str | Path | None = None, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Build the ``model`` of ``config`` and load the weights of ``checkpoint`` into it (eval mode).

    Parameters
    ----------
    checkpoint : str or Path
        A ``.ckpt`` file written by ``im2im fit``.
    config : str or Path, optional
        The run's config YAML (at least a ``model`` section); default: :func:`find_config`.
    map_location : str or torch.device
        Where the weights are loaded.
    """
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningModule

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise DataError(f"checkpoint not found: {checkpoint}")
    config_path = Path(config) if config is not None else find_config(checkpoint)
    if not config_path.is_file():
        raise ConfigError(f"config not found: {config_path}")
    section = (yaml.safe_load(config_path.read_text()) or {}).get("model")
    if not isinstance(section, dict) or "class_path" not in section:
        raise ConfigError(f"{config_path}: no 'model' section with a class_path")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningModule, "model", required=True)
    try:
        parsed = parser.parse_object({"model": _resolve_short_names(section)})
        model = parser.instantiate_classes(parsed).model
    except Exception as exc:
        raise ConfigError(f"{config_path}: cannot build the model: {exc}") from None
    state = torch.load(checkpoint, map_location=map_location, weights_only=False)
    model.load_state_dict(state["state_dict"] if "state_dict" in state else state)
    return model.eval()
