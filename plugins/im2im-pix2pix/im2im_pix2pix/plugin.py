"""The pluggy hooks through which im2im loads this plugin (entry point ``pix2pix``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from im2im_core.hookspecs import hookimpl

PRESETS = Path(__file__).parent / "presets"


@hookimpl
def im2im_register_frameworks() -> dict[str, Any]:
    """The frameworks this plugin adds, by import path: Pix2Pix."""
    return {"Pix2Pix": "im2im_pix2pix.pix2pix:Pix2Pix"}


@hookimpl
def im2im_register_presets() -> dict[str, Any]:
    """The presets this plugin ships (its ``presets`` folder)."""
    from im2im_core.presets import presets_in

    return presets_in(PRESETS)
