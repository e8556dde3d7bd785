"""One pluggy PluginManager: the built-ins first, then the entry-point group ``im2im``.

Environment variables
---------------------
IM2IM_DISABLE_PLUGINS
    ``1`` (or ``true``/``yes``) loads no entry points: only the built-ins are registered.
IM2IM_PLUGINS
    A comma-separated allow-list of entry-point names; others are not loaded.
"""

from __future__ import annotations

import importlib.metadata
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


@dataclass
class PluginInfo:
    """What one plugin is and what it registered (or why it failed to load)."""

    name: str
    version: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Registry:
    """Everything the loaded plugins registered, by kind and short name."""

    entries: dict[str, dict[str, Any]]
    owners: dict[str, dict[str, str]]
    plugins: list[PluginInfo]
    failed: list[PluginInfo]

    def get(self, kind: str, name: str) -> Any:
        """Return the object registered as ``name`` under ``kind``; a clear error if none."""
        try:
            return self.entries[kind][name]
        except KeyError:
            known = ", ".join(sorted(self.entries.get(kind, {}))) or "none"
            singular = kind[:-1]
            raise ConfigError(f"unknown {singular} name {name!r}; registered {kind}: {known}") from None

    def find(self, name: str) -> tuple[str, Any] | None:
        """Return ``(kind, object)`` for a short name of any class kind, or None."""
        for kind in ("frameworks", "backbones", "transforms", "readers"):
            if name in self.entries[kind]:
                return kind, self.entries[kind][name]
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
                added = impl.function() or {}
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
    for name in broken:  # drop what a plugin registered before one of its hooks failed
        for kind in KINDS:
            for short, owner in list(owners[kind].items()):
                if owner == name:
                    del owners[kind][short], entries[kind][short]
    return Registry(entries, owners, [infos[n] for n in versions if n in infos], failed)


def make_plugin_manager() -> tuple[pluggy.PluginManager, Registry]:
    """Build a fresh PluginManager (built-ins, then entry points) and its registry."""
    from im2im_core import builtin

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name=BUILTIN_NAME)
    from im2im_core import __version__

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
