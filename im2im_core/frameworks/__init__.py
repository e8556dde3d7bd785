"""Built-in training frameworks."""

from im2im_core.frameworks.fcn import FCN

__all__ = ["FCN"]
