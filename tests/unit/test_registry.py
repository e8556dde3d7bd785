"""The plugin manager: built-ins, entry points one by one, failures, conflicts, env switches."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import pytest

from im2im_core import plugins
from im2im_core.errors import ConfigError, PluginConflictError
from im2im_core.hookspecs import hookimpl


def _module(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, result in hooks.items():
        def impl(result=result):
            return result
        impl.__name__ = hook_name
        setattr(module, hook_name, hookimpl(impl))
    return module


def _entry_points(monkeypatch: pytest.MonkeyPatch, modules: dict[str, types.ModuleType | None]) -> None:
    """Make the ``im2im`` entry-point group hold one entry point per module (or failing import)."""
    points = []
    for name, module in modules.items():
        module_name = f"fake_plugin_{name}"
        if module is None:
            monkeypatch.setitem(sys.modules, module_name, None)  # importing it raises ImportError
        else:
            monkeypatch.setitem(sys.modules, module_name, module)
        points.append(importlib.metadata.EntryPoint(name, module_name, "im2im"))
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", lambda group: points if group == "im2im" else [])
    monkeypatch.delenv(plugins.DISABLE_ENV, raising=False)


class Dummy:
    pass


def test_builtins_register_fcn_backbones_and_presets():
    registry = plugins.make_plugin_manager()[1]
    assert registry.plugins[0].name == "builtin"
    assert "FCN" in registry.entries["frameworks"]
    assert {"fnet", "anisotropic_unet", "smp", "UNet", "DynUNet"} <= set(registry.entries["backbones"])
    expected = {"demo", "semanticseg_2d", "semanticseg_3d", "labelfree_2d", "labelfree_3d", "denoise_3d", "modality_3d"}
    assert expected <= set(registry.entries["presets"])
    assert registry.owners["backbones"]["fnet"] == "builtin"


def test_entry_point_plugin_is_loaded_and_attributed(monkeypatch):
    _entry_points(monkeypatch, {"extra": _module("extra", im2im_register_backbones={"dummynet": Dummy})})
    registry = plugins.make_plugin_manager()[1]
    assert registry.get("backbones", "dummynet") is Dummy
    assert registry.owners["backbones"]["dummynet"] == "extra"
    assert [p.name for p in registry.plugins] == ["builtin", "extra"]


def test_plugin_that_fails_to_import_is_reported_and_skipped(monkeypatch):
    good = _module("good", im2im_register_backbones={"goodnet": Dummy})
    _entry_points(monkeypatch, {"broken": None, "good": good})
    registry = plugins.make_plugin_manager()[1]
    assert [p.name for p in registry.failed] == ["broken"]
    assert "fake_plugin_broken" in registry.failed[0].error
    assert "goodnet" in registry.entries["backbones"]


def test_plugin_whose_hook_raises_is_reported_and_its_names_dropped(monkeypatch):
    module = _module("half", im2im_register_backbones={"halfnet": Dummy})

    @hookimpl
    def im2im_register_presets():
        raise RuntimeError("preset folder missing")

    module.im2im_register_presets = im2im_register_presets
    _entry_points(monkeypatch, {"half": module})
    registry = plugins.make_plugin_manager()[1]
    assert [p.name for p in registry.failed] == ["half"]
    assert "preset folder missing" in registry.failed[0].error
    assert "halfnet" not in registry.entries["backbones"]


def test_two_plugins_claiming_one_name_is_an_error_naming_both(monkeypatch):
    _entry_points(monkeypatch, {
        "first": _module("first", im2im_register_backbones={"samenet": Dummy}),
        "second": _module("second", im2im_register_backbones={"samenet": Dummy}),
    })
    with pytest.raises(PluginConflictError, match="'first' and plugin 'second'"):
        plugins.make_plugin_manager()


def test_plugin_cannot_take_a_builtin_name(monkeypatch):
    _entry_points(monkeypatch, {"rogue": _module("rogue", im2im_register_frameworks={"FCN": Dummy})})
    with pytest.raises(PluginConflictError, match="'builtin' and plugin 'rogue'"):
        plugins.make_plugin_manager()


def test_disable_and_allow_list(monkeypatch):
    _entry_points(monkeypatch, {
        "one": _module("one", im2im_register_backbones={"onenet": Dummy}),
        "two": _module("two", im2im_register_backbones={"twonet": Dummy}),
    })
    monkeypatch.setenv(plugins.ALLOW_ENV, "two")
    assert set(plugins.make_plugin_manager()[1].entries["backbones"]) & {"onenet", "twonet"} == {"twonet"}
    monkeypatch.setenv(plugins.DISABLE_ENV, "1")
    assert [p.name for p in plugins.make_plugin_manager()[1].plugins] == ["builtin"]


def test_unknown_name_lists_known_ones():
    registry = plugins.make_plugin_manager()[1]
    with pytest.raises(ConfigError, match="unknown backbone name 'nope'.*fnet"):
        registry.get("backbones", "nope")
