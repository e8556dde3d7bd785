"""``--trainer.default_root_dir`` moves a preset's whole run folder: logs, checkpoints and predictions.

Presets name their run folder in several keys (``trainer.default_root_dir``, the logger's
``save_dir``, the checkpoint callback's ``dirpath``, ``prediction.output_dir``). When the
command line gives another ``--trainer.default_root_dir``, every one of those paths that lies
inside the config's own root is moved under the new root, so that one option moves the run.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import yaml


def _rebase(value: Any, old: str, new: str) -> Any:
    if not isinstance(value, str):
        return value
    path, root = PurePath(value), PurePath(old)
    if path == root or root in path.parents:
        return str(PurePath(new) / path.relative_to(root))
    return value


def _moved(config: dict[str, Any], new: str) -> dict[str, Any]:
    trainer = config.get("trainer")
    old = trainer.get("default_root_dir") if isinstance(trainer, dict) else None
    if not isinstance(old, str):
        return config
    logger = trainer.get("logger")
    if isinstance(logger, dict) and isinstance(logger.get("init_args"), dict):
        logger["init_args"]["save_dir"] = _rebase(logger["init_args"].get("save_dir"), old, new)
    for callback in trainer.get("callbacks") or []:
        if isinstance(callback, dict) and isinstance(callback.get("init_args"), dict) and "dirpath" in callback["init_args"]:
            callback["init_args"]["dirpath"] = _rebase(callback["init_args"]["dirpath"], old, new)
    prediction = config.get("prediction")
    if isinstance(prediction, dict) and "output_dir" in prediction:
        prediction["output_dir"] = _rebase(prediction["output_dir"], old, new)
    trainer["default_root_dir"] = new
    return config


def follow_root_dir(args: list[str]) -> list[str]:
    """``args`` with each ``--config``'s run-folder paths moved under a ``--trainer.default_root_dir`` given after it."""
    result = list(args)
    for i, arg in enumerate(args):
        key, _, value = arg.partition("=")
        if key != "--trainer.default_root_dir":
            continue
        new = value if value else (args[i + 1] if i + 1 < len(args) else None)
        if not new:
            continue
        for j in range(i):
            if result[j] == "--config" and j + 1 < i:
                loaded = yaml.safe_load(result[j + 1])
                if isinstance(loaded, dict):
                    result[j + 1] = yaml.safe_dump(_moved(loaded, new), sort_keys=False)
    return result
