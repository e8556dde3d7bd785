"""A dataset's fingerprint: what ``im2im plan`` reads from the data before it writes a config.

Shapes, axes and physical pixel sizes come from the files' headers; intensities from a regular
subsample of each image (at most :data:`SAMPLE_VOXELS` of it read); target statistics (class
frequencies, object sizes and counts) from each target read once. Nothing here trains or
predicts; the result is plain JSON (``fingerprint.json``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from im2im_core.axes import spatial_of
from im2im_core.data.layouts import paired_samples, unpaired_samples
from im2im_core.errors import DataError
from im2im_core.keys import IMAGE, TARGET

#: Voxels of an image read for its intensity statistics (a regular grid over the whole image).
SAMPLE_VOXELS = 2**21
#: Target voxels beyond which a target is read on a grid (every second voxel per axis, ...).
TARGET_VOXELS = 2**27
#: Distinct values above which integer targets are instance labels, not classes.
MAX_CLASSES = 16
#: Share of equal neighbours (along X) above which an integer target is masks or labels, not intensities.
PIECEWISE_CONSTANT = 0.8

TASKS = ("segmentation", "instance", "regression", "denoise", "unpaired")


@dataclass
class Fingerprint:
    """What the data looks like; every field is JSON (see :meth:`to_json`)."""

    data_path: str
    layout: str
    input_dir: str
    target_dir: str
    reader: str
    dims: str
    images: int
    channels: int
    shapes: list[list[int]]
    median_shape: list[int]
    spacing: list[float]
    spacing_known: list[bool]
    intensity: dict[str, float]
    target: str
    classes: dict[str, float] = field(default_factory=dict)
    foreground_fraction: float | None = None
    objects_per_image: float | None = None
    object_diameter: dict[str, float] = field(default_factory=dict)
    object_width: dict[str, float] = field(default_factory=dict)
    foreground_intensity: dict[str, float] = field(default_factory=dict)
    empty_patch_share: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The fingerprint as a JSON-ready dict."""
        return asdict(self)


def _grid_step(array: Any, budget: int) -> int:
    """The step per axis of the regular grid of at most ``budget`` voxels of ``array``."""
    return max(1, math.ceil((array.size / budget) ** (1 / max(1, array.ndim))))


def _subsample(array: Any, budget: int) -> np.ndarray:
    """A regular grid of at most ``budget`` voxels of ``array`` (read lazily where it is lazy)."""
    step = _grid_step(array, budget)
    grid = array[tuple(slice(None, None, step) for _ in range(array.ndim))]
    return np.asarray(grid.compute() if hasattr(grid, "compute") else grid)


def _dims_of(path: str, reader_dims: str | None) -> str:
    """The axes to read: ``reader_dims`` if given, else Z when the file has several planes and C when several channels."""
    if reader_dims is not None:
        return reader_dims
    from bioio import BioImage

    try:
        shape = BioImage(path).dims
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as an image ({str(exc).splitlines()[0]})") from None
    return ("C" if shape.C > 1 else "") + ("ZYX" if shape.Z > 1 else "YX")


def _target_kind(values: np.ndarray) -> str:
    """``mask`` (two values), ``classes`` (few values), ``labels`` (instances) or ``intensity``."""
    if not np.issubdtype(values.dtype, np.integer) and not np.array_equal(values, np.round(values)):
        return "intensity"
    # integers: masks and labels are piecewise constant (neighbours mostly equal), intensity images are not
    if values.shape[-1] > 1 and float(np.mean(values[..., 1:] == values[..., :-1])) < PIECEWISE_CONSTANT:
        return "intensity"
    distinct = np.unique(values)
    if len(distinct) <= 2:
        return "mask"
    if len(distinct) > MAX_CLASSES:
        return "labels"
    from scipy import ndimage  # few values: instances when each value is about one connected object

    pieces = [ndimage.label(values == v)[1] for v in distinct if v != 0]
    return "labels" if pieces and np.mean(pieces) < 1.5 else "classes"


