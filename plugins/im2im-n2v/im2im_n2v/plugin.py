"""The pluggy hooks through which im2im loads this plugin (entry point ``n2v``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from im2im_core.hookspecs import hookimpl

PRESETS = Path(__file__).parent / "presets"


@hookimpl
def im2im_register_frameworks() -> dict[str, Any]:
    """The frameworks this plugin adds, by import path: N2V (with N2V2 and structN2V as options)."""
    return {"N2V": "im2im_n2v.n2v:N2V"}


@hookimpl
def im2im_register_backbones() -> dict[str, Any]:
    """The networks this plugin adds, by import path: the N2V / N2V2 U-Net."""
    return {"n2v_unet": "im2im_n2v.unet:N2VUNet"}


@hookimpl
def im2im_register_presets() -> dict[str, Any]:
    """The presets this plugin ships (its ``presets`` folder)."""
    from im2im_core.presets import presets_in

    return presets_in(PRESETS)
