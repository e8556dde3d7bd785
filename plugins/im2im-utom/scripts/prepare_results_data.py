"""Build the unpaired training sets of the results in docs/results.md (im2im-utom section).

    python plugins/im2im-utom/scripts/prepare_results_data.py --shared ../shared/data --out OUT

OUT/bbbc039_unpaired
    50 BBBC039 fields shuffled with seed 0: 10 test fields (test/IM images, test/GT masks for
    scoring only), then train/IM the images of 20 fields and train/GT the masks of the 20 OTHER
    fields. No field contributes both its image and its mask to training, so no pair is seen.
OUT/widefield_confocal_unpaired
    The NEUBIAS nucleus (45 x 130 x 133, one object): train/IM the widefield stack's left half
    (X 0..65), train/GT the confocal stack's right half (X 67..132), so no voxel is seen in both
    modalities. test/IM the whole widefield stack, test/GT the whole confocal stack;
    test_left/IM and test_left/GT the left half only, whose confocal image training never saw.
OUT/baselines.json
    Context figures computed here: Dice of Otsu thresholding of the BBBC039 test images, and
    Pearson's r of the widefield stack itself against the confocal one.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import tifffile
from skimage.filters import threshold_otsu

SEED = 0


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array)


def bbbc039(shared: Path, out: Path) -> dict[str, float]:
    names = sorted(p.name for p in (shared / "bbbc039" / "images").glob("*.tif"))
    if len(names) != 50:
        raise SystemExit(f"expected the 50 BBBC039 images of {shared / 'bbbc039'}, found {len(names)}")
    random.Random(SEED).shuffle(names)
    test, images, masks = names[:10], names[10:30], names[30:50]
    folder = out / "bbbc039_unpaired"
    for name in images:
        _write(folder / "train" / "IM" / name, tifffile.imread(shared / "bbbc039" / "images" / name))
    for name in masks:
        _write(folder / "train" / "GT" / name, tifffile.imread(shared / "bbbc039" / "masks" / name))
    dices = []
    for name in test:
        image = tifffile.imread(shared / "bbbc039" / "images" / name)
        mask = tifffile.imread(shared / "bbbc039" / "masks" / name)
        _write(folder / "test" / "IM" / name, image)
        _write(folder / "test" / "GT" / name, mask)
        otsu = image > threshold_otsu(image)
        dices.append(2 * np.logical_and(otsu, mask > 0).sum() / (otsu.sum() + (mask > 0).sum()))
    (folder / "split.json").write_text(json.dumps({"test": test, "train_images": images, "train_masks": masks}, indent=1))
    return {"bbbc039_test_dice_otsu_mean": float(np.mean(dices)), "bbbc039_test_dice_otsu_std": float(np.std(dices, ddof=1))}


def widefield_confocal(shared: Path, out: Path) -> dict[str, float]:
    widefield = tifffile.imread(shared / "neubias_widefield_confocal" / "widefield.tif")
    confocal = tifffile.imread(shared / "neubias_widefield_confocal" / "confocal.tif")
    if widefield.shape != confocal.shape or widefield.ndim != 3:
        raise SystemExit(f"expected two registered ZYX stacks, got {widefield.shape} and {confocal.shape}")
    half = widefield.shape[2] // 2  # 66 of 133
    folder = out / "widefield_confocal_unpaired"
    _write(folder / "train" / "IM" / "nucleus_left.tif", widefield[:, :, :half])
    _write(folder / "train" / "GT" / "nucleus_right.tif", confocal[:, :, half + 1:])
    _write(folder / "test" / "IM" / "nucleus.tif", widefield)
    _write(folder / "test" / "GT" / "nucleus.tif", confocal)
    _write(folder / "test_left" / "IM" / "nucleus.tif", widefield[:, :, :half])
    _write(folder / "test_left" / "GT" / "nucleus.tif", confocal[:, :, :half])
    r = np.corrcoef(widefield.ravel().astype(np.float64), confocal.ravel().astype(np.float64))[0, 1]
    r_left = np.corrcoef(widefield[:, :, :half].ravel().astype(np.float64),
                         confocal[:, :, :half].ravel().astype(np.float64))[0, 1]
    return {"widefield_vs_confocal_pearson_whole": float(r), "widefield_vs_confocal_pearson_left": float(r_left)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    args = parser.parse_args()
    baselines = {**bbbc039(args.shared, args.out), **widefield_confocal(args.shared, args.out)}
    (args.out / "baselines.json").write_text(json.dumps(baselines, indent=1))
    print(json.dumps(baselines, indent=1))


if __name__ == "__main__":
    main()
