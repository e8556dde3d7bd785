"""Unit tests of the dictionary transforms (im2im_stain.transforms) and of Reinhard normalization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from monai.transforms import Compose
from skimage.color import rgb2lab

from im2im_core.errors import ConfigError, DataError
from im2im_stain.macenko import StainFit, fit_stains, normalize_stains
from im2im_stain.reinhard import LabStats, lab_stats, reinhard_normalize
from im2im_stain.transforms import MacenkoNormalized, ReinhardNormalized, StainSeparated


def write_rgb(path: Path, image: np.ndarray) -> str:
    tifffile.imwrite(path, np.moveaxis(image, 0, -1).astype(np.uint8), photometric="rgb")
    return str(path)


# ------------------------------------------------------------------ MacenkoNormalized
def test_macenko_transform_defaults_to_the_standard_reference(he_crop: np.ndarray) -> None:
    sample = MacenkoNormalized(keys=["IM"])({"IM": he_crop, "GT": np.zeros((1, 4, 4))})
    np.testing.assert_allclose(sample["IM"], normalize_stains(he_crop, StainFit.standard()), atol=1e-4)
    assert sample["GT"].shape == (1, 4, 4)  # other keys untouched


def test_macenko_transform_fits_a_reference_file(tmp_path: Path, he_crop: np.ndarray, ihc_image: np.ndarray) -> None:
    reference = write_rgb(tmp_path / "ref.tif", ihc_image)
    transform = MacenkoNormalized(keys="IM", reference=reference)
    expected = fit_stains(ihc_image)
    np.testing.assert_allclose(transform.target.stains.numpy(), expected.stains.numpy(), atol=1e-5)
    out = transform({"IM": he_crop})["IM"]
    np.testing.assert_allclose(out, normalize_stains(he_crop, expected), atol=1e-4)


def test_macenko_transform_takes_stains_from_the_config(he_crop: np.ndarray) -> None:
    stains = [[0.65, 0.07], [0.70, 0.99], [0.29, 0.11]]
    transform = MacenkoNormalized(keys="IM", stains=stains, max_concentrations=[1.5, 1.0], unit_range=True)
    np.testing.assert_allclose(transform.target.stains.norm(dim=0).numpy(), 1.0, atol=1e-6)
    out = transform({"IM": torch.from_numpy(he_crop)})["IM"]
    assert isinstance(out, torch.Tensor) and 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_macenko_transform_errors_name_the_file() -> None:
    transform = MacenkoNormalized(keys="IM")
    with pytest.raises(DataError, match=r"^/data/x\.tif: MacenkoNormalized: no tissue"):
        transform({"IM": np.full((3, 16, 16), 250.0, np.float32), "IM_path": "/data/x.tif"})
    with pytest.raises(DataError, match=r"^/data/y\.tif: MacenkoNormalized: expected an RGB image"):
        transform({"IM": np.full((1, 16, 16), 100.0, np.float32), "IM_path": "/data/y.tif"})


def test_macenko_transform_can_keep_blank_tiles() -> None:
    blank = np.full((3, 16, 16), 250.0, np.float32)
    out = MacenkoNormalized(keys="IM", no_tissue="keep", unit_range=True)({"IM": blank})["IM"]
    np.testing.assert_allclose(out, blank / 255.0)


def test_macenko_transform_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        MacenkoNormalized(keys="IM", reference="a.tif", stains=[[1, 0], [0, 1], [0, 0]])
    with pytest.raises(ConfigError, match="3 rows"):
        MacenkoNormalized(keys="IM", stains=[[1, 0], [0, 1]])
    blank = write_rgb(tmp_path / "blank.tif", np.full((3, 16, 16), 255))
    with pytest.raises(DataError, match="reference image .*blank.tif: no tissue"):
        MacenkoNormalized(keys="IM", reference=blank)


def test_macenko_transform_composes_with_monai(he_crop: np.ndarray) -> None:
    from monai.transforms import RandSpatialCropd

    pipeline = Compose([MacenkoNormalized(keys="IM", unit_range=True), RandSpatialCropd(keys="IM", roi_size=(64, 64))])
    assert tuple(pipeline({"IM": he_crop})["IM"].shape) == (3, 64, 64)


# ------------------------------------------------------------------ StainSeparated
def test_stain_separated_channels_and_sources(he_crop: np.ndarray) -> None:
    hematoxylin = StainSeparated(keys="IM", channels="H")({"IM": he_crop})["IM"]
    assert hematoxylin.shape == (1, *he_crop.shape[1:]) and hematoxylin.min() >= 0.0
    all_three = StainSeparated(keys="IM", per_image=True)({"IM": he_crop})["IM"]
    reordered = StainSeparated(keys="IM", per_image=True, channels="EH")({"IM": he_crop})["IM"]
    np.testing.assert_allclose(reordered, all_three[[1, 0]])
    with pytest.raises(ConfigError, match="letters of 'HER'"):
        StainSeparated(keys="IM", channels="HD")
    with pytest.raises(ConfigError, match="at most one"):
        StainSeparated(keys="IM", per_image=True, stains=[[1, 0], [0, 1], [0, 0]])


# ------------------------------------------------------------------ Reinhard
def test_reinhard_matches_the_target_lab_statistics(he_crop: np.ndarray) -> None:
    """Target: the crop's own Lab statistics shifted by (-6, 3, -2) and scaled by (1.15, 0.85, 0.9).
    Tolerance: mean within 0.5 and std within 8% (lab2rgb clips colours out of the sRGB gamut,
    here near-white pixels; measured 0.1 and 1.5%).
    """
    source = lab_stats(he_crop)
    target = LabStats(tuple(np.add(source.mean, (-6.0, 3.0, -2.0))), tuple(np.multiply(source.std, (1.15, 0.85, 0.9))))
    out = reinhard_normalize(he_crop, target)
    lab = rgb2lab(np.moveaxis(out, 0, -1) / 255.0).reshape(-1, 3)
    np.testing.assert_allclose(lab.mean(axis=0), target.mean, atol=0.5)
    np.testing.assert_allclose(lab.std(axis=0), target.std, rtol=0.08)


def test_reinhard_of_the_reference_to_itself_is_identity(he_crop: np.ndarray) -> None:
    out = reinhard_normalize(he_crop, lab_stats(he_crop))
    np.testing.assert_allclose(out, he_crop, atol=0.05)  # Lab round trip only


def test_reinhard_transform(tmp_path: Path, he_crop: np.ndarray, ihc_image: np.ndarray) -> None:
    reference = write_rgb(tmp_path / "ref.tif", ihc_image)
    by_file = ReinhardNormalized(keys="IM", reference=reference)
    stats = lab_stats(ihc_image)
    by_numbers = ReinhardNormalized(keys="IM", target_mean=list(stats.mean), target_std=list(stats.std))
    image = torch.from_numpy(he_crop)
    np.testing.assert_allclose(by_file({"IM": image})["IM"].numpy(), by_numbers({"IM": he_crop})["IM"], atol=1e-3)
    with pytest.raises(ConfigError, match="either a reference image or both"):
        ReinhardNormalized(keys="IM")
    with pytest.raises(ConfigError, match="either a reference image or both"):
        ReinhardNormalized(keys="IM", target_mean=[50.0, 0.0, 0.0])


def test_reinhard_errors() -> None:
    with pytest.raises(DataError, match="flat in Lab"):
        reinhard_normalize(np.full((3, 8, 8), 128.0, np.float32), LabStats((50.0, 0.0, 0.0), (10.0, 5.0, 5.0)))
    with pytest.raises(DataError, match="3 colour channels first"):
        lab_stats(np.zeros((8, 8, 3), np.float32))
