"""Plain subcommands that need no model: ``im2im plugins`` and ``im2im presets``."""

from __future__ import annotations

import argparse
import json

from im2im_core.plugins import Registry


def plugins_command(argv: list[str], registry: Registry) -> int:
    """Print every plugin with its version and what it registered, and those that failed.

    Nothing registered by import path is imported. A name whose import path starts with a
    module that is not installed is still listed, and reported under ``missing``.
    """
    parser = argparse.ArgumentParser(prog="im2im plugins", description="List installed im2im plugins.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    loaded = [{"name": p.name, "version": p.version, "registered": p.registered} for p in registry.plugins]
    for entry, plugin in zip(loaded, registry.plugins):
        if plugin.missing:  # only then, so that the usual listing keeps its shape
            entry["missing"] = plugin.missing
    failed = [{"name": p.name, "version": p.version, "error": p.error} for p in registry.failed]
    if args.json:
        print(json.dumps({"plugins": loaded, "failed": failed}, indent=2))
        return 0
    for plugin in loaded:
        print(f"{plugin['name']} {plugin['version'] or ''}".rstrip())
        for kind, names in plugin["registered"].items():
            print(f"  {kind}: {', '.join(names)}")
        for name, module in plugin.get("missing", {}).items():
            print(f"  missing: {name} needs module {module!r}, which is not installed")
    for plugin in failed:
        print(f"{plugin['name']} FAILED to load: {plugin['error']}")
    return 0


def presets_command(argv: list[str], registry: Registry) -> int:
    """Print each preset's name, the plugin that ships it and its description."""
    argparse.ArgumentParser(prog="im2im presets", description="List the registered presets.").parse_args(argv)
    presets = registry.entries["presets"]
    width = max((len(name) for name in presets), default=0)
    for name in sorted(presets):
        print(f"{name:<{width}}  [{registry.owners['presets'][name]}]  {presets[name].description}")
    return 0
