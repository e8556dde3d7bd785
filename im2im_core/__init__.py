"""im2im core: protocols, plugin registry, data, built-in FCN framework, networks, inference."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "predict"]


def __getattr__(name: str) -> Any:
    # ``im2im_core.predict`` without importing torch and MONAI for every ``import im2im_core``.
    if name == "predict":
        from im2im_core.inference import predict

        return predict
    raise AttributeError(name)
