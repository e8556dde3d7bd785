"""Reading, pairing, normalizing and batching microscopy images."""

from __future__ import annotations

from typing import Any

__all__ = ["Im2ImDataModule"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that the readers work without Lightning and MONAI installed.
    if name == "Im2ImDataModule":
        from im2im_core.data.datamodule import Im2ImDataModule

        return Im2ImDataModule
    raise AttributeError(name)
