"""Fixtures of the im2im-embedseg tests: hand-made label images, real crops, a clean registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

#: <clone>/plugins/im2im-embedseg/tests/conftest.py -> <clone>
REPO = Path(__file__).resolve().parents[3]
DEMO_DATA = REPO / "im2im_core" / "demo_data"  # BBBC039 256x256 crops with instance labels (CC0)
DATA_3D = REPO / "tests" / "data" / "widefield_confocal_3d"  # NEUBIAS z-stack crops 16x64x64 (CC BY 4.0)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One torch thread: these tensors are small, and on a shared 2-core machine a second
    thread mostly waits for a busy core (10x slower steps measured under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch):
    """The registry with the built-ins and this plugin only (IM2IM_PLUGINS=embedseg)."""
    from im2im_core.plugins import get_registry, reset_registry

    monkeypatch.setenv("IM2IM_PLUGINS", "embedseg")
    monkeypatch.delenv("IM2IM_DISABLE_PLUGINS", raising=False)
    reset_registry()
    yield get_registry()
    reset_registry()


def disc(shape: tuple[int, ...], centre: tuple[float, ...], radius: float) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, centre)) < radius**2


@pytest.fixture
def hand_labels() -> np.ndarray:
    """64x64 labels: two touching discs (1, 2), an object in two separate squares (3), a disc (4)."""
    labels = np.zeros((64, 64), np.int64)
    labels[disc((64, 64), (20, 16), 10)] = 1
    labels[disc((64, 64), (20, 34), 10) & (labels == 0)] = 2  # shares a border with object 1
    labels[41:52, 9:20] = 3
    labels[41:52, 41:52] = 3  # the same object, 21 pixels to the right
    labels[disc((64, 64), (56, 30), 5)] = 4
    return labels


@pytest.fixture
def data_2d(tmp_path: Path) -> Path:
    """Three 256x256 BBBC039 crops with instance labels, in IM/GT subfolders."""
    if not DEMO_DATA.is_dir():
        pytest.skip(f"demo data not found: {DEMO_DATA}")
    target = tmp_path / "data_2d"
    for sub in ("IM", "GT"):
        (target / sub).mkdir(parents=True)
        for path in sorted((DEMO_DATA / "train" / sub).glob("*.tif"))[:3]:
            shutil.copy(path, target / sub / path.name)
    return target


@pytest.fixture
def data_3d(tmp_path: Path) -> Path:
    """Two 16x64x64 widefield z-stacks of a nucleus; labels: connected components of the
    registered confocal stack above its mean (a real image, labels made for the test)."""
    from skimage.measure import label

    if not DATA_3D.is_dir():
        pytest.skip(f"3D test data not found: {DATA_3D}")
    target = tmp_path / "data_3d"
    (target / "GT").mkdir(parents=True)
    shutil.copytree(DATA_3D / "IM", target / "IM")
    for path in sorted((DATA_3D / "GT").glob("*.tif")):
        confocal = tifffile.imread(path).astype(np.float32)
        tifffile.imwrite(target / "GT" / path.name, label(confocal > confocal.mean()).astype(np.uint16))
    return target
