"""The built-in plugin: registers the core's own parts through the same hooks plugins use."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from im2im_core.hookspecs import hookimpl


@hookimpl
def im2im_register_frameworks() -> dict[str, type]:
    from im2im_core.frameworks import FCN

    return {"FCN": FCN}


@hookimpl
def im2im_register_backbones() -> dict[str, Any]:
    from im2im_core.networks import BUILTIN_BACKBONES

    return dict(BUILTIN_BACKBONES)


@hookimpl
def im2im_register_transforms() -> dict[str, Any]:
    from monai.transforms import NormalizeIntensityd

    from im2im_core.data.normalization import CenterNormalized, PercentileNormalized
    from im2im_core.data.transforms import Binarized, ReadImaged

    return {
        "ReadImaged": ReadImaged,
        "Binarized": Binarized,
        "PercentileNormalized": PercentileNormalized,
        "CenterNormalized": CenterNormalized,
        # z-score normalization is MONAI's; the short name only makes it easy to find
        "StandardNormalized": NormalizeIntensityd,
    }


@hookimpl
def im2im_register_readers() -> dict[str, Any]:
    from im2im_core.data.readers import AicsImageIOReader, BioioReader

    readers: dict[str, Any] = {"bioio": BioioReader}
    if importlib.util.find_spec("aicsimageio") is not None:
        readers["aicsimageio"] = AicsImageIOReader
    return readers


@hookimpl
def im2im_register_presets() -> dict[str, Any]:
    from im2im_core.presets import presets_in

    return presets_in(Path(__file__).parent / "presets")
