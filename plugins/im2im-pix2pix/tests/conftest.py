"""Fixtures of the im2im-pix2pix tests: small real images in temporary folders, and a clean registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from im2im_core.testing import copy_pairs, one_torch_thread, plugin_registry  # noqa: F401  (fixtures)

#: <clone>/plugins/im2im-pix2pix/tests/conftest.py -> <clone>/tests/data: two 16x64x64 widefield/confocal pairs
DATA_3D = Path(__file__).resolve().parents[3] / "tests" / "data" / "widefield_confocal_3d"
#: <clone>/../shared/data/histology_unpaired: the 512 x 512 RGB IHC image of scikit-image
IHC_FILE = Path(__file__).resolve().parents[4] / "shared" / "data" / "histology_unpaired" / "ihc_skimage.tif"

registry = plugin_registry("pix2pix")


@pytest.fixture
def masks_to_images(tmp_path: Path) -> Path:
    """Four BBBC039 crops for synthesis: IM/ the instance masks, GT/ the images."""
    return copy_pairs(tmp_path / "masks_to_images", slice(0, 4), swap=True)


@pytest.fixture
def data_3d(tmp_path: Path) -> Path:
    """Two 16x64x64 widefield (IM) / confocal (GT) z-stack pairs."""
    if not DATA_3D.is_dir():
        pytest.skip(f"test data not found: {DATA_3D} (the im2im clone's tests/data)")
    return Path(shutil.copytree(DATA_3D, tmp_path / "data_3d"))


@pytest.fixture
def rgb_pairs(tmp_path: Path) -> Path:
    """Three 96 x 96 RGB IHC crops (IM) and their hematoxylin-only re-rendering (GT, RGB): test data only."""
    from skimage.color import hed2rgb, rgb2hed

    if not IHC_FILE.is_file():
        pytest.skip(f"test data not found: {IHC_FILE} (the tests expect ../shared/data beside the clone)")
    image = tifffile.imread(IHC_FILE)
    folder = tmp_path / "rgb"
    for sub in ("IM", "GT"):
        (folder / sub).mkdir(parents=True)
    for i, (y, x) in enumerate([(0, 0), (200, 200), (400, 100)]):
        crop = image[y:y + 96, x:x + 96]
        hed = rgb2hed(crop)
        hed[..., 1:] = 0
        target = (np.clip(hed2rgb(hed), 0, 1) * 255).astype(np.uint8)
        tifffile.imwrite(folder / "IM" / f"tile{i}.tif", crop, photometric="rgb")
        tifffile.imwrite(folder / "GT" / f"tile{i}.tif", target, photometric="rgb")
    return folder
