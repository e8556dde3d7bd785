"""File > Open Sample > im2im: the BBBC039 nuclei crops bundled with the core, as stacks with their masks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import im2im_core

#: The crops bundled with the core (im2im_core/demo_data; ``im2im_core.testing`` names it too, but imports pytest).
DEMO_DATA = Path(im2im_core.__file__).parent / "demo_data"


def _stack(split: str) -> list[tuple[Any, dict[str, Any], str]]:
    import tifffile

    names = sorted((DEMO_DATA / split / "IM").glob("*.tif"))
    images = np.stack([tifffile.imread(path) for path in names])
    labels = np.stack([tifffile.imread(DEMO_DATA / split / "GT" / path.name) for path in names])
    title = "training" if split == "train" else "held-out"
    return [(images, {"name": f"BBBC039 {title} nuclei"}, "image"),
            (labels, {"name": f"BBBC039 {title} labels"}, "labels")]


def demo_training() -> list[tuple[Any, dict[str, Any], str]]:
    """The 10 training crops (256 x 256, a stack along the first axis) and their instance labels."""
    return _stack("train")


def demo_holdout() -> list[tuple[Any, dict[str, Any], str]]:
    """The 4 held-out crops of other fields, never used in training, and their instance labels."""
    return _stack("holdout")