def fingerprint(data_path: str | Path, dims: str | None = None, layout: str = "auto", input_dir: str = "IM",
                target_dir: str = "GT", reader: str = "bioio") -> Fingerprint:
    """Read the fingerprint of the dataset at ``data_path`` (the layouts of ``data.data_path``).

    Raises
    ------
    DataError
        If there are no images, if images differ in their number of spatial axes or channels,
        or if a file cannot be read; each message names the files.
    """
    from im2im_core.plugins import get_registry

    path = Path(data_path)
    if not path.exists():
        raise DataError(f"data path not found: {path}")
    if layout == "unpaired":
        domain_a, domain_b = unpaired_samples(path, input_dir, target_dir)
        samples = [{IMAGE: s[IMAGE]} for s in domain_a]
        found_layout = "unpaired"
    else:
        samples = paired_samples(path, layout, input_dir, target_dir, need_target=False)
        found_layout = layout
    if not samples:
        raise DataError(f"no images found in {path}")
    dims = _dims_of(samples[0][IMAGE], dims)
    read = get_registry().get("readers", reader)(dims=dims).read
    letters = spatial_of(dims)
    shapes, spacings, channels, samples_of_pixels = [], [], set(), []
    for sample in samples:
        image = read(sample[IMAGE])
        spatial = [int(image.array.shape[image.dims.index(a)]) for a in letters]
        shapes.append(spatial)
        channels.add(int(image.array.shape[image.dims.index("C")]) if "C" in image.dims else 1)
        spacings.append([image.physical_pixel_sizes.get(a) for a in letters])
        samples_of_pixels.append(_subsample(image.array, SAMPLE_VOXELS // max(1, len(samples)) or 1).ravel())
    _check_consistent(samples, shapes, channels, dims)
    known = [all(s[i] is not None for s in spacings) for i in range(len(letters))]
    spacing = [float(np.median([s[i] for s in spacings])) if known[i] else 1.0 for i in range(len(letters))]
    pixels = np.concatenate(samples_of_pixels).astype(np.float64)
    result = Fingerprint(
        data_path=str(path), layout=found_layout, input_dir=input_dir, target_dir=target_dir, reader=reader, dims=dims,
        images=len(samples), channels=channels.pop(),
        shapes=shapes, median_shape=[int(np.median([s[i] for s in shapes])) for i in range(len(letters))],
        spacing=spacing, spacing_known=known, intensity=_percentiles(pixels), target="none")
    with_targets = [s for s in samples if TARGET in s]
    if found_layout == "unpaired":
        result.target = "unpaired"
    elif with_targets:
        if len(with_targets) != len(samples):
            missing = next(s[IMAGE] for s in samples if TARGET not in s)
            raise DataError(f"{missing} has no target but {len(with_targets)} other images have one: give every "
                            f"image its target, or none (self-supervised)")
        _target_statistics(result, with_targets, read)
    return result


def _check_consistent(samples: list[dict[str, str]], shapes: list[list[int]], channels: set[int], dims: str) -> None:
    if len({len(s) for s in shapes}) > 1 or len(channels) > 1:
        raise DataError(f"the images differ in dimensionality or channels: {samples[0][IMAGE]} and "
                        f"{samples[-1][IMAGE]} (read as {dims}); plan one kind of image at a time")
    thin = [s[IMAGE] for s, shape in zip(samples, shapes) if len(shape) == 3 and shape[0] == 1]
    if thin and len(thin) != len(samples):
        raise DataError(f"the images differ in dimensionality: {thin[0]} has one plane, {samples[0][IMAGE]} several; "
                        f"plan 2D and 3D images separately")


def _percentiles(pixels: np.ndarray) -> dict[str, float]:
    values = np.percentile(pixels, (0.5, 1, 50, 99, 99.5, 99.9)) if pixels.size else np.zeros(6)
    return {f"p{q}": float(v) for q, v in zip((0.5, 1, 50, 99, 99.5, 99.9), values)} | {
        "mean": float(pixels.mean()) if pixels.size else 0.0, "std": float(pixels.std()) if pixels.size else 0.0}


def _target_statistics(result: Fingerprint, samples: list[dict[str, str]], read: Any) -> None:
    """Target kind, class frequencies, foreground share, object counts and sizes, foreground intensities."""
    from scipy import ndimage

    counts: dict[str, int] = {}
    foreground, total, objects, diameters, widths, inside = 0, 0, [], [], [], []
    kinds = set()
    relative_spacing = [s / min(result.spacing) for s in result.spacing]
    for sample in samples:
        target = read(sample[TARGET])
        step = _grid_step(target.array, TARGET_VOXELS)
        labels = np.asarray(target.numpy() if step == 1 else _subsample(target.array, TARGET_VOXELS))
        labels = labels.reshape(labels.shape[-len(result.median_shape):]) if labels.shape[0] == 1 else labels
        kind = _target_kind(labels)
        kinds.add(kind)
        if kind == "intensity":
            continue
        values, number = np.unique(labels, return_counts=True)
        for value, n in zip(values, number):
            counts[str(int(value))] = counts.get(str(int(value)), 0) + int(n)
        mask = labels > 0
        foreground, total = foreground + int(mask.sum()), total + mask.size
        image = np.asarray(read(sample[IMAGE]).numpy(), dtype=np.float64)
        image = image.reshape(mask.shape) if image.size == mask.size else image
        if image.shape == mask.shape and mask.any():
            inside.append(_subsample(image[mask], SAMPLE_VOXELS // len(samples) or 1))
        if kind == "labels":
            boxes = [b for b in ndimage.find_objects(labels.astype(np.int64)) if b is not None]
            objects.append(len(boxes))
            diameters += [max(s.stop - s.start for s in box[-2:]) for box in boxes]  # in-plane (XY) extent
        components = labels.astype(np.int64) if kind == "labels" else ndimage.label(mask)[0]
        widths += [step * w for w in inscribed_diameters(components, relative_spacing[-components.ndim:])]
    result.target = "intensity" if kinds == {"intensity"} else ("labels" if "labels" in kinds else
                                                               "classes" if "classes" in kinds else "mask")
    if total:
        result.classes = {value: n / total for value, n in sorted(counts.items(), key=lambda kv: int(kv[0]))}
        result.foreground_fraction = foreground / total
    if objects:
        result.objects_per_image = float(np.mean(objects))
        result.object_diameter = {q: float(np.percentile(diameters, p)) for q, p in
                                  (("p5", 5), ("median", 50), ("p95", 95), ("max", 100))} if diameters else {}
    if widths:
        result.object_width = {q: float(np.percentile(widths, p)) for q, p in (("p5", 5), ("median", 50), ("p95", 95))}
    if inside:
        result.foreground_intensity = _percentiles(np.concatenate(inside))


def inscribed_diameters(labels: np.ndarray, spacing: list[float]) -> list[float]:
    """Per object of ``labels`` (0 is background), the diameter of the largest ball inside it, in units of the finest
    pixel: twice the largest distance from its pixels to the nearest pixel outside it, less one (a line 5 pixels thick
    has its centre 3 pixels from outside). Each object is measured in its own box, padded, so touching objects are
    measured apart. A worm 200 px long and 6 px thick is 6 wide; a round nucleus, its size. Objects cut by the
    image's border are left out (they look thinner than they are) unless every object is.
    """
    from scipy import ndimage

    boxes = [(index, box) for index, box in enumerate(ndimage.find_objects(labels), start=1) if box is not None]
    inner = [(i, box) for i, box in boxes if all(0 < s.start and s.stop < n for s, n in zip(box, labels.shape))]
    widths = []
    for index, box in inner or boxes:
        inside = np.pad(labels[box] == index, 1)
        widths.append(2 * float(ndimage.distance_transform_edt(inside, sampling=spacing).max()) - 1)
    return widths


def empty_patch_share(data: Fingerprint, patch: list[int], draws: int = 256, seed: int = 0) -> float | None:
    """Share of uniformly drawn patches of ``patch`` with no foreground (targets > 0); None without targets."""
    from im2im_core.plugins import get_registry

    if data.target in ("none", "unpaired", "intensity"):
        return None
    samples = [s for s in paired_samples(data.data_path, data.layout, data.input_dir, data.target_dir, need_target=False)
               if TARGET in s]
    read = get_registry().get("readers", data.reader)(dims=data.dims.replace("C", "")).read
    rng = np.random.default_rng(seed)
    empty, tried = 0, 0
    for sample in samples:
        labels = np.asarray(read(sample[TARGET]).numpy())
        labels = labels.reshape(labels.shape[-len(patch):])
        for _ in range(max(1, draws // len(samples))):
            start = [int(rng.integers(0, max(1, n - p + 1))) for n, p in zip(labels.shape, patch)]
            window = labels[tuple(slice(s, s + p) for s, p in zip(start, patch))]
            empty += int(not (window > 0).any())
            tried += 1
    return empty / tried if tried else None
