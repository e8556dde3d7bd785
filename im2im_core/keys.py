"""The keys of a sample dict, defined once: what readers write, transforms and frameworks read.

A sample (and a batch of them) is a dict: ``IM`` the input image, ``GT`` the target (or the
second domain of unpaired data), ``CM`` a cost map; next to each image, ``<key>_path`` its
file, ``<key>_dims`` its axes (``"CYX"``, ``"TCZYX"``...) and ``<key>_pixel_sizes`` its
physical pixel sizes. A predict sample also has ``IM_normalize``: the percentiles prediction
maps to 0 and 1, window by window, or None when the image was normalized on reading. A
training sample of a time series (``data.dims`` with T) has ``timepoint``: the one timepoint
of its files that it stands for.
"""

from __future__ import annotations

IMAGE = "IM"
TARGET = "GT"
COSTMAP = "CM"
#: The image keys, in the order a sample lists them.
IMAGES = (IMAGE, TARGET, COSTMAP)


def path_key(key: str) -> str:
    """The key of the file an image was read from: ``IM_path``."""
    return f"{key}_path"


def dims_key(key: str) -> str:
    """The key of an image's axis letters: ``IM_dims``."""
    return f"{key}_dims"


def pixel_sizes_key(key: str) -> str:
    """The key of an image's physical pixel sizes (``{"Z": .., "Y": .., "X": ..}``): ``IM_pixel_sizes``."""
    return f"{key}_pixel_sizes"


IMAGE_PATH = path_key(IMAGE)
TARGET_PATH = path_key(TARGET)
IMAGE_DIMS = dims_key(IMAGE)
IMAGE_PIXEL_SIZES = pixel_sizes_key(IMAGE)
IMAGE_NORMALIZE = f"{IMAGE}_normalize"
#: The timepoint a training sample of a time series stands for (every image of the sample).
TIMEPOINT = "timepoint"
