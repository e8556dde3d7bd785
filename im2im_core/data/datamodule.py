"""One LightningDataModule for every framework: paired, unpaired, image-only and predict samples."""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
from monai.data import DataLoader, set_track_meta
from monai.transforms import Compose, RandFlipd, RandRotate90d, SelectItemsd, SpatialPadd, Transform

from im2im_core.axes import spatial_of
from im2im_core.data.datasets import CacheMode, UnpairedDataset, build_dataset, partial_subset
from im2im_core.data.layouts import paired_samples, unpaired_samples
from im2im_core.data.normalization import TRAINING_STATISTICS, MeanStd, PercentileNormalized, TrainingSetNormalized
from im2im_core.data.readers import check_dims
from im2im_core.data.sampling import Sampling, choose_sampling, patch_sampler, sampling_cleanup, sampling_precompute
from im2im_core.data.transforms import Binarized, PerTimepointd, ReadImaged
from im2im_core.errors import DataError
from im2im_core.keys import COSTMAP, IMAGE, IMAGE_NORMALIZE, TARGET, TARGET_PATH, TIMEPOINT
from im2im_core.protocols import Reader

TargetKind = Literal["mask", "labels", "intensity", "none"]


class Im2ImDataModule(pl.LightningDataModule):
    """Load images, normalize, cache, sample patches and batch them, for any framework.

    Parameters
    ----------
    data_path : str, optional
        Training data: a folder (``IM``/``GT`` subfolders, ``name_IM``/``name_GT`` files, two
        domain folders, or images alone) or a CSV with columns ``input``, ``target``
        [, ``costmap``]. Required for fit, validate and test.
    layout : {"auto", "subfolders", "suffix", "csv", "images", "unpaired"}
        How samples are found; ``auto`` detects the paired layouts. ``images`` trains on
        inputs alone (self-supervised), ``unpaired`` on two unpaired domains.
    input_dir, target_dir : str
        Subfolder names of the ``subfolders`` layout, or of domains A and B of ``unpaired``.
    val_path : str, optional
        Validation data in the same layout; when absent a seeded random split of ``data_path``.
    val_fraction : float
        Share of ``data_path`` samples held out for validation when ``val_path`` is absent.
    split_seed : int
        Seed of that split, of unpaired pairing and of partial loading.
    predict_path : str, optional
        Images to predict: a folder of images, or a folder in the training layout (then the
        targets found are used for evaluation after prediction).
    reader : str
        Registered reader name (``im2im plugins`` lists them); ``bioio`` reads TIFF, OME-TIFF,
        OME-Zarr and every format of an installed bioio plugin.
    dims : str
        Axes read from each file, e.g. ``"YX"``, ``"ZYX"``, ``"CZYX"``, or ``"YXS"`` for RGB
        (the colour samples become channels). With T (``"TYX"``, ``"TCZYX"``), each timepoint
        of a file is one training sample (paired and image-only layouts; the validation split
        then draws timepoints, so validation frames come from the training movies unless
        ``val_path`` gives others), and prediction keeps the T axis.
    T, C, Z : int or list of int, optional
        Index along an axis not in ``dims`` (``T: 0``) or a subset of one in it (``C: [0, 2]``).
    target : {"mask", "labels", "intensity", "none"}
        ``mask``: foreground of the target (``> 0``) for binary segmentation; ``labels``: class
        indices as they are; ``intensity``: an image (label-free, denoising, modality transfer,
        unpaired domains); ``none``: no target (``images`` layout).
    normalize : list of Transform, optional
        Deterministic dictionary transforms after reading (cached). Default: percentile
        normalization (0.5, 99.5) to [0, 1] of the input, and of the target when ``intensity``.
        A :class:`~im2im_core.data.normalization.TrainingSetNormalized` step learns the training
        set's mean and std in ``setup("fit")``; they are part of the data module's state, which
        Lightning saves in every checkpoint and restores for validate, test and predict.
    augment : list of Transform, optional
        Random dictionary transforms applied to training patches. Default: flips along every
        spatial axis and 90-degree rotations in YX (rotations only when the patch is square in
        YX: a quarter turn of a 64 x 48 patch is 48 x 64, and a batch needs one shape).
    patch_size : list of int
        Training patch size, one entry per spatial axis (2 for YX, 3 for ZYX); anisotropic
        sizes such as ``[16, 128, 128]`` are fine. Smaller images are padded.
    samples_per_image : int
        Patches drawn from each image per visit.
    sampling : {"auto", "uniform", "foreground", "content", "weighted"}
        Where patches are drawn: anywhere; balanced between target foreground and background;
        balanced between the image's own content (above Otsu's threshold) and the rest, for
        unpaired or image-only data; with probability proportional to the cost map (``CM``).
        ``auto``: weighted when cost maps are given, foreground for masks and labels, uniform
        otherwise.
    foreground_fraction : float
        Share of patches centred on foreground with ``foreground`` or ``content`` sampling.
    batch_size : int
        Patches per training batch, rounded down to a multiple of ``samples_per_image``
        (each loaded image gives that many patches); below ``samples_per_image`` a batch holds
        one image's ``samples_per_image`` patches, with a warning.
    num_workers : int
        Data loader worker processes (and threads that fill the memory cache).
    cache : {"memory", "disk", "none"}
        Where the read and normalized images are kept across epochs (see ``cache_dir``).
    cache_dir : str, optional
        Folder of the disk cache; reused across runs, new entries when preprocessing changes.
    partial_fraction : float
        Share of the training images loaded per round, for datasets larger than memory; a new
        random share each time the trainer reloads the data loader, which it does every
        ``trainer.reload_dataloaders_every_n_epochs`` epochs.
    fold, folds : int
        K-fold cross-validation: with ``fold`` set, the validation images are fold ``fold`` of
        ``folds`` (a seeded shuffle by ``split_seed``, :func:`fold_indices`) and ``val_fraction``
        is not used; ``im2im plan --search`` trains each fold in turn.
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
        reader: str = "bioio",
        dims: str = "YX",
        T: int | list[int] | None = None,
        C: int | list[int] | None = None,
        Z: int | list[int] | None = None,
        target: TargetKind = "mask",
        normalize: list[Transform] | None = None,
        augment: list[Transform] | None = None,
        patch_size: list[int] = [128, 128],  # noqa: B006  (jsonargparse needs a literal default)
        samples_per_image: int = 4,
        sampling: Sampling = "auto",
        foreground_fraction: float = 0.5,
        batch_size: int = 8,
        num_workers: int = 0,
        cache: CacheMode = "memory",
        cache_dir: str | None = None,
        partial_fraction: float = 1.0,
        fold: int | None = None,
        folds: int = 5,
    ) -> None:
        super().__init__()
        # Samples carry their file names and pixel sizes themselves; MONAI's per-tensor
        # metadata tracking only slows cropping, augmentation and collation (about 2x here).
        set_track_meta(False)
        self.data_path, self.layout, self.val_path, self.predict_path = data_path, layout, val_path, predict_path
        self.input_dir, self.target_dir = input_dir, target_dir
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.reader_name, self.dims, self.selection = reader, check_dims(dims), {"T": T, "C": C, "Z": Z}
        self.target = "none" if layout == "images" else target
        self.patch_size = list(patch_size)
        spatial = len(spatial_of(self.dims))
        if any(size < 1 for size in self.patch_size):
            raise DataError(f"data.patch_size {self.patch_size}: every entry must be a positive number of pixels")
        if batch_size < 1 or samples_per_image < 1:
            raise DataError(f"data.batch_size {batch_size} and data.samples_per_image {samples_per_image} must be at least 1")
        if batch_size < samples_per_image:
            warnings.warn(f"data.batch_size {batch_size} is below data.samples_per_image {samples_per_image}: a batch holds "
                          f"all the patches of the images it draws, so each batch will hold {samples_per_image} patches; "
                          f"set data.samples_per_image to {batch_size} for batches of {batch_size}", stacklevel=2)
        if cache == "disk" and cache_dir is None:
            raise DataError("data.cache is 'disk' but data.cache_dir is not set: give a folder for the cache")
        if not 0 < partial_fraction <= 1:
            raise DataError(f"data.partial_fraction {partial_fraction} must be in (0, 1]")
        self.spatial_dims = spatial
        self.normalize, self.augment = normalize, augment
        _check_normalize_keys(normalize)
        self.samples_per_image, self.sampling, self.foreground_fraction = samples_per_image, sampling, foreground_fraction
        self.batch_size, self.num_workers = batch_size, num_workers
        self.cache, self.cache_dir, self.partial_fraction = cache, cache_dir, partial_fraction
        if fold is not None and not 0 <= fold < folds:
            raise DataError(f"data.fold {fold}: expected 0 <= fold < data.folds ({folds})")
        self.fold, self.folds = fold, folds
        self.train_samples: list[dict[str, str]] = []
        self.val_samples: list[dict[str, str]] = []
        self.domain_b_samples: list[dict[str, str]] = []
        self.predict_samples: list[dict[str, str]] = []

    # ----------------------------------------------------------------- reading
    def make_reader(self) -> Reader:
        """The configured reader, from the plugin registry."""
        from im2im_core.plugins import get_registry

        reader_class = get_registry().get("readers", self.reader_name)
        return reader_class(dims=self.dims, **{k: v for k, v in self.selection.items() if v is not None})

    @property
    def unpaired(self) -> bool:
        """Whether the layout is ``unpaired``: two domains, no input/target pairs."""
        return self.layout == "unpaired"

    # ----------------------------------------------------------------- transforms
    def _read_and_normalize(self, keys: list[str]) -> list[Transform]:
        return [ReadImaged(keys, reader=self.make_reader(), check_pairs=not self.unpaired), *self._normalize_steps(keys)]

    def _normalize_steps(self, keys: list[str]) -> list[Transform]:
        steps: list[Transform] = []
        if TARGET in keys and self.target == "mask":
            steps.append(Binarized(TARGET))
        if self.normalize is not None:
            steps.extend(self.normalize)
        else:
            norm_keys = [k for k in keys if k == IMAGE or (k == TARGET and self.target == "intensity")]
            if norm_keys:
                steps.append(PercentileNormalized(norm_keys))
        return steps

    def image_normalize_steps(self) -> list[Transform]:
        """The normalization steps that act on input images (``IM``), in order: what prediction
        applies to an input, and what ``im2im export`` writes into a package.
        """
        return [step for step in self._normalize_steps([IMAGE]) if IMAGE in [str(k) for k in getattr(step, "keys", [IMAGE])]]

    def _default_augment(self, keys: list[str]) -> list[Transform]:
        flips: list[Transform] = [RandFlipd(keys, prob=0.5, spatial_axis=axis) for axis in range(self.spatial_dims)]
        if self.patch_size[-1] != self.patch_size[-2]:  # the flips already give the half turn
            return flips
        last_two = (self.spatial_dims - 2, self.spatial_dims - 1)
        return [*flips, RandRotate90d(keys, prob=0.5, spatial_axes=last_two)]

    def train_transform(self, keys: list[str]) -> Compose:
        """Read and normalize (the cached part), then pad, sample patches and augment."""
        has_costmap = COSTMAP in keys
        sampling = choose_sampling(self.sampling, self.target if TARGET in keys and not self.unpaired else "none", has_costmap)
        crop = patch_sampler(sampling, keys, self.patch_size, self.samples_per_image, self.foreground_fraction,
                             weight_key=COSTMAP if has_costmap else TARGET)
        augment = self.augment if self.augment is not None else self._default_augment(keys)
        precompute = sampling_precompute(sampling, keys)
        # padding first: the precomputed foreground indices must refer to the padded image
        return Compose([*self._read_and_normalize(keys), SelectItemsd(keys), SpatialPadd(keys, spatial_size=self.patch_size),
                        *precompute, crop, *sampling_cleanup(sampling), *augment])

    def eval_transform(self, keys: list[str]) -> Compose:
        """Read and normalize whole images (validation, test, predict)."""
        return Compose(self._read_and_normalize(keys))

    # ----------------------------------------------------------------- samples
    def _require_data_path(self) -> str:
        if self.data_path is None:
            raise DataError("data.data_path is not set: give the training data folder or CSV (--data.data_path PATH)")
        return self.data_path

    def _find_samples(self, path: str) -> list[dict[str, Any]]:
        if self.target == "none":
            found = paired_samples(path, "images" if self.layout == "images" else self.layout,
                                   self.input_dir, self.target_dir, need_target=False)
            if any(TARGET in sample for sample in found):
                warnings.warn(f"data.target is none: the targets found in {path} are not used (training on the "
                              f"inputs alone)", stacklevel=2)
            samples: list[dict[str, Any]] = [{IMAGE: s[IMAGE]} for s in found]
        else:
            samples = paired_samples(path, self.layout, self.input_dir, self.target_dir)
        return self._per_timepoint(samples) if "T" in self.dims else samples

    def _per_timepoint(self, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One sample per timepoint of each file (``data.dims`` with T): a time series trains frame by frame."""
        reader = self.make_reader()
        expanded = []
        for sample in samples:
            counts = {}
            for key in (k for k in (IMAGE, TARGET, COSTMAP) if k in sample):
                image = reader.read(sample[key])
                counts[sample[key]] = int(image.array.shape[image.dims.index("T")])
            if len(set(counts.values())) > 1:
                listing = "; ".join(f"{path} has {count}" for path, count in counts.items())
                raise DataError(f"the images of a sample differ in their number of timepoints: {listing}")
            expanded.extend({**sample, TIMEPOINT: t} for t in range(next(iter(counts.values()))))
        return expanded

    def _split(self) -> None:
        if self.unpaired:
            self.train_samples, self.domain_b_samples = unpaired_samples(self._require_data_path(), self.input_dir,
                                                                         self.target_dir)
            self.val_samples = []
            return
        samples = self._find_samples(self._require_data_path())
        if self.val_path is not None:
            self.train_samples, self.val_samples = samples, self._find_samples(self.val_path)
            return
        if self.fold is not None:
            validation = fold_indices(len(samples), self.folds, self.fold, self.split_seed)
            self.val_samples = [samples[i] for i in validation]
            self.train_samples = [sample for i, sample in enumerate(samples) if i not in set(validation)]
            return
        order = list(range(len(samples)))
        random.Random(self.split_seed).shuffle(order)
        n_val = round(len(samples) * self.val_fraction) if len(samples) > 1 else 0
        n_val = max(n_val, 1) if self.val_fraction > 0 and len(samples) > 1 else n_val
        self.val_samples = [samples[i] for i in sorted(order[:n_val])]
        self.train_samples = [samples[i] for i in sorted(order[n_val:])]

    def check_samples(self) -> None:
        """Open every training and validation file (metadata only) and compare pair shapes.

        Runs in ``setup``, so a missing, unreadable or mismatched file stops the run before
        training starts, with its name in the message. Without the memory cache (which reads
        every image before the first step anyway), every image is also read once here and
        checked for NaN, so that a bad pixel does not stop training mid-epoch.
        """
        reader = self.make_reader()
        keys_with_cm = {frozenset(s) & {COSTMAP} for s in self.train_samples + self.val_samples}
        if len(keys_with_cm) > 1:
            raise DataError("some samples have a cost map (CM) and others not: give one for every sample or none")
        checked: set[frozenset[tuple[str, str]]] = set()  # the timepoints of a time series share their files
        for sample in [*self.train_samples, *self.val_samples, *self.domain_b_samples]:
            files = {key: path for key, path in sample.items() if key in (IMAGE, TARGET, COSTMAP)}
            if frozenset(files.items()) in checked:
                continue
            checked.add(frozenset(files.items()))
            shapes = {}
            for key, path in files.items():
                image = reader.read(path)
                if self.cache != "memory" and not np.isfinite(image.numpy()).all():
                    raise DataError(f"{path}: image contains NaN or infinite values")
                if key == TARGET and self.target == "labels":
                    check_labels(path, image.numpy())
                spatial_end = len(image.dims) - 1 if image.dims.endswith("S") else len(image.dims)
                shapes[path] = tuple(image.array.shape[spatial_end - self.spatial_dims:spatial_end])
            if not self.unpaired and len(set(shapes.values())) > 1:
                listing = "; ".join(f"{path} has shape {shape}" for path, shape in shapes.items())
                raise DataError(f"input and target differ in spatial shape: {listing}")

    def setup(self, stage: str | None = None) -> None:
        """Find the samples of ``stage`` and check that every file is there and fits."""
        if stage in (None, "fit", "validate", "test"):
            if len(self.patch_size) != self.spatial_dims:  # prediction reads whole images: any dims
                raise DataError(f"patch_size {self.patch_size} has {len(self.patch_size)} entries "
                                f"but dims {self.dims!r} has {self.spatial_dims} spatial axes")
            self._split()
            self.check_samples()
            if stage in (None, "fit"):
                self.fit_normalization()
            trainer = self._trainer_or_none()
            if self.partial_fraction < 1 and trainer is not None and not trainer.reload_dataloaders_every_n_epochs:
                warnings.warn("data.partial_fraction < 1 but trainer.reload_dataloaders_every_n_epochs is 0: "
                              "the same share of the training set is used in every epoch", stacklevel=2)
        if stage == "predict":
            if self.predict_path is None:
                raise DataError("data.predict_path is not set: give the folder of images to predict (--data.predict_path PATH)")
            self.predict_samples = paired_samples(self.predict_path, "auto", self.input_dir, self.target_dir, need_target=False)

    # ----------------------------------------------------------------- training-set statistics
    def _fitted_steps(self) -> list[TrainingSetNormalized]:
        return [step for step in self.normalize or [] if isinstance(step, TrainingSetNormalized)]

    def fit_normalization(self) -> None:
        """Compute the statistics of each :class:`TrainingSetNormalized` step that has none, from
        the training images (each read once, after the normalize steps before it).
        """
        for position, step in enumerate(self.normalize or []):
            if isinstance(step, TrainingSetNormalized) and not step.fitted:
                step.fit(self._training_images(before=position))

    def _training_images(self, before: int) -> Iterator[dict[str, Any]]:
        """Every training sample, read and put through the ``data.normalize`` steps before position ``before``."""
        groups = [(self.train_samples, [IMAGE] if self.unpaired else [IMAGE, TARGET]), (self.domain_b_samples, [TARGET])]
        for samples, keys in groups:
            steps = self._read_and_normalize(keys)
            prefix = Compose(steps[: len(steps) - len(self.normalize or []) + before])
            for sample in samples:
                yield prefix(sample)

    def state_dict(self) -> dict[str, Any]:
        """The learned statistics of the :class:`TrainingSetNormalized` steps (saved in checkpoints)."""
        steps = self._fitted_steps()
        if not steps:
            return {}
        return {TRAINING_STATISTICS: [{key: stats.to_dict() for key, stats in step.statistics.items()} for step in steps]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the statistics of :meth:`state_dict` (Lightning calls it with a checkpoint's)."""
        saved = state_dict.get(TRAINING_STATISTICS, [])
        steps = self._fitted_steps()
        if len(saved) != len(steps):
            raise DataError(f"the checkpoint holds training-set statistics of {len(saved)} TrainingSetNormalized step(s) "
                            f"but data.normalize has {len(steps)}: use the normalize config the model was trained with")
        for step, statistics in zip(steps, saved):
            step.statistics = {key: MeanStd.from_dict(values) for key, values in statistics.items()}

    def _trainer_or_none(self) -> Any:
        return getattr(self, "trainer", None)

    # ----------------------------------------------------------------- loaders
    def _loader(self, dataset: Any, shuffle: bool) -> DataLoader:
        images_per_batch = max(1, self.batch_size // self.samples_per_image)
        return DataLoader(dataset, batch_size=images_per_batch, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0 and self.partial_fraction == 1)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training patches, ``batch_size // samples_per_image`` images per batch.

        With ``partial_fraction`` < 1, only a random share of the images, drawn anew for the epoch
        in which the loader is built. Unpaired data: each domain-A image with a random domain-B image.
        """
        trainer = self._trainer_or_none()
        round_index = trainer.current_epoch if trainer is not None else 0
        samples = partial_subset(self.train_samples, self.partial_fraction, round_index, self.split_seed)
        if self.unpaired:
            domain_a = build_dataset(samples, self.train_transform([IMAGE]), self.cache, self.cache_dir, self.num_workers)
            domain_b = build_dataset(self.domain_b_samples, self.train_transform([TARGET]), self.cache, self.cache_dir,
                                     self.num_workers)
            return self._loader(UnpairedDataset(domain_a, domain_b, self.split_seed + round_index), shuffle=True)
        keys = [k for k in (IMAGE, TARGET, COSTMAP) if k in samples[0]]
        return self._loader(build_dataset(samples, self.train_transform(keys), self.cache, self.cache_dir, self.num_workers),
                            shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        """Whole validation images, one per batch; ``[]`` when there are none."""
        if not self.val_samples:
            return []
        keys = [k for k in (IMAGE, TARGET) if k in self.val_samples[0]]
        dataset = build_dataset(self.val_samples, self.eval_transform(keys), "memory" if self.cache != "none" else "none",
                                num_workers=self.num_workers)
        return DataLoader(dataset, batch_size=1, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader | list:
        """Same as :meth:`val_dataloader`: testing uses the validation images."""
        return self.val_dataloader()

    def lazy_normalization(self) -> tuple[float, float] | MeanStd | None:
        """The input's normalization, if prediction can apply it window by window: the input
        percentiles mapped to 0..1, or the training set's statistics of a lone
        :class:`TrainingSetNormalized` step.

        Then prediction reads images lazily, normalizes window by window (with these percentiles
        of each timepoint, or the fixed statistics) and can undo it for outputs in the input's
        units; any other normalization needs the image in memory.
        """
        steps = self._normalize_steps([IMAGE])
        if len(steps) == 1 and isinstance(steps[0], TrainingSetNormalized) and IMAGE in steps[0].statistics:
            return steps[0].statistics[IMAGE]
        if len(steps) != 1 or type(steps[0]) is not PercentileNormalized:
            return None
        scaler = steps[0].scaler
        plain = (scaler.b_min, scaler.b_max) == (0.0, 1.0) and not scaler.clip and not scaler.relative and not scaler.channel_wise
        return (float(scaler.lower), float(scaler.upper)) if plain else None

    def predict_transform(self) -> Compose:
        """Read input images with a T axis kept (``dims`` with T): lazily when
        :meth:`lazy_normalization` applies, else whole and normalized timepoint by timepoint.
        """
        if self.lazy_normalization() is not None:
            return Compose([ReadImaged([IMAGE], reader=self.make_reader(), keep_time=True, lazy=True)])
        return Compose([ReadImaged([IMAGE], reader=self.make_reader(), keep_time=True),
                        PerTimepointd([IMAGE], self._normalize_steps([IMAGE]))])

    def predict_dataloader(self) -> DataLoader:
        """One image per batch, as lists (arrays may be lazy); targets are not read here (the
        writer evaluates them). ``IM_normalize``: percentiles for prediction to apply, or None.
        """
        normalize = self.lazy_normalization()
        samples = [{IMAGE: s[IMAGE], TARGET_PATH: s.get(TARGET, ""), IMAGE_NORMALIZE: normalize} for s in self.predict_samples]
        return DataLoader(build_dataset(samples, self.predict_transform(), "none"), batch_size=1, num_workers=self.num_workers,
                          collate_fn=collate_as_lists)


def fold_indices(count: int, folds: int, fold: int, seed: int = 0) -> list[int]:
    """The sorted indices of fold ``fold`` of ``folds``, of ``count`` samples shuffled with ``seed``."""
    if folds < 2 or folds > count:
        raise DataError(f"data.folds {folds}: expected 2 to {count} folds for {count} images")
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return sorted(order[fold::folds])


def check_labels(path: str, labels: np.ndarray) -> None:
    """Refuse label images that are not whole non-negative numbers (0 background, 1..N objects or classes)."""
    if not np.issubdtype(labels.dtype, np.integer) and not np.array_equal(labels, np.round(labels)):
        raise DataError(f"{path}: labels (data.target: labels) must be whole numbers; this {labels.dtype} image has "
                        f"fractions (a probability map or an intensity image? then data.target: mask or intensity)")
    if labels.size and labels.min() < 0:
        raise DataError(f"{path}: labels (data.target: labels) must be >= 0 (0 is background); found {labels.min()}")


def collate_as_lists(samples: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """A batch as a dict of lists: images of any size, lazy or not, are neither stacked nor
    copied to the device (prediction moves one window batch at a time).
    """
    return {key: [sample[key] for sample in samples] for key in samples[0]}


def _check_normalize_keys(steps: list[Transform] | None) -> None:
    """A normalization step on the target must allow it to be missing: prediction reads inputs alone,
    and MONAI's steps (``StandardNormalized`` is its ``NormalizeIntensityd``) default to requiring every key.
    """
    for step in steps or []:
        keys = [str(k) for k in getattr(step, "keys", ())]
        if any(k != IMAGE for k in keys) and getattr(step, "allow_missing_keys", True) is False:
            raise DataError(f"data.normalize: {type(step).__name__} with keys {keys} needs allow_missing_keys: true, "
                            f"as prediction has no {', '.join(k for k in keys if k != IMAGE)}; add it to the step's init_args")
