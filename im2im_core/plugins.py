"""One pluggy PluginManager: the built-ins first, then the entry-point group ``im2im``.

A hook may register a class kind (frameworks, backbones, transforms, readers) either as the
object or as an import path string, ``"package.module:Attribute"`` (or
``"package.module.Attribute"``), imported on first :meth:`Registry.get`. Listing the registry
therefore imports nothing heavy.

Environment variables
---------------------
IM2IM_DISABLE_PLUGINS
    ``1`` (or ``true``/``yes``) loads no entry points: only the built-ins are registered.
IM2IM_PLUGINS
    A comma-separated allow-list of entry-point names; others are not loaded.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pluggy

from im2im_core import hookspecs
from im2im_core.errors import ConfigError, PluginConflictError

ENTRY_POINT_GROUP = "im2im"
DISABLE_ENV = "IM2IM_DISABLE_PLUGINS"
ALLOW_ENV = "IM2IM_PLUGINS"
BUILTIN_NAME = "builtin"

#: Registry kinds, each filled by the hook ``im2im_register_<kind>``.
KINDS = ("frameworks", "backbones", "transforms", "readers", "presets")
#: The kinds whose entries are classes (or factories), registered as objects or import paths.
CLASS_KINDS = KINDS[:4]


@dataclass
class PluginInfo:
    """What one plugin is and what it registered (or why it failed to load).

    ``missing`` maps a short name registered as an import path to the top-level module of
    that path when no such module is installed (found without importing anything).
    """

    name: str
    version: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    missing: dict[str, str] = field(default_factory=dict)


def _split_import_path(path: str) -> tuple[str, str]:
    """``(module, attribute)`` of ``"pkg.module:Attr.Inner"`` or ``"pkg.module.Attr"``; ValueError if neither."""
    module, sep, attribute = path.partition(":") if ":" in path else path.rpartition(".")
    if not sep or not all(part.isidentifier() for part in module.split(".") + attribute.split(".")):
        raise ValueError(f"{path!r} is not an import path 'package.module:Attribute'")
    return module, attribute


def import_object(path: str) -> Any:
    """Import and return the object that the import path ``path`` names.

    Parameters
    ----------
    path : str
        ``"package.module:Attribute"`` (the attribute may be dotted, ``Class.Inner``) or
        ``"package.module.Attribute"``.

    Returns
    -------
    Any
        The attribute, after importing its module.
    """
    module, attribute = _split_import_path(path)
    obj: Any = importlib.import_module(module)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class Registry:
    """Everything the loaded plugins registered, by kind and short name.

    ``entries`` holds what each hook returned: objects, or for the class kinds possibly
    import path strings. Use :meth:`get` or :meth:`find` for the objects themselves.
    """

    entries: dict[str, dict[str, Any]]
    owners: dict[str, dict[str, str]]
    plugins: list[PluginInfo]
    failed: list[PluginInfo]
    _resolved: dict[tuple[str, str], Any] = field(default_factory=dict, init=False, repr=False)

    def get(self, kind: str, name: str) -> Any:
        """Return the object registered as ``name`` under ``kind``, importing it if needed.

        Parameters
        ----------
        kind : str
            One of :data:`KINDS`.
        name : str
            A registered short name.

        Raises
        ------
        ConfigError
            If ``name`` is not registered under ``kind`` (the message lists those that are),
            or if its import path fails to import (the message names the plugin).
        """
        try:
            entry = self.entries[kind][name]
        except KeyError:
            known = ", ".join(sorted(self.entries.get(kind, {}))) or "none"
            raise ConfigError(f"unknown {kind[:-1]} name {name!r}; registered {kind}: {known}") from None
        if not isinstance(entry, str):
            return entry
        if (kind, name) not in self._resolved:
            try:
                self._resolved[kind, name] = import_object(entry)
            except Exception as exc:
                raise ConfigError(
                    f"{kind[:-1]} {name!r} (registered by plugin {self.owners[kind][name]!r} as {entry!r}) "
                    f"cannot be imported: {type(exc).__name__}: {exc}"
                ) from exc
        return self._resolved[kind, name]

    def find(self, name: str) -> tuple[str, Any] | None:
        """Return ``(kind, object)`` for a short name of any class kind, or None; imports it."""
        for kind in CLASS_KINDS:
            if name in self.entries[kind]:
                return kind, self.get(kind, name)
        return None

    def import_path(self, name: str) -> str | None:
        """Return the dotted import path ``module.Qualname`` of a short name of any class kind.

        Nothing is imported: a name registered as a string gives that string with ``:``
        replaced by ``.``; one registered as an object gives its ``__module__`` and
        ``__qualname__``. Returns None if no class kind has ``name``.
        """
        for kind in CLASS_KINDS:
            if name in self.entries[kind]:
                entry = self.entries[kind][name]
                if isinstance(entry, str):
                    return ".".join(_split_import_path(entry))
                return f"{entry.__module__}.{entry.__qualname__}"
        return None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _allow_list() -> set[str] | None:
    raw = os.environ.get(ALLOW_ENV)
    if raw is None:
        return None
    return {item.strip() for item in raw.split(",") if item.strip()}


def _load_entry_points(pm: pluggy.PluginManager) -> tuple[dict[str, str | None], list[PluginInfo]]:
    """Register each entry point on its own; one that fails is recorded and skipped."""
    versions: dict[str, str | None] = {}
    failed: list[PluginInfo] = []
    if _env_flag(DISABLE_ENV):
        return versions, failed
    allowed = _allow_list()
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and entry_point.name not in allowed:
            continue
        version = entry_point.dist.version if entry_point.dist is not None else None
        try:
            module = entry_point.load()
            pm.register(module, name=entry_point.name)
        except Exception as exc:  # a broken plugin must never break the others
            failed.append(PluginInfo(entry_point.name, version, error=f"{type(exc).__name__}: {exc}"))
            continue
        versions[entry_point.name] = version
    return versions, failed


def _checked(kind: str, added: Any) -> dict[str, Any]:
    """What a hook returned, checked: a dict, import paths only for the class kinds."""
    if added is None:
        return {}
    if not isinstance(added, dict):
        raise TypeError(f"im2im_register_{kind} returned {type(added).__name__}, not a dict")
    for name, value in added.items():
        if isinstance(value, str):
            if kind not in CLASS_KINDS:
                raise TypeError(f"{kind[:-1]} {name!r}: {kind} cannot be registered by import path")
            _split_import_path(value)
    return added


def _missing_module(path: str) -> str | None:
    """The top-level module of import path ``path`` if it is not installed; imports nothing."""
    top_level = _split_import_path(path)[0].split(".")[0]
    try:
        return None if importlib.util.find_spec(top_level) is not None else top_level
    except (ImportError, ValueError):
        return top_level


def _collect(pm: pluggy.PluginManager, versions: dict[str, str | None], failed: list[PluginInfo]) -> Registry:
    """Call each plugin's hooks one by one, so that names and conflicts are attributed."""
    entries: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
    owners: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
    infos = {name: PluginInfo(name, version) for name, version in versions.items()}
    broken: set[str] = set()
    for kind in KINDS:
        hook = getattr(pm.hook, f"im2im_register_{kind}")
        for impl in hook.get_hookimpls():  # registration order: built-ins first
            plugin_name = impl.plugin_name
            if plugin_name in broken:
                continue
            try:
                added = _checked(kind, impl.function())
            except Exception as exc:
                broken.add(plugin_name)
                infos.pop(plugin_name, None)
                failed.append(PluginInfo(plugin_name, versions.get(plugin_name), error=f"{type(exc).__name__}: {exc}"))
                continue
            for name, obj in added.items():
                if name in entries[kind]:
                    raise PluginConflictError(
                        f"{kind[:-1]} name {name!r} is registered by both plugin "
                        f"{owners[kind][name]!r} and plugin {plugin_name!r}"
                    )
                entries[kind][name] = obj
                owners[kind][name] = plugin_name
                infos[plugin_name].registered.setdefault(kind, []).append(name)
                missing = _missing_module(obj) if isinstance(obj, str) else None
                if missing is not None:
                    infos[plugin_name].missing[name] = missing
    for name in broken:  # drop what a plugin registered before one of its hooks failed
        for kind in KINDS:
            for short, owner in list(owners[kind].items()):
                if owner == name:
                    del owners[kind][short], entries[kind][short]
    return Registry(entries, owners, [infos[n] for n in versions if n in infos], failed)


def make_plugin_manager() -> tuple[pluggy.PluginManager, Registry]:
    """Build a fresh PluginManager (built-ins, then entry points) and its registry.

    Returns
    -------
    tuple
        The ``pluggy.PluginManager`` and the :class:`Registry` its hooks filled.

    Raises
    ------
    PluginConflictError
        If two plugins register one name under one kind.
    """
    from im2im_core import __version__, builtin

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name=BUILTIN_NAME)
    versions: dict[str, str | None] = {BUILTIN_NAME: __version__}
    loaded, failed = _load_entry_points(pm)
    versions.update(loaded)
    return pm, _collect(pm, versions, failed)


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """Return the process-wide registry, loading plugins on first use."""
    return make_plugin_manager()[1]


def reset_registry() -> None:
    """Forget the loaded registry (for tests that change the environment)."""
    get_registry.cache_clear()
