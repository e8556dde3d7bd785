"""Fixtures of the im2im-pix2pix tests: small real images in temporary folders, and a clean registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from im2im_core.testing import DEMO_DATA_3D, copy_pairs, one_torch_thread, plugin_registry  # noqa: F401  (fixtures)

#: a 256 x 256 RGB crop of the IHC image of scikit-image, see tests/data/README.txt (source, license)
IHC_FILE = Path(__file__).resolve().parent / "data" / "ihc_skimage_crop256.tif"

registry = plugin_registry("pix2pix")


@pytest.fixture
def masks_to_images(tmp_path: Path) -> Path:
    """Four BBBC039 crops for synthesis: IM/ the instance masks, GT/ the images."""
    return copy_pairs(tmp_path / "masks_to_images", slice(0, 4), swap=True)


@pytest.fixture
def data_3d(tmp_path: Path) -> Path:
    """Two 16x64x64 widefield (IM) / confocal (GT) z-stack pairs (the core's bundled NEUBIAS crops)."""
    return Path(shutil.copytree(DEMO_DATA_3D, tmp_path / "data_3d"))


@pytest.fixture
def rgb_pairs(tmp_path: Path) -> Path:
    """Three 96 x 96 RGB IHC crops (IM) and their hematoxylin-only re-rendering (GT, RGB): test data only."""
    from skimage.color import hed2rgb, rgb2hed

    image = tifffile.imread(IHC_FILE)
    folder = tmp_path / "rgb"
    for sub in ("IM", "GT"):
        (folder / sub).mkdir(parents=True)
    for i, (y, x) in enumerate([(0, 0), (160, 160), (160, 0)]):
        crop = image[y:y + 96, x:x + 96]
        hed = rgb2hed(crop)
        hed[..., 1:] = 0
        target = (np.clip(hed2rgb(hed), 0, 1) * 255).astype(np.uint8)
        tifffile.imwrite(folder / "IM" / f"tile{i}.tif", crop, photometric="rgb")
        tifffile.imwrite(folder / "GT" / f"tile{i}.tif", target, photometric="rgb")
    return folder
