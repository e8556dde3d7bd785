"""The pluggy hooks through which im2im loads this plugin (entry point ``stain``)."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

from im2im_core.hookspecs import hookimpl

PRESETS = Path(__file__).parent / "presets"


@hookimpl
def im2im_register_transforms() -> dict[str, Any]:
    """The transforms this plugin adds, by import path: Macenko, stain separation, Reinhard."""
    # the names of im2im_stain.transforms.TRANSFORMS, by import path: listing them imports no MONAI
    names = ("MacenkoNormalized", "StainSeparated", "ReinhardNormalized")
    return {name: f"im2im_stain.transforms:{name}" for name in names}


@hookimpl
def im2im_register_presets() -> dict[str, Any]:
    """The presets this plugin ships, with the ``staintransfer_2d`` variant that fits the installed plugins."""
    from im2im_core.presets import presets_in

    presets = presets_in(PRESETS)
    # staintransfer_2d: the Pix2Pix variant when im2im-pix2pix is installed, the FCN one otherwise.
    variant = "pix2pix" if importlib.util.find_spec("im2im_pix2pix") is not None else "fcn"
    chosen = presets_in(PRESETS / "staintransfer")[variant]
    presets["staintransfer_2d"] = dataclasses.replace(chosen, name="staintransfer_2d")
    return presets
