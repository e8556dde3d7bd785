"""Fixtures of the im2im-pix2pix tests: small real images in temporary folders, and a clean registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

import im2im_core

#: BBBC039 nuclei crops (256 x 256) with their masks, bundled with the core (CC0).
DEMO = Path(im2im_core.__file__).parent / "demo_data" / "train"
#: <clone>/plugins/im2im-pix2pix/tests/conftest.py -> <clone>/tests/data: two 16x64x64 widefield/confocal pairs
DATA_3D = Path(__file__).resolve().parents[3] / "tests" / "data" / "widefield_confocal_3d"
#: <clone>/../shared/data/histology_unpaired: the 512 x 512 RGB IHC image of scikit-image
IHC_FILE = Path(__file__).resolve().parents[4] / "shared" / "data" / "histology_unpaired" / "ihc_skimage.tif"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: the test networks are tiny, and on a shared, busy machine OpenMP threads
    that wait for each other make them 10 times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch):
    """The registry with the built-ins and this plugin only (IM2IM_PLUGINS=pix2pix)."""
    from im2im_core.plugins import get_registry, reset_registry

    monkeypatch.setenv("IM2IM_PLUGINS", "pix2pix")
    monkeypatch.delenv("IM2IM_DISABLE_PLUGINS", raising=False)
    reset_registry()
    yield get_registry()
    reset_registry()


@pytest.fixture
def masks_to_images(tmp_path: Path) -> Path:
    """Four BBBC039 crops for synthesis: IM/ the instance masks, GT/ the images."""
    folder = tmp_path / "masks_to_images"
    for sub in ("IM", "GT"):
        (folder / sub).mkdir(parents=True)
    for path in sorted((DEMO / "IM").glob("*.tif"))[:4]:
        shutil.copy(DEMO / "GT" / path.name, folder / "IM" / path.name)
        shutil.copy(path, folder / "GT" / path.name)
    return folder


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
