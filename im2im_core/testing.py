"""Pytest helpers for the tests of im2im plugins: one registry, one torch thread, real crops.

A plugin's ``tests/conftest.py`` starts with::

    from im2im_core.testing import one_torch_thread, plugin_registry  # noqa: F401  (fixtures)

    registry = plugin_registry("embedseg")  # the built-ins and this plugin only

and its tests get ``one_torch_thread`` (applied to every test) and ``registry``. Data:
:data:`DEMO_DATA` holds the BBBC039 crops bundled with the core (CC0), and :func:`copy_pairs`
copies some of them into a test's folder. This module imports pytest: tests only.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

#: BBBC039 nuclei crops, 256 x 256, with instance labels: ``train/{IM,GT}`` and ``holdout/{IM,GT}``.
DEMO_DATA = Path(__file__).parent / "demo_data"
#: NEUBIAS widefield (``IM``) / confocal (``GT``) z-stack crops, two 16 x 64 x 64 uint16 pairs
#: ``nucleus_0.tif`` and ``nucleus_1.tif`` (CC BY 4.0, credit NEUBIAS / EMBL CBA; see demo_data/README.txt).
DEMO_DATA_3D = DEMO_DATA / "widefield_confocal_3d"


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run each test on one torch thread, then restore the setting.

    Test networks are tiny, and on a busy 2-core machine OpenMP threads that wait for each
    other made small fits 10 to 20 times slower than one thread.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def plugin_registry(name: str) -> Callable[..., Any]:
    """A ``registry`` fixture: the registry with the built-ins and plugin ``name`` only.

    Sets ``IM2IM_PLUGINS=name`` for the test, so other installed plugins cannot change what
    it sees, and rebuilds the registry before and after.
    """

    @pytest.fixture
    def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
        from im2im_core.plugins import get_registry, reset_registry

        monkeypatch.setenv("IM2IM_PLUGINS", name)
        monkeypatch.delenv("IM2IM_DISABLE_PLUGINS", raising=False)
        reset_registry()
        yield get_registry()
        reset_registry()

    return registry


def copy_pairs(target: Path, names: slice = slice(None), split: str = "train", swap: bool = False) -> Path:
    """Copy the demo crops ``names`` of ``split`` into ``target/IM`` and ``target/GT``.

    ``swap`` puts the labels in ``IM`` and the images in ``GT`` (mask-to-image synthesis).
    Returns ``target``.
    """
    images = sorted((DEMO_DATA / split / "IM").glob("*.tif"))[names]
    source_dirs = ("GT", "IM") if swap else ("IM", "GT")
    for sub in ("IM", "GT"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    for path in images:
        for source, sub in zip(source_dirs, ("IM", "GT")):
            shutil.copy(DEMO_DATA / split / source / path.name, target / sub / path.name)
    return target


def assert_registers(registry: Any, plugin: str, version: str, names: dict[str, Sequence[str]]) -> None:
    """Check that ``plugin`` (its ``version``) loaded and registered exactly ``names``.

    ``names`` maps a kind (``frameworks``, ``backbones``, ``transforms``, ``readers``,
    ``presets``) to the names the plugin adds; each must be owned by ``plugin``.
    """
    info = {p.name: p for p in registry.plugins}[plugin]
    assert info.version == version
    assert not [f for f in registry.failed if f.name == plugin], f"plugin {plugin} failed to load"
    for kind, expected in names.items():
        assert sorted(info.registered[kind]) == sorted(expected), kind
        for name in expected:
            assert registry.owners[kind][name] == plugin, (kind, name)


def assert_gone_when_plugins_disabled(monkeypatch: pytest.MonkeyPatch, names: dict[str, Sequence[str]]) -> None:
    """Check that none of ``names`` (kind -> names) is registered with ``IM2IM_DISABLE_PLUGINS=1``."""
    from im2im_core.plugins import make_plugin_manager

    monkeypatch.setenv("IM2IM_DISABLE_PLUGINS", "1")
    _, registry = make_plugin_manager()
    for kind, expected in names.items():
        assert not set(expected) & set(registry.entries[kind]), kind


def read_preset(path: Path) -> dict[str, Any]:
    """The config of the preset file ``path``, checked for what every preset has.

    Its first line is ``# <one-line description>`` (``im2im presets`` shows it), and it has
    ``trainer``, ``model`` and ``data`` sections.
    """
    import yaml

    text = Path(path).read_text()
    first_line = text.splitlines()[0]
    assert first_line.startswith("# ") and len(first_line) > 20, f"{path}: first line must be '# one-line description'"
    config = yaml.safe_load(text)
    assert {"trainer", "model", "data"} <= set(config), f"{path}: needs trainer, model and data sections"
    return config
