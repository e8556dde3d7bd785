"""Make the train / held-out folders of the Pix2Pix results in docs/results.md.

    python plugins/im2im-pix2pix/scripts/prepare_results_data.py --out RESULTS_DIR [--shared ../shared/data]

Writes, in the IM/GT layout of ``im2im fit`` and ``im2im predict``:

``RESULTS_DIR/examplehuman/{train,holdout}/{IM,GT}``
    ExampleHuman (one 512 x 512 field, CC0): cell stain (IM) to DNA stain (GT). The field is cut
    into a 4 x 4 grid of 128 x 128 tiles; the right-most column (4 tiles, x >= 384) is held out,
    the other 12 tiles train. No pixel of a held-out tile is seen in training.
``RESULTS_DIR/bbbc039/{train,holdout}/{IM,GT}``
    BBBC039 (50 fields of 520 x 696, CC0): the nucleus mask (IM, labels; the presets binarize
    it) to the Hoechst image (GT). Every fifth field in name order (10) is held out, as its
    central 256 x 256 crop; the other 40 fields train whole.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile

DEFAULT_SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def write_pair(folder: Path, name: str, image: np.ndarray, target: np.ndarray) -> None:
    for sub, array in (("IM", image), ("GT", target)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(folder / sub / f"{name}.tif", np.ascontiguousarray(array))


def examplehuman(shared: Path, out: Path, tile: int = 128) -> None:
    cell = tifffile.imread(shared / "examplehuman_3ch" / "cell.tif")
    dna = tifffile.imread(shared / "examplehuman_3ch" / "dna.tif")
    for y in range(0, cell.shape[0], tile):
        for x in range(0, cell.shape[1], tile):
            split = "holdout" if x >= cell.shape[1] - tile else "train"
            region = (slice(y, y + tile), slice(x, x + tile))
            write_pair(out / "examplehuman" / split, f"tile_y{y:03d}_x{x:03d}", cell[region], dna[region])


def bbbc039(shared: Path, out: Path, crop: int = 256) -> None:
    images = sorted((shared / "bbbc039" / "images").glob("*.tif"))
    for i, path in enumerate(images):
        image = tifffile.imread(path)
        mask = tifffile.imread(shared / "bbbc039" / "masks" / path.name)
        if i % 5 == 4:
            y0, x0 = (image.shape[0] - crop) // 2, (image.shape[1] - crop) // 2
            region = (slice(y0, y0 + crop), slice(x0, x0 + crop))
            write_pair(out / "bbbc039" / "holdout", path.stem, mask[region], image[region])
        else:
            write_pair(out / "bbbc039" / "train", path.stem, mask, image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the prepared data")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data folder")
    args = parser.parse_args()
    examplehuman(args.shared, args.out)
    bbbc039(args.shared, args.out)
    for folder in sorted(args.out.glob("*/*")):
        print(folder, len(list((folder / "IM").glob("*.tif"))), "pairs")


if __name__ == "__main__":
    main()
