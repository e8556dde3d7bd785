"""Reading, pairing, normalizing and batching microscopy images."""

from im2im_core.data.datamodule import Im2ImDataModule

__all__ = ["Im2ImDataModule"]
