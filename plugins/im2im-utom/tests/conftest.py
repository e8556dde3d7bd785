"""Fixtures of the im2im-utom tests: small real images in unpaired folders, and a clean registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from im2im_core.testing import DEMO_DATA, DEMO_DATA_3D, one_torch_thread, plugin_registry  # noqa: F401  (fixtures)

DEMO = DEMO_DATA / "train"
#: 256 x 256 RGB crops of H&E (OpenSlide CMU-1-Small-Region, CC0) and IHC (scikit-image): tests/data/README.txt
HISTOLOGY = Path(__file__).resolve().parent / "data"

registry = plugin_registry("utom")


@pytest.fixture
def images_and_masks(tmp_path: Path) -> Path:
    """Unpaired BBBC039 crops: IM/ four images, GT/ the masks of four OTHER crops (no pair seen)."""
    folder = tmp_path / "unpaired_2d"
    for sub in ("IM", "GT"):
        (folder / sub).mkdir(parents=True)
    names = sorted(p.name for p in (DEMO / "IM").glob("*.tif"))
    for name in names[:4]:
        shutil.copy(DEMO / "IM" / name, folder / "IM" / name)
    for name in names[4:8]:
        shutil.copy(DEMO / "GT" / name, folder / "GT" / name)
    return folder


@pytest.fixture
def stacks_3d(tmp_path: Path) -> Path:
    """IM/ the widefield crop of nucleus 0, GT/ the confocal crop of nucleus 1: one stack each, unpaired."""
    folder = tmp_path / "unpaired_3d"
    for sub in ("IM", "GT"):
        (folder / sub).mkdir(parents=True)
    shutil.copy(DEMO_DATA_3D / "IM" / "nucleus_0.tif", folder / "IM" / "nucleus_0.tif")
    shutil.copy(DEMO_DATA_3D / "GT" / "nucleus_1.tif", folder / "GT" / "nucleus_1.tif")
    return folder


@pytest.fixture
def he_and_ihc(tmp_path: Path) -> Path:
    """IM/ two 96 x 96 H&E tiles, GT/ two 96 x 96 IHC tiles (RGB, uint8): two stains, unpaired."""
    files = {"IM": HISTOLOGY / "he_cmu1_crop256.tif", "GT": HISTOLOGY / "ihc_skimage_crop256.tif"}
    corners = {"IM": [(0, 0), (128, 128)], "GT": [(0, 0), (160, 160)]}
    folder = tmp_path / "unpaired_rgb"
    for key, path in files.items():
        image = tifffile.imread(path)
        (folder / key).mkdir(parents=True)
        for i, (y, x) in enumerate(corners[key]):
            tile = np.ascontiguousarray(image[y:y + 96, x:x + 96, :3])
            tifffile.imwrite(folder / key / f"tile{i}.tif", tile, photometric="rgb")
    return folder


# ------------------------------------------------------------------ tiny models and data for the framework tests
def tiny_networks(spatial_dims: int = 2, channels_a: int = 1, channels_b: int = 1) -> dict:
    """Generators and discriminators of a few hundred weights: CycleGAN's layouts, 4 filters."""
    from im2im_core.networks import PatchGAN, ResNetGenerator

    return {
        "generator_ab": ResNetGenerator(spatial_dims, channels_a, channels_b, channels=4, n_blocks=1),
        "generator_ba": ResNetGenerator(spatial_dims, channels_b, channels_a, channels=4, n_blocks=1),
        "discriminator_a": PatchGAN(spatial_dims, channels_a, channels=4, n_layers=2, norm="INSTANCE"),
        "discriminator_b": PatchGAN(spatial_dims, channels_b, channels=4, n_layers=2, norm="INSTANCE"),
    }


@pytest.fixture
def tiny():
    """``tiny(cls, **kwargs)``: a CycleGAN or UTOM with tiny networks, seeded."""
    import torch

    def build(cls, spatial_dims: int = 2, **kwargs):  # noqa: ANN001, ANN003, ANN202
        torch.manual_seed(0)
        return cls(**{**tiny_networks(spatial_dims), **kwargs})

    return build


@pytest.fixture
def unpaired_data(images_and_masks: Path):
    """``unpaired_data(**kwargs)``: the data module of the unpaired crops, 32 x 32 patches, one image per batch."""
    from monai.transforms import ScaleIntensityRanged

    from im2im_core.data import Im2ImDataModule
    from im2im_core.data.normalization import PercentileNormalized

    def build(**kwargs):  # noqa: ANN003, ANN202
        settings = {"data_path": str(images_and_masks), "layout": "unpaired", "target": "mask", "patch_size": [32, 32],
                    "samples_per_image": 2, "batch_size": 2,
                    "normalize": [PercentileNormalized(["IM"], out_range="-1,1", clip=True),
                                  ScaleIntensityRanged(["GT"], 0.0, 1.0, -1.0, 1.0, allow_missing_keys=True)]}
        return Im2ImDataModule(**{**settings, **kwargs})

    return build
