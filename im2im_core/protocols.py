"""The four protocols every im2im extension implements.

im2im prefers protocols over base classes: any object with these attributes works, whether it
comes from the core, a plugin, MONAI or a user's own module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # readers must import without torch (the aicsimageio environment has none)
    import torch


@runtime_checkable
class Framework(Protocol):
    """A ``lightning.pytorch.LightningModule`` that trains one kind of model.

    Besides Lightning's hooks it tells the core's sliding-window inference how to turn an
    input patch into an output patch, so prediction needs no framework-specific code.

    Attributes
    ----------
    spatial_dims : int
        2 or 3.
    """

    spatial_dims: int

    def predict_patch(self, patch: torch.Tensor) -> torch.Tensor:
        """Map a batch of input patches ``(B, C, [Z], Y, X)`` to raw output patches."""

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        """Turn stitched raw output ``(B, C, ...)`` into the final output (mask, intensities).

        Applied pixel by pixel, band by band as prediction streams. A framework whose final
        step needs the whole image (instance clustering) also defines
        ``default_postprocess()`` returning an ``im2im_core.inference.Postprocess`` with
        ``needs_whole_image``; ``predict(..., postprocess="auto")`` then uses that instead.
        """


@runtime_checkable
class Backbone(Protocol):
    """A factory of ``torch.nn.Module``: a class or function called with these arguments.

    MONAI's networks (``monai.networks.nets.UNet``...) fit as they are.
    """

    def __call__(
        self, *, spatial_dims: int, in_channels: int, out_channels: int, **kwargs: Any
    ) -> torch.nn.Module: ...


@runtime_checkable
class Transform(Protocol):
    """A dictionary transform in MONAI's sense: maps a sample dict to a sample dict."""

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass
class ImageData:
    """An image as a reader returns it.

    Attributes
    ----------
    array : numpy.ndarray or dask.array.Array
        The pixels, in the axis order given by ``dims``; may be lazy.
    dims : str
        Axis letters of ``array``, a subsequence of ``"TCZYX"`` (for example ``"CZYX"``).
    physical_pixel_sizes : dict
        Size of one pixel along ``"Z"``, ``"Y"``, ``"X"`` in micrometres, where known.
    """

    array: Any
    dims: str
    physical_pixel_sizes: dict[str, float | None] = field(default_factory=dict)

    def numpy(self) -> np.ndarray:
        """Return the pixels as an in-memory numpy array (computing a lazy one)."""
        array = self.array
        return np.asarray(array.compute() if hasattr(array, "compute") else array)


@runtime_checkable
class Reader(Protocol):
    """Turns a path into an :class:`ImageData` with the axes a config asks for."""

    def read(self, path: str) -> ImageData: ...
