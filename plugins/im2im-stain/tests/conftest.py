"""Fixtures of the im2im-stain tests: the histology images of ../shared/data and a clean registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from im2im_core.testing import one_torch_thread, plugin_registry  # noqa: F401  (fixtures)

#: <clone>/plugins/im2im-stain/tests/conftest.py -> <clone>/../shared/data/histology_unpaired
HISTOLOGY = Path(__file__).resolve().parents[4] / "shared" / "data" / "histology_unpaired"
HE_FILE = HISTOLOGY / "he_cmu1_small_region.tif"  # 2967 x 2220 RGB H&E, CC0 (OpenSlide CMU-1)
IHC_FILE = HISTOLOGY / "ihc_skimage.tif"  # 512 x 512 RGB IHC (DAB + hematoxylin), scikit-image data


def _channel_first(path: Path) -> np.ndarray:
    if not path.is_file():
        pytest.skip(f"test data not found: {path} (the tests expect ../shared/data beside the clone)")
    return np.ascontiguousarray(np.moveaxis(tifffile.imread(path), -1, 0)).astype(np.float32)


@pytest.fixture(scope="session")
def he_image() -> np.ndarray:
    """The whole H&E image, ``(3, 2967, 2220)`` float32, values 0..255 (as the data module reads it)."""
    return _channel_first(HE_FILE)


@pytest.fixture(scope="session")
def he_half(he_image: np.ndarray) -> np.ndarray:
    """Every second pixel of the whole H&E image, ``(3, 1484, 1110)``: the same tissue, 4x faster."""
    return np.ascontiguousarray(he_image[:, ::2, ::2])


@pytest.fixture(scope="session")
def he_crop(he_image: np.ndarray) -> np.ndarray:
    """A 256 x 256 tissue crop of the H&E image, for fast tests."""
    return he_image[:, 1000:1256, 600:856].copy()


@pytest.fixture(scope="session")
def ihc_image() -> np.ndarray:
    """The IHC image, ``(3, 512, 512)`` float32."""
    return _channel_first(IHC_FILE)


registry = plugin_registry("stain")
