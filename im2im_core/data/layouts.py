"""Find the samples of a dataset folder: which input goes with which target.

Layouts
-------
subfolders
    ``data_path/<input_dir>/name.tif`` with ``data_path/<target_dir>/name.tif`` (paired by name).
suffix
    ``data_path/name_IM.tif`` with ``data_path/name_GT.tif`` (and optional ``name_CM.tif``).
csv
    a CSV file with columns ``input`` and ``target`` (and optional ``costmap``).
images
    a folder of images alone (prediction, self-supervised training).
unpaired
    two folders of images, domain A and domain B, of any sizes (CycleGAN-type training).
"""

from __future__ import annotations

import csv
from pathlib import Path

from im2im_core.errors import DataError
from im2im_core.keys import COSTMAP, IMAGE, TARGET

IMAGE_SUFFIXES = (".tif", ".tiff", ".ome.tif", ".ome.tiff", ".zarr", ".ome.zarr", ".png", ".czi", ".nd2", ".lif")
LAYOUTS = ("auto", "subfolders", "suffix", "csv", "images")


def _is_image(path: Path) -> bool:
    return path.name.lower().endswith(IMAGE_SUFFIXES) and not path.name.startswith(".")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def list_images(folder: Path) -> list[Path]:
    """Return the image files (and zarr folders) directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise DataError(f"folder not found: {folder}")
    images = sorted(p for p in folder.iterdir() if _is_image(p))
    if not images:
        raise DataError(f"no images in {folder}: expected files ending in one of {', '.join(IMAGE_SUFFIXES)}")
    return images


def detect_layout(data_path: Path, input_dir: str, target_dir: str) -> str:
    """Guess the layout of ``data_path`` (see the module docstring)."""
    if data_path.is_file() and data_path.suffix.lower() == ".csv":
        return "csv"
    if (data_path / input_dir).is_dir():
        return "subfolders"
    if data_path.is_dir() and any(_stem(p).endswith("_IM") for p in data_path.iterdir() if _is_image(p)):
        return "suffix"
    if data_path.is_dir():
        return "images"
    raise DataError(f"data path not found: {data_path}")


def _images_folder(data_path: Path, input_dir: str, target_dir: str, need_target: bool) -> Path:
    """``data_path`` as a folder of images; a folder of subfolders only (``images/``, ``masks/``) is
    named with the subfolders that were looked for and the options that choose others.
    """
    if data_path.is_dir() and not any(_is_image(p) for p in data_path.iterdir()):
        subfolders = sorted(p.name for p in data_path.iterdir() if p.is_dir() and not _is_image(p))
        if subfolders:
            pair = "inputs and targets" if need_target else "the images"
            raise DataError(f"{data_path} has the subfolders {', '.join(subfolders)} but no {input_dir}/ and {target_dir}/ "
                            f"subfolders for {pair}: name them with --data.input_dir and --data.target_dir "
                            f"(e.g. --data.input_dir {subfolders[0]})")
    return data_path


def paired_samples(data_path: str | Path, layout: str = "auto", input_dir: str = "IM",
                   target_dir: str = "GT", need_target: bool = True) -> list[dict[str, str]]:
    """Return one ``{"IM": path, "GT": path[, "CM": path]}`` dict per sample.

    With ``need_target`` a sample whose target is missing is an error that names it; without,
    samples lacking a target are returned with the input alone.
    """
    data_path = Path(data_path)
    if layout not in LAYOUTS:
        raise DataError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(data_path, input_dir, target_dir)
    if layout == "subfolders":
        samples = []
        for image in list_images(data_path / input_dir):
            sample = {IMAGE: str(image)}
            matches = [p for p in (data_path / target_dir).glob(_stem(image) + ".*") if _is_image(p) and _stem(p) == _stem(image)]
            if matches:
                sample[TARGET] = str(matches[0])
            samples.append(sample)
    elif layout == "suffix":
        by_stem = {_stem(p): p for p in list_images(data_path)}
        samples = []
        for stem, image in by_stem.items():
            if not stem.endswith("_IM"):
                continue
            sample = {IMAGE: str(image)}
            for key in (TARGET, COSTMAP):
                other = by_stem.get(stem[:-3] + "_" + key)
                if other is not None:
                    sample[key] = str(other)
            samples.append(sample)
        if not samples:
            raise DataError(f"no '<name>_IM.<ext>' images in {data_path}")
    elif layout == "csv":
        samples = _csv_samples(data_path)
    else:
        samples = [{IMAGE: str(p)} for p in list_images(_images_folder(data_path, input_dir, target_dir, need_target))]
    if need_target:
        for sample in samples:
            if TARGET not in sample:
                where = data_path / target_dir if layout == "subfolders" else data_path
                raise DataError(f"no target for input {sample['IM']}: expected a file named like it in {where}")
    return samples


def _csv_samples(csv_path: Path) -> list[dict[str, str]]:
    """Read a CSV with columns ``input``, ``target`` and optional ``costmap``."""
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "input" not in rows[0]:
        raise DataError(f"{csv_path}: expected a CSV with a header row naming the columns 'input' and 'target'")
    samples = []
    for line, row in enumerate(rows, start=2):
        sample = {}
        for column, key in (("input", IMAGE), ("target", TARGET), ("costmap", COSTMAP)):
            value = (row.get(column) or "").strip()
            if not value:
                continue
            path = Path(value) if Path(value).is_absolute() else csv_path.parent / value
            if not path.exists():
                raise DataError(f"{csv_path}, line {line}: {column} file not found: {path}")
            sample[key] = str(path)
        samples.append(sample)
    return samples


def unpaired_samples(data_path: str | Path, domain_a: str = "IM",
                     domain_b: str = "GT") -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Return the images of two unpaired domains, ``data_path/<domain_a>`` and ``<domain_b>``.

    Each is a list of ``{"IM": path}`` (domain A) or ``{"GT": path}`` (domain B); the two
    lists may differ in length and their images in size.
    """
    data_path = Path(data_path)
    folders = {"A": data_path / domain_a, "B": data_path / domain_b}
    for name, folder in folders.items():
        if not folder.is_dir():
            raise DataError(f"unpaired domain {name} folder not found: {folder}")
    images_a = [{IMAGE: str(p)} for p in list_images(folders["A"])]
    images_b = [{TARGET: str(p)} for p in list_images(folders["B"])]
    return images_a, images_b
