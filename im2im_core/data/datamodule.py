"""One LightningDataModule for every framework: paired, image-only and predict samples."""

from __future__ import annotations

import random
from typing import Literal

import lightning.pytorch as pl
from monai.data import CacheDataset, DataLoader, Dataset
from monai.transforms import (
    Compose,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandRotate90d,
    RandSpatialCropSamplesd,
    ScaleIntensityRangePercentilesd,
    SelectItemsd,
    SpatialPadd,
    Transform,
)

from im2im_core.data.layouts import paired_samples
from im2im_core.data.readers import check_dims
from im2im_core.data.transforms import Binarized, ReadImaged
from im2im_core.errors import DataError

TargetKind = Literal["mask", "labels", "intensity"]


class Im2ImDataModule(pl.LightningDataModule):
    """Load image pairs, normalize, cache, sample patches and batch them.

    Parameters
    ----------
    data_path : str, optional
        Training data: a folder (``IM``/``GT`` subfolders, or ``name_IM``/``name_GT`` files) or
        a CSV with columns ``input``, ``target``. Required for fit, validate and test.
    layout : {"auto", "subfolders", "suffix", "csv"}
        How inputs and targets are paired; ``auto`` detects it.
    input_dir, target_dir : str
        Subfolder names of the ``subfolders`` layout.
    val_path : str, optional
        Validation data in the same layout; when absent a seeded random split of ``data_path``.
    val_fraction : float
        Share of ``data_path`` samples held out for validation when ``val_path`` is absent.
    split_seed : int
        Seed of that split.
    predict_path : str, optional
        Images to predict: a folder of images, or a folder in the training layout (then the
        targets found are used for evaluation after prediction).
    dims : str
        Axes read from each file, e.g. ``"YX"``, ``"ZYX"``, ``"CZYX"``, or ``"YXS"`` for RGB
        (the colour samples become channels).
    target : {"mask", "labels", "intensity"}
        ``mask``: foreground of the target (``> 0``) for binary segmentation; ``labels``: class
        indices as they are; ``intensity``: an image (label-free, denoising, modality transfer).
    normalize : list of Transform, optional
        Deterministic dictionary transforms after reading (cached). Default: percentile
        normalization (0.5, 99.5) to [0, 1] of the input, and of the target when ``intensity``.
    augment : list of Transform, optional
        Random dictionary transforms applied to training patches. Default: flips along every
        spatial axis and 90-degree rotations in YX.
    patch_size : list of int
        Training patch size, one entry per spatial axis (2 for YX, 3 for ZYX).
    samples_per_image : int
        Patches drawn from each image per visit.
    batch_size : int
        Patches per training batch, rounded down to a multiple of ``samples_per_image``
        (each loaded image gives that many patches).
    num_workers : int
        Data loader worker processes.
    cache : bool
        Keep the read and normalized images in memory across epochs.
    """

    def __init__(
        self,
        data_path: str | None = None,
        layout: str = "auto",
        input_dir: str = "IM",
        target_dir: str = "GT",
        val_path: str | None = None,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        predict_path: str | None = None,
        dims: str = "YX",
        target: TargetKind = "mask",
        normalize: list[Transform] | None = None,
        augment: list[Transform] | None = None,
        patch_size: list[int] = [128, 128],  # noqa: B006  (jsonargparse needs a literal default)
        samples_per_image: int = 4,
        batch_size: int = 8,
        num_workers: int = 0,
        cache: bool = True,
    ) -> None:
        super().__init__()
        self.data_path, self.layout, self.val_path, self.predict_path = data_path, layout, val_path, predict_path
        self.input_dir, self.target_dir = input_dir, target_dir
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.dims = check_dims(dims)
        self.target = target
        self.patch_size = list(patch_size)
        spatial = sum(axis in "ZYX" for axis in self.dims)
        if len(self.patch_size) != spatial:
            raise DataError(f"patch_size {self.patch_size} has {len(self.patch_size)} entries but dims {dims!r} has {spatial} spatial axes")
        self.spatial_dims = spatial
        self.normalize = normalize
        self.augment = augment
        self.samples_per_image, self.batch_size, self.num_workers, self.cache = samples_per_image, batch_size, num_workers, cache
        self.train_samples: list[dict[str, str]] = []
        self.val_samples: list[dict[str, str]] = []
        self.predict_samples: list[dict[str, str]] = []

    # ----------------------------------------------------------------- transforms
    def _read_and_normalize(self, keys: list[str]) -> list[Transform]:
        steps: list[Transform] = [ReadImaged(keys, dims=self.dims)]
        if "GT" in keys and self.target == "mask":
            steps.append(Binarized("GT"))
        if self.normalize is not None:
            steps.extend(self.normalize)
        else:
            norm_keys = ["IM", "GT"] if self.target == "intensity" and "GT" in keys else ["IM"]
            steps.append(ScaleIntensityRangePercentilesd(norm_keys, lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, allow_missing_keys=True))
        return steps

    def _default_augment(self) -> list[Transform]:
        keys = ["IM", "GT"]
        flips: list[Transform] = [RandFlipd(keys, prob=0.5, spatial_axis=axis) for axis in range(self.spatial_dims)]
        last_two = (self.spatial_dims - 2, self.spatial_dims - 1)
        return [*flips, RandRotate90d(keys, prob=0.5, spatial_axes=last_two)]

    def train_transform(self) -> Compose:
        """Read, normalize (cached part), then pad, crop patches and augment."""
        keys = ["IM", "GT"]
        if self.target == "intensity":
            crop: Transform = RandSpatialCropSamplesd(keys, roi_size=self.patch_size, num_samples=self.samples_per_image, random_size=False)
        else:
            crop = RandCropByPosNegLabeld(keys, label_key="GT", spatial_size=self.patch_size, pos=1, neg=1,
                                          num_samples=self.samples_per_image, allow_smaller=True)
        augment = self.augment if self.augment is not None else self._default_augment()
        return Compose([*self._read_and_normalize(keys), SelectItemsd(keys),
                        SpatialPadd(keys, spatial_size=self.patch_size), crop, *augment])

    def eval_transform(self, keys: list[str]) -> Compose:
        """Read and normalize whole images (validation, test, predict)."""
        return Compose(self._read_and_normalize(keys))

    # ----------------------------------------------------------------- samples
    def _require_data_path(self) -> str:
        if self.data_path is None:
            raise DataError("data.data_path is not set: give the training data folder or CSV (--data.data_path PATH)")
        return self.data_path

    def _split(self) -> None:
        samples = paired_samples(self._require_data_path(), self.layout, self.input_dir, self.target_dir)
        if self.val_path is not None:
            self.train_samples = samples
            self.val_samples = paired_samples(self.val_path, self.layout, self.input_dir, self.target_dir)
            return
        order = list(range(len(samples)))
        random.Random(self.split_seed).shuffle(order)
        n_val = round(len(samples) * self.val_fraction) if len(samples) > 1 else 0
        n_val = max(n_val, 1) if self.val_fraction > 0 and len(samples) > 1 else n_val
        self.val_samples = [samples[i] for i in sorted(order[:n_val])]
        self.train_samples = [samples[i] for i in sorted(order[n_val:])]

    def setup(self, stage: str | None = None) -> None:
        """Find the samples of ``stage`` and check that every file is there."""
        if stage in (None, "fit", "validate", "test"):
            self._split()
        if stage == "predict":
            if self.predict_path is None:
                raise DataError("data.predict_path is not set: give the folder of images to predict (--data.predict_path PATH)")
            self.predict_samples = paired_samples(self.predict_path, "auto", self.input_dir, self.target_dir, need_target=False)

    def _dataset(self, samples: list[dict[str, str]], transform: Compose, cache: bool) -> Dataset:
        if cache:
            return CacheDataset(samples, transform, cache_rate=1.0, num_workers=None if self.num_workers == 0 else self.num_workers, progress=False)
        return Dataset(samples, transform)

    # ----------------------------------------------------------------- loaders
    def train_dataloader(self) -> DataLoader:
        dataset = self._dataset(self.train_samples, self.train_transform(), self.cache)
        images_per_batch = max(1, self.batch_size // self.samples_per_image)
        return DataLoader(dataset, batch_size=images_per_batch, shuffle=True, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, drop_last=False)

    def val_dataloader(self) -> DataLoader:
        dataset = self._dataset(self.val_samples, self.eval_transform(["IM", "GT"]), self.cache)
        return DataLoader(dataset, batch_size=1, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """One whole image per batch; targets are not read here (the writer evaluates them)."""
        samples = [{"IM": s["IM"], "GT_path": s.get("GT", "")} for s in self.predict_samples]
        dataset = Dataset(samples, self.eval_transform(["IM"]))
        return DataLoader(dataset, batch_size=1, num_workers=self.num_workers)
