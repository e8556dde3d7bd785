"""Fixtures of the im2im-embedseg tests: hand-made label images, real crops, a clean registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from im2im_core.testing import DEMO_DATA_3D, copy_pairs, one_torch_thread, plugin_registry  # noqa: F401  (fixtures)

registry = plugin_registry("embedseg")


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
    return copy_pairs(tmp_path / "data_2d", slice(0, 3))


@pytest.fixture
def data_3d(tmp_path: Path) -> Path:
    """Two 16x64x64 widefield z-stacks of a nucleus; labels: connected components of the
    registered confocal stack above its mean (a real image, labels made for the test).
    """
    from skimage.measure import label

    target = tmp_path / "data_3d"
    (target / "GT").mkdir(parents=True)
    shutil.copytree(DEMO_DATA_3D / "IM", target / "IM")
    for path in sorted((DEMO_DATA_3D / "GT").glob("*.tif")):
        confocal = tifffile.imread(path).astype(np.float32)
        tifffile.imwrite(target / "GT" / path.name, label(confocal > confocal.mean()).astype(np.uint16))
    return target
