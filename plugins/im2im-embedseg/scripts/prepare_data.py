"""Train / held-out splits of the instance segmentation data used in docs/results.md (EmbedSeg).

``python plugins/im2im-embedseg/scripts/prepare_data.py OUT`` writes, from ``../shared/data``:

- ``OUT/bbbc039/{train,test}/{IM,GT}``: the 50 BBBC039 images (520 x 696, manual instance
  labels), shuffled by name with ``random.Random(0)``; the first 10 are held out (test), the
  other 40 train (the data module holds 10 % of those out again for validation).
- ``OUT/dsb2018/{train,test}/{IM,GT}``: the DSB2018 512 x 512 image (125 nuclei) cut into its
  left half (train) and right half (test, never seen in training); the 256 x 256 image with
  its mask (another field) is added to train. Nuclei cut by the middle line are cut in
  both halves, as any crop cuts them.

Files are copied as they are (uint16 / uint8 images, uint16 labels); training normalizes
the images (percentiles 0.5, 99.5).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import tifffile

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"


def _write(folder: Path, name: str, image: np.ndarray, labels: np.ndarray) -> None:
    for sub, array in (("IM", image), ("GT", labels)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(folder / sub / name, array, compression="zlib")


def bbbc039(out: Path, held_out: int = 10, seed: int = 0) -> None:
    names = sorted(p.name for p in (SHARED / "bbbc039" / "images").glob("*.tif"))
    random.Random(seed).shuffle(names)
    for i, name in enumerate(names):
        image = tifffile.imread(SHARED / "bbbc039" / "images" / name)
        labels = tifffile.imread(SHARED / "bbbc039" / "masks" / name)
        _write(out / "bbbc039" / ("test" if i < held_out else "train"), name, image, labels)


def dsb2018(out: Path) -> None:
    folder = SHARED / "dsb2018_stardist"
    image, labels = tifffile.imread(folder / "img2d_512_image.tif"), tifffile.imread(folder / "img2d_512_mask.tif")
    half = image.shape[1] // 2
    _write(out / "dsb2018" / "train", "img2d_512_left.tif", image[:, :half], labels[:, :half])
    _write(out / "dsb2018" / "test", "img2d_512_right.tif", image[:, half:], labels[:, half:])
    _write(out / "dsb2018" / "train", "img2d_256.tif", tifffile.imread(folder / "img2d_256_image.tif"),
           tifffile.imread(folder / "img2d_256_mask.tif"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder")
    args = parser.parse_args()
    bbbc039(args.out)
    dsb2018(args.out)
    for path in sorted(args.out.glob("*/*")):
        print(f"{path}: {len(list((path / 'IM').glob('*.tif')))} images")


if __name__ == "__main__":
    main()
