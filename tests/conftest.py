"""Shared fixtures: small real-image datasets in temporary folders, and in-process CLI runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from im2im_core.testing import DEMO_DATA_3D

REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO / "im2im_core" / "demo_data"


@pytest.fixture(autouse=True)
def _no_entry_point_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Core tests see only the built-ins, whatever plugins this environment has installed."""
    from im2im_core.plugins import reset_registry

    monkeypatch.setenv("IM2IM_DISABLE_PLUGINS", "1")
    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def data_2d(tmp_path: Path) -> Path:
    """Four 256x256 BBBC039 nuclei crops with masks, in IM/GT subfolders."""
    target = tmp_path / "data_2d"
    for sub in ("IM", "GT"):
        (target / sub).mkdir(parents=True)
        for path in sorted((DEMO_DATA / "train" / sub).glob("*.tif"))[:4]:
            shutil.copy(path, target / sub / path.name)
    return target


@pytest.fixture
def data_3d(tmp_path: Path) -> Path:
    """Two 16x64x64 widefield/confocal z-stack pairs, in IM/GT subfolders."""
    target = tmp_path / "data_3d"
    shutil.copytree(DEMO_DATA_3D, target)
    return target
