"""The plugin manager: built-ins, entry points one by one, failures, conflicts, env switches."""

from __future__ import annotations

import importlib.metadata
import json
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


# ------------------------------------------------------------------ registration by import path
LAZY_MODULE = '''
class Thing:
    class Inner:
        pass
'''


@pytest.fixture
def lazy_module(tmp_path, monkeypatch) -> str:
    """The name of an importable module, not yet imported, that defines ``Thing`` and ``Thing.Inner``."""
    name = "im2im_test_lazy_target"
    (tmp_path / f"{name}.py").write_text(LAZY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_builtins_are_import_paths_that_resolve_to_where_the_class_is_defined():
    from im2im_core.networks import BUILTIN_BACKBONES

    registry = plugins.make_plugin_manager()[1]
    for kind in plugins.CLASS_KINDS:
        for name, entry in registry.entries[kind].items():
            assert isinstance(entry, str), (kind, name)
            obj = registry.get(kind, name)
            assert registry.import_path(name) == f"{obj.__module__}.{obj.__qualname__}", (kind, name)
            assert registry.find(name) == (kind, obj)
    assert {name: registry.get("backbones", name) for name in BUILTIN_BACKBONES} == BUILTIN_BACKBONES
    assert set(registry.entries["backbones"]) == set(BUILTIN_BACKBONES)


def test_import_path_string_is_imported_on_first_get_only(monkeypatch, lazy_module):
    _entry_points(monkeypatch, {"lazy": _module("lazy", im2im_register_backbones={
        "colon": f"{lazy_module}:Thing", "dotted": f"{lazy_module}.Thing", "nested": f"{lazy_module}:Thing.Inner"})})
    registry = plugins.make_plugin_manager()[1]
    assert registry.plugins[-1].registered == {"backbones": ["colon", "dotted", "nested"]}
    assert registry.import_path("colon") == registry.import_path("dotted") == f"{lazy_module}.Thing"
    assert registry.import_path("nested") == f"{lazy_module}.Thing.Inner"
    assert lazy_module not in sys.modules  # listing and import_path import nothing
    thing = registry.get("backbones", "colon")
    assert thing.__module__ == lazy_module and registry.get("backbones", "colon") is thing
    assert registry.get("backbones", "dotted") is thing and registry.get("backbones", "nested") is thing.Inner
    assert registry.find("dotted") == ("backbones", thing)


def test_import_path_of_an_object_and_of_an_unknown_name(monkeypatch):
    _entry_points(monkeypatch, {"extra": _module("extra", im2im_register_readers={"dummy": Dummy})})
    registry = plugins.make_plugin_manager()[1]
    assert registry.import_path("dummy") == f"{__name__}.Dummy"
    assert registry.import_path("nope") is None
    assert registry.import_path("demo") is None  # presets are not classes


def test_missing_module_is_listed_then_a_clear_error_naming_the_plugin_on_get(monkeypatch, capsys):
    from im2im_cli.commands import plugins_command

    _entry_points(monkeypatch, {"ghost": _module("ghost", im2im_register_frameworks={
        "Ghost": "im2im_no_such_module.frameworks:Ghost", "NoAttr": "os.path:NoSuchThing"})})
    registry = plugins.make_plugin_manager()[1]
    info = registry.plugins[-1]
    assert info.name == "ghost" and info.registered == {"frameworks": ["Ghost", "NoAttr"]} and not registry.failed
    assert info.missing == {"Ghost": "im2im_no_such_module"}
    assert registry.import_path("Ghost") == "im2im_no_such_module.frameworks.Ghost"
    expected = (r"framework 'Ghost' \(registered by plugin 'ghost' as 'im2im_no_such_module.frameworks:Ghost'\) "
                r"cannot be imported: ModuleNotFoundError")
    with pytest.raises(ConfigError, match=expected):
        registry.get("frameworks", "Ghost")
    with pytest.raises(ConfigError, match="'NoAttr'.*plugin 'ghost'.*AttributeError"):
        registry.find("NoAttr")
    plugins_command([], registry)
    assert "  missing: Ghost needs module 'im2im_no_such_module', which is not installed" in capsys.readouterr().out
    plugins_command(["--json"], registry)
    listing = json.loads(capsys.readouterr().out)
    assert listing["plugins"][-1]["missing"] == {"Ghost": "im2im_no_such_module"}
    assert "missing" not in listing["plugins"][0]  # the built-ins: the usual shape


@pytest.mark.parametrize("hook, result", [
    ("im2im_register_backbones", {"badnet": "not an import path"}),
    ("im2im_register_backbones", {"badnet": "module:"}),
    ("im2im_register_presets", {"badpreset": "some.module:Preset"}),
    ("im2im_register_transforms", ["not", "a", "dict"]),
])
def test_malformed_registration_is_reported_and_skipped(monkeypatch, hook, result):
    good = _module("good", im2im_register_backbones={"goodnet": "x.y:Z"})
    _entry_points(monkeypatch, {"bad": _module("bad", **{hook: result}), "good": good})
    registry = plugins.make_plugin_manager()[1]
    assert [p.name for p in registry.failed] == ["bad"]
    assert [p.name for p in registry.plugins] == ["builtin", "good"]


def test_conflict_between_an_import_path_and_an_object_names_both(monkeypatch):
    _entry_points(monkeypatch, {
        "first": _module("first", im2im_register_transforms={"Samed": "first_pkg.transforms:Samed"}),
        "second": _module("second", im2im_register_transforms={"Samed": Dummy}),
    })
    with pytest.raises(PluginConflictError, match="'Samed' is registered by both plugin 'first' and plugin 'second'"):
        plugins.make_plugin_manager()
