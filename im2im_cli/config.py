"""Turn ``--config NAME_OR_PATH`` and short class names into what jsonargparse understands.

A config may name a registered preset instead of a file, and ``class_path`` values may be the
short names the plugins registered (``FCN``, ``fnet``). Both are resolved here, before the
parser runs, so that the saved config of every run holds full import paths.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml

from im2im_core.errors import ConfigError
from im2im_core.plugins import Registry

CONFIG_FLAGS = ("--config", "-c")


def did_you_mean(value: str, names: Any) -> str:
    """``" (did you mean 'X'?)"`` for the registered name closest to ``value``, or ``""``."""
    by_lower = {str(name).lower(): name for name in names}
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def _kind_for(key_path: str) -> str:
    if "backbone" in key_path or "generator" in key_path or "discriminator" in key_path:
        return "backbones"
    if key_path in ("model", "model.class_path"):
        return "frameworks"
    return "transforms"


def resolve_short_name(value: str, key_path: str, registry: Registry, source: str) -> str:
    """Return the import path of a registered short name; import paths pass unchanged.

    Nothing is imported: a name registered by import path gives that path.
    """
    if "." in value:
        return value
    path = registry.import_path(value)
    if path is not None:
        return path
    kind = _kind_for(key_path)
    known = ", ".join(sorted(registry.entries[kind])) or "none"
    raise ConfigError(f"{source}: unknown name {value!r} at key '{key_path}'{did_you_mean(value, registry.entries[kind])}; "
                      f"registered {kind}: {known} (or give a full import path such as monai.networks.nets.UNet)")


def resolve_class_paths(node: Any, registry: Registry, source: str, key_path: str = "") -> Any:
    """Replace short ``class_path`` names anywhere in a loaded config by import paths."""
    if isinstance(node, dict):
        resolved = {}
        for key, value in node.items():
            child = f"{key_path}.{key}" if key_path else str(key)
            if key == "class_path" and isinstance(value, str):
                resolved[key] = resolve_short_name(value, key_path or "class_path", registry, source)
            else:
                resolved[key] = resolve_class_paths(value, registry, source, child)
        return resolved
    if isinstance(node, list):
        return [resolve_class_paths(item, registry, source, f"{key_path}[{i}]") for i, item in enumerate(node)]
    return node


def load_config(name_or_path: str, registry: Registry) -> str:
    """Read a config file or preset, resolve its short names, and return it as YAML text."""
    path = Path(name_or_path)
    if "\n" in name_or_path or name_or_path.lstrip().startswith("{"):  # YAML given inline
        text, source = name_or_path, "inline config"
    elif path.is_file():
        text, source = path.read_text(), str(path)
    elif name_or_path in registry.entries["presets"]:
        text, source = registry.entries["presets"][name_or_path].text(), f"preset {name_or_path!r}"
    else:
        presets = ", ".join(sorted(registry.entries["presets"])) or "none"
        raise ConfigError(f"config {name_or_path!r} is neither a file nor a registered preset"
                          f"{did_you_mean(name_or_path, registry.entries['presets'])}; presets: {presets}")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (trainer, model, data), got {type(data).__name__}")
    return yaml.safe_dump(resolve_class_paths(data, registry, source), sort_keys=False)


def _resolved_inline(value: str, key_path: str, registry: Registry) -> str:
    """An override's inline JSON/YAML value (``--data.normalize '[{"class_path": "StandardNormalized", ...}]'``)
    with its short ``class_path`` names resolved; a value that does not parse passes unchanged for the
    parser to name.
    """
    try:
        node = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    if not isinstance(node, (dict, list)):
        return value
    return json.dumps(resolve_class_paths(node, registry, "command line", key_path))


def expand_arguments(argv: list[str], registry: Registry) -> list[str]:
    """Resolve ``--config`` values and short class names given as dotted overrides."""
    expanded: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        key, value, step = arg, None, 1
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
        elif arg.startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value, step = argv[i + 1], 2
        if value is None:
            expanded.append(arg)
        elif key in CONFIG_FLAGS:
            expanded += ["--config", load_config(value, registry)]
        elif value.lstrip().startswith(("{", "[")):  # a JSON/YAML value: short names in its class_path keys
            expanded += [key, _resolved_inline(value, key.lstrip("-"), registry)]
        elif key.endswith("class_path") or key.endswith(".backbone"):
            expanded += [key, resolve_short_name(value, key.lstrip("-"), registry, "command line")]
        else:
            expanded += [key, value]
        i += step
    return expanded
