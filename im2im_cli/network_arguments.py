"""Fill the networks' ``spatial_dims``, ``in_channels`` and ``out_channels`` from the data section.

A config states the axes and channels of its data once (``data.dims``, ``data.C``,
``data.target``); each framework says, in its classmethod ``network_arguments``, what its
networks need for such data (an FCN's backbone maps the input's channels to the target's,
EmbedSeg's gives ``2 * spatial_dims + 1``, Pix2Pix's discriminator sees input and output
stacked). Before the command line is parsed, every one of those arguments that the config and
the command line leave unset, and that the network's class accepts, is added as a dotted
option, so the saved config of the run holds it. Values a config sets are never changed; an
``in_channels`` that contradicts the data is refused before anything runs.

(LightningCLI's ``link_arguments`` cannot do this: a linked target may not be set by a
config, and links cannot reach into the networks nested inside a framework's arguments.)
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import yaml

from im2im_core.axes import spatial_of
from im2im_core.errors import ConfigError


def _assign(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree[a][b][c] = value`` for ``dotted`` ``a.b.c``, as a dotted command-line option does."""
    *parents, last = dotted.split(".")
    node = tree
    for key in parents:
        child = node.get(key)
        if isinstance(child, str):  # a class path given alone: its init_args follow
            child = {"class_path": child}
        if not isinstance(child, dict):
            child = {}
        node[key] = child
        node = child
    if isinstance(value, str) and isinstance(node.get(last), dict) and last != "class_path":
        value = {"class_path": value} if value != node[last].get("class_path") else node[last]
    node[last] = value


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        base[key] = _merge(dict(base[key]), value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return base


def merged_config(args: list[str]) -> dict[str, Any]:
    """The config that ``args`` (``--config`` YAML texts and dotted options, in order) add up to.

    An approximation of the parser's merge that is exact for the keys read here.
    """
    merged: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            i += 1
            continue
        if "=" in arg:
            key, value, step = *arg[2:].split("=", 1), 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            key, value, step = arg[2:], args[i + 1], 2
        else:
            i += 1
            continue
        i += step
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        if key == "config":
            if isinstance(parsed, dict):
                _merge(merged, parsed)
        else:
            _assign(merged, key, parsed)
    return merged


def _import(class_path: Any) -> Any:
    if not isinstance(class_path, str) or "." not in class_path:
        return None
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None  # the parser reports it, with the key


def accepted_arguments(cls: Any) -> set[str]:
    """Names ``cls(...)`` accepts, following ``**kwargs`` to the base classes' ``__init__``."""
    names: set[str] = set()
    for klass in getattr(cls, "__mro__", [cls]):
        init = klass.__init__ if isinstance(klass, type) else klass
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            break
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters) or not isinstance(klass, type):
            break
    return names - {"self"}


def data_channels(data: dict[str, Any]) -> tuple[int, int | None, int | None]:
    """``(spatial_dims, input channels, target channels)`` a data section implies; None where unknown."""
    dims = str(data.get("dims") or "YX")
    selection = data.get("C")
    if isinstance(selection, list):
        channels: int | None = len(selection)
    elif "C" not in dims:
        channels = 3 if dims.endswith("S") else 1
    else:
        channels = 1 if isinstance(selection, int) else None
    target = data.get("target") or "mask"
    if data.get("layout") == "images":
        target = "none"
    target_channels = {"mask": 1, "intensity": channels, "none": channels}.get(target)
    return len(spatial_of(dims)), channels, target_channels


def network_options(config: dict[str, Any]) -> list[str]:
    """Dotted options for the network arguments ``config`` leaves unset (see the module docstring)."""
    model = config.get("model")
    if not isinstance(model, dict):
        return []
    framework = _import(model.get("class_path"))
    wanted = getattr(framework, "network_arguments", None)
    if wanted is None:
        return []
    spatial_dims, channels, target_channels = data_channels(config.get("data") or {})
    needs = dict(wanted(spatial_dims, channels, target_channels))
    init_args = model.get("init_args") or {}
    options = []
    own = {"spatial_dims": spatial_dims, **needs.pop("", {})}
    accepted = accepted_arguments(framework)
    options += [f"--model.init_args.{name}={value}" for name, value in own.items()
                if value is not None and init_args.get(name) is None and name in accepted]
    for network, values in needs.items():
        spec = init_args.get(network)
        if not isinstance(spec, dict):
            continue
        network_class = _import(spec.get("class_path"))
        given = spec.get("init_args") or {}
        expected = values.get("in_channels")
        if given.get("in_channels") is not None and expected is not None and given["in_channels"] != expected:
            data = config.get("data") or {}
            raise ConfigError(f"model.init_args.{network}.init_args.in_channels is {given['in_channels']} but the data "
                              f"give {expected} (data.dims {data.get('dims', 'YX')!r}, data.C {data.get('C')}): "
                              f"make them agree (or leave in_channels out: it follows from the data)")
        accepted = accepted_arguments(network_class) if network_class is not None else set()
        options += [f"--model.init_args.{network}.init_args.{name}={value}" for name, value in values.items()
                    if value is not None and given.get(name) is None and name in accepted]
    return options
