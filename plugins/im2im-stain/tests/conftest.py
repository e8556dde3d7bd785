"""Fixtures of the im2im-stain tests: crops of two real histology images (tests/data) and a clean registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from im2im_core.testing import one_torch_thread, plugin_registry  # noqa: F401  (fixtures)

#: crops of two real histology images, see tests/data/README.txt (coordinates, sources, licenses)
DATA = Path(__file__).resolve().parent / "data"
HE_FILE = DATA / "he_cmu1_crop512.tif"  # 512 x 512 RGB H&E crop, CC0 (OpenSlide CMU-1-Small-Region)
IHC_FILE = DATA / "ihc_skimage_crop256.tif"  # 256 x 256 RGB IHC crop (DAB + hematoxylin), scikit-image data


def _channel_first(path: Path) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(tifffile.imread(path), -1, 0)).astype(np.float32)


@pytest.fixture(scope="session")
def he_image() -> np.ndarray:
    """The H&E crop, ``(3, 512, 512)`` float32, values 0..255 (as the data module reads it)."""
    return _channel_first(HE_FILE)


@pytest.fixture(scope="session")
def he_half(he_image: np.ndarray) -> np.ndarray:
    """Every second pixel of the H&E crop, ``(3, 256, 256)``: the same tissue, 4x faster."""
    return np.ascontiguousarray(he_image[:, ::2, ::2])


@pytest.fixture(scope="session")
def he_crop(he_image: np.ndarray) -> np.ndarray:
    """A 256 x 256 tissue crop of the H&E image, at full resolution, for fast tests."""
    return he_image[:, 64:320, 0:256].copy()


@pytest.fixture(scope="session")
def ihc_image() -> np.ndarray:
    """The IHC crop, ``(3, 256, 256)`` float32."""
    return _channel_first(IHC_FILE)


registry = plugin_registry("stain")
