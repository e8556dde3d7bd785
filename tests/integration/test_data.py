"""The data module on real images: every layout, 5D OME-TIFF and OME-Zarr, caching, sampling, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile

from im2im_core.data import Im2ImDataModule
from im2im_core.data.datasets import partial_subset
from im2im_core.errors import DataError


def _first_batch(module: Im2ImDataModule) -> dict:
    module.setup("fit")
    return next(iter(module.train_dataloader()))


def _small(**kwargs) -> dict:
    return {"patch_size": [64, 64], "samples_per_image": 2, "batch_size": 4, **kwargs}


def test_subfolder_layout_gives_binary_mask_patches(data_2d):
    batch = _first_batch(Im2ImDataModule(str(data_2d), val_fraction=0.25, **_small()))
    assert batch["IM"].shape == (4, 1, 64, 64) and batch["GT"].shape == (4, 1, 64, 64)
    assert set(np.unique(batch["GT"].numpy())) <= {0.0, 1.0}
    assert -0.1 <= float(batch["IM"].min()) and float(batch["IM"].max()) <= 1.5  # percentiles 0.5, 99.5 -> 0, 1


def test_patches_not_square_in_yx_batch_with_the_default_augmentation(data_2d):
    """A quarter turn would make a 64 x 48 patch 48 x 64 and break the batch: flips only, then."""
    module = Im2ImDataModule(str(data_2d), val_fraction=0, **_small(patch_size=[64, 48], samples_per_image=16,
                                                                     batch_size=16))
    module.setup("fit")
    for _ in range(3):  # 16 patches a batch: a rotation of one of 48 would show
        batch = next(iter(module.train_dataloader()))
        assert batch["IM"].shape == (16, 1, 64, 48) and batch["GT"].shape == (16, 1, 64, 48)


def test_a_batch_smaller_than_one_images_patches_is_named(data_2d):
    with pytest.warns(UserWarning, match="data.batch_size 2 is below data.samples_per_image 4.*hold 4 patches"):
        module = Im2ImDataModule(str(data_2d), val_fraction=0, **_small(samples_per_image=4, batch_size=2))
    assert _first_batch(module)["IM"].shape[0] == 4  # what the warning says


def test_a_target_normalization_that_prediction_cannot_apply_is_named_before_training(data_2d):
    from monai.transforms import NormalizeIntensityd

    with pytest.raises(DataError, match=r"NormalizeIntensityd with keys \['IM', 'GT'\] needs allow_missing_keys: true"):
        Im2ImDataModule(str(data_2d), target="intensity", normalize=[NormalizeIntensityd(["IM", "GT"])], **_small())
    Im2ImDataModule(str(data_2d), target="intensity", normalize=[NormalizeIntensityd(["IM", "GT"], allow_missing_keys=True)],
                    **_small())


def test_suffix_layout_and_explicit_val_folder(data_2d, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in sorted((data_2d / "IM").iterdir()):
        shutil.copy(image, flat / f"{image.stem}_IM.tif")
        shutil.copy(data_2d / "GT" / image.name, flat / f"{image.stem}_GT.tif")
    module = Im2ImDataModule(str(flat), val_path=str(data_2d), **_small())
    module.setup("fit")
    assert len(module.train_samples) == 4 and len(module.val_samples) == 4
    assert next(iter(module.val_dataloader()))["IM"].shape == (1, 1, 256, 256)


def test_csv_costmap_weights_patch_centres(data_2d, tmp_path):
    image = sorted((data_2d / "IM").iterdir())[0]
    costmap = np.zeros((256, 256), np.float32)
    costmap[100:110, 40:50] = 1.0  # only this square may hold a patch centre
    tifffile.imwrite(tmp_path / "cm.tif", costmap)
    (tmp_path / "pairs.csv").write_text(f"input,target,costmap\n{image},{data_2d / 'GT' / image.name},cm.tif\n")
    module = Im2ImDataModule(str(tmp_path / "pairs.csv"), val_fraction=0, augment=[], **_small(samples_per_image=4))
    batch = _first_batch(module)
    assert "CM" in batch
    centre = batch["CM"][:, 0, 32, 32]
    assert bool((centre == 1).all())


def test_foreground_sampling_balances_patches(data_2d):
    module = Im2ImDataModule(str(data_2d), val_fraction=0, sampling="foreground", foreground_fraction=1.0, augment=[],
                             **_small(samples_per_image=4))
    batch = _first_batch(module)
    assert bool((batch["GT"].amax(dim=(1, 2, 3)) == 1).all())  # every patch holds nucleus pixels


def test_unpaired_domains_of_different_sizes(data_2d, tmp_path):
    root = tmp_path / "unpaired"
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir()
    for i, path in enumerate(sorted((data_2d / "IM").iterdir())):
        shutil.copy(path, root / "A" / path.name)
    for path in sorted((data_2d / "GT").iterdir())[:2]:
        tifffile.imwrite(root / "B" / path.name, tifffile.imread(path)[:200, :180])
    module = Im2ImDataModule(str(root), layout="unpaired", input_dir="A", target_dir="B", **_small())
    batch = _first_batch(module)
    assert batch["IM"].shape == (4, 1, 64, 64) and batch["GT"].shape == (4, 1, 64, 64)
    assert module.val_dataloader() == []


def test_images_only_layout_for_self_supervised(data_2d):
    module = Im2ImDataModule(str(data_2d / "IM"), layout="images", val_fraction=0.25, **_small())
    batch = _first_batch(module)
    assert set(batch) == {"IM"} and batch["IM"].shape == (4, 1, 64, 64)


def test_5d_ome_tiff_axis_selection_and_pixel_sizes(tmp_path):
    from bioio_base.types import PhysicalPixelSizes
    from bioio_ome_tiff.writers import OmeTiffWriter

    from im2im_core.data.readers import BioioReader

    data = np.arange(2 * 3 * 8 * 32 * 32, dtype=np.uint16).reshape(2, 3, 8, 32, 32)
    path = tmp_path / "five.ome.tiff"
    OmeTiffWriter.save(data, str(path), dim_order="TCZYX", physical_pixel_sizes=PhysicalPixelSizes(2.0, 0.5, 0.25))
    image = BioioReader(dims="CZYX", T=1, C=[0, 2]).read(path)
    assert image.numpy().shape == (2, 8, 32, 32)
    np.testing.assert_array_equal(image.numpy(), data[1, [0, 2]])
    assert image.physical_pixel_sizes == {"Z": 2.0, "Y": 0.5, "X": 0.25}


def test_ome_zarr_is_read_lazily(tmp_path):
    from im2im_core.data.readers import BioioReader
    from im2im_core.inference.outputs import ZarrOutput

    data = np.random.default_rng(0).integers(0, 1000, (1, 1, 8, 64, 64)).astype(np.uint16)
    store = tmp_path / "img.ome.zarr"
    output = ZarrOutput(store, data.shape, "TCZYX", np.uint16, {"Z": 1.0, "Y": 0.3, "X": 0.3})
    output.write(tuple(slice(None) for _ in range(5)), data)
    image = BioioReader(dims="ZYX").read(store)
    assert hasattr(image.array, "compute")  # dask: nothing read yet
    np.testing.assert_array_equal(image.numpy(), data[0, 0])


def test_disk_cache_reused_and_invalidated_by_preprocessing(data_2d, tmp_path):
    from im2im_core.data.normalization import PercentileNormalized

    cache = tmp_path / "cache"

    def entries(**kwargs) -> set[str]:
        module = Im2ImDataModule(str(data_2d), val_fraction=0, cache="disk", cache_dir=str(cache), **_small(**kwargs))
        module.setup("fit")
        for _ in module.train_dataloader():
            pass
        return {p.name for p in cache.iterdir()}

    first = entries()
    assert len(first) == 4
    assert entries() == first  # second run: same entries, nothing new
    changed = entries(normalize=[PercentileNormalized(["IM"], lower=1, upper=99)])
    assert len(changed) == 8  # new preprocessing, new entries


def test_partial_loading_changes_share_each_round():
    samples = [{"IM": str(i)} for i in range(20)]
    first, again, second = (partial_subset(samples, 0.25, r, seed=0) for r in (0, 0, 1))
    assert len(first) == 5 and first == again and first != second


def test_normalizations():
    from im2im_core.data.normalization import CenterNormalized, PercentileNormalized

    image = np.random.default_rng(1).gamma(2.0, 100.0, (1, 40, 16, 16)).astype(np.float32)
    out = PercentileNormalized(["IM"], lower=1, upper=99, out_range="-1,1")({"IM": image})["IM"]
    assert (np.isclose(np.percentile(np.asarray(out), 1), -1, atol=1e-3)
            and np.isclose(np.percentile(np.asarray(out), 99), 1, atol=1e-3))
    centred = CenterNormalized(["IM"], z_chunk=8)({"IM": image})["IM"]
    middle = centred[:, 16:24]
    assert abs(float(middle.mean())) < 1e-4 and abs(float(middle.std()) - 1) < 1e-3


# ------------------------------------------------------------------------ bad input


def test_truncated_file_is_named_before_training(data_2d):
    victim = sorted((data_2d / "IM").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(DataError, match=victim.name):
        Im2ImDataModule(str(data_2d), **_small()).setup("fit")


def test_pair_of_different_shapes_is_named(data_2d):
    target = sorted((data_2d / "GT").iterdir())[0]
    tifffile.imwrite(target, tifffile.imread(target)[:200])
    with pytest.raises(DataError, match=f"differ in spatial shape.*{target.name}.*\\(200, 256\\)"):
        Im2ImDataModule(str(data_2d), **_small()).setup("fit")


def test_nan_image_is_named(data_2d):
    victim = sorted((data_2d / "IM").iterdir())[0]
    image = tifffile.imread(victim).astype(np.float32)
    image[5, 5] = np.nan
    tifffile.imwrite(victim, image)
    module = Im2ImDataModule(str(data_2d), val_fraction=0, **_small())
    module.setup("fit")
    with pytest.raises(DataError, match=f"{victim.name}: image contains NaN"):
        module.train_dataloader()  # the memory cache is filled here, before the first step
    with pytest.raises(DataError, match=f"{victim.name}: image contains NaN"):
        Im2ImDataModule(str(data_2d), val_fraction=0, cache="none", **_small()).setup("fit")


def test_empty_folder_and_empty_domain(tmp_path):
    (tmp_path / "IM").mkdir()
    (tmp_path / "GT").mkdir()
    with pytest.raises(DataError, match="no images in .*IM"):
        Im2ImDataModule(str(tmp_path), **_small()).setup("fit")
    with pytest.raises(DataError, match="no images in .*IM"):
        Im2ImDataModule(str(tmp_path), layout="unpaired", **_small()).setup("fit")



def test_content_sampling_centres_unpaired_patches_on_each_domains_content(data_2d, tmp_path):
    """A BBBC039 crop is mostly background: with ``content`` sampling and foreground_fraction 1
    patches are centred above the image's Otsu threshold (unless moved in from a border);
    uniform patches mostly are not.
    """
    from monai.utils import set_determinism
    from skimage.filters import threshold_otsu

    root = tmp_path / "unpaired"
    source = sorted((data_2d / "IM").iterdir())[0]
    for sub in ("A", "B"):
        (root / sub).mkdir(parents=True)
        shutil.copy(source, root / sub / source.name)
    raw = tifffile.imread(source).astype(np.float32)
    low, high = np.percentile(raw, [0.5, 99.5])
    threshold = (threshold_otsu(raw) - low) / (high - low)  # in the data module's normalized units
    assert (raw > threshold_otsu(raw)).mean() < 0.35
    centred = {}
    for sampling in ("content", "uniform"):
        set_determinism(0)
        module = Im2ImDataModule(str(root), layout="unpaired", input_dir="A", target_dir="B", sampling=sampling,
                                 foreground_fraction=1.0, **_small(patch_size=[33, 33], samples_per_image=8, batch_size=8))
        module.setup("fit")
        patches = [batch[key] for _ in range(4) for batch in module.train_dataloader() for key in ("IM", "GT")]
        assert all(p.shape == (8, 1, 33, 33) for p in patches)  # the whole-image content mask is gone
        centred[sampling] = float(np.mean([(p[:, 0, 16, 16] > threshold).float().mean() for p in patches]))
    set_determinism(None)
    assert centred["content"] >= 0.9 and centred["uniform"] < centred["content"] - 0.3, centred


def _time_series(path, frames: int, shape=(48, 48)) -> None:
    rng = np.random.default_rng(0)
    tifffile.imwrite(path, rng.integers(90, 180, (frames, *shape), dtype=np.uint16), imagej=True, metadata={"axes": "TYX"})


def test_a_time_series_trains_each_timepoint_as_a_sample(tmp_path):
    (tmp_path / "series").mkdir()
    _time_series(tmp_path / "series" / "a.tif", 5)
    _time_series(tmp_path / "series" / "b.tif", 3)
    module = Im2ImDataModule(str(tmp_path / "series"), layout="images", dims="TYX", val_fraction=0.25, split_seed=1,
                             **_small(patch_size=[32, 32]))
    batch = _first_batch(module)
    samples = module.train_samples + module.val_samples
    assert sorted((s["IM"].rsplit("/", 1)[-1], s["timepoint"]) for s in samples) == \
        [("a.tif", t) for t in range(5)] + [("b.tif", t) for t in range(3)]
    assert len(module.val_samples) == 2
    assert batch["IM"].shape == (4, 1, 32, 32)                   # one timepoint per patch, no T axis
    val = next(iter(module.val_dataloader()))
    assert val["IM"].shape == (1, 1, 48, 48) and val["IM_dims"] == ["CYX"]


def test_paired_time_series_must_agree_in_timepoints(tmp_path):
    for sub, frames in (("IM", 4), ("GT", 3)):
        (tmp_path / sub).mkdir()
        _time_series(tmp_path / sub / "a.tif", frames)
    module = Im2ImDataModule(str(tmp_path), dims="TYX", target="intensity", **_small(patch_size=[32, 32]))
    with pytest.raises(DataError, match="differ in their number of timepoints: .*IM/a.tif has 4; .*GT/a.tif has 3"):
        module.setup("fit")


def test_targets_of_image_only_training_are_ignored_with_a_warning(data_2d):
    module = Im2ImDataModule(str(data_2d), target="none", val_fraction=0, **_small())
    with pytest.warns(UserWarning, match="data.target is none: the targets found in .* are not used"):
        batch = _first_batch(module)
    assert "GT" not in batch
