"""Fixtures of the im2im-n2v tests: small real noisy images in temporary folders, and a clean registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tifffile

from im2im_core.testing import DEMO_DATA_3D, one_torch_thread, plugin_registry  # noqa: F401  (fixtures)

#: 8 x 96 x 96 frames of a real noisy time-lapse of telomere spots, see tests/data/README.txt (source, license)
TIMELAPSE = Path(__file__).resolve().parent / "data" / "telomeres_crop_t8.tif"

registry = plugin_registry("n2v")


@pytest.fixture
def timelapse(tmp_path: Path) -> Path:
    """A folder with the 8-frame time-lapse (TYX)."""
    folder = tmp_path / "timelapse"
    folder.mkdir()
    shutil.copy(TIMELAPSE, folder / TIMELAPSE.name)
    return folder


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    """A folder of four 2D frames (YX) of the time-lapse, one file each."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(tifffile.imread(TIMELAPSE)[:4]):
        tifffile.imwrite(folder / f"frame{t}.tif", frame)
    return folder


@pytest.fixture
def stacks(tmp_path: Path) -> Path:
    """Two 16 x 64 x 64 widefield z-stacks in IM/ with confocal GT/ beside them (which N2V ignores)."""
    return Path(shutil.copytree(DEMO_DATA_3D, tmp_path / "stacks"))


@pytest.fixture
def two_channels(tmp_path: Path) -> Path:
    """A folder of three 2 x 96 x 96 images (CYX): pairs of time-lapse frames as two channels."""
    folder = tmp_path / "two_channels"
    folder.mkdir()
    frames = tifffile.imread(TIMELAPSE)
    for i in range(3):
        tifffile.imwrite(folder / f"cell{i}.tif", frames[2 * i:2 * i + 2], imagej=True, metadata={"axes": "CYX"})
    return folder
