"""The four protocols every im2im extension implements.

im2im prefers protocols over base classes: any object with these members works, whether it
comes from the core, a plugin, MONAI or a user's own module. ``Framework`` is the one contract
between the core and a framework; the core relies on nothing else of a framework.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # readers must import without torch (the aicsimageio environment has none)
    import torch

    from im2im_core.inference.postprocess import Postprocess


@dataclass(frozen=True)
class WindowDefaults:
    """A framework's defaults for sliding-window prediction; prediction settings override them.

    Attributes
    ----------
    roi_size : list of int, optional
        Window size, one entry per spatial axis of the network. ``None``: an automatic window
        shaped after the image within a memory budget (``Inference.max_window_voxels``).
    overlap : float
        Fraction of a window shared with each neighbour, in ``[0, 1)``.
    sw_batch_size : int
        Windows computed together.
    """

    roi_size: list[int] | None = None
    overlap: float = 0.25
    sw_batch_size: int = 4


@runtime_checkable
class Framework(Protocol):
    """The contract between a framework and the core: everything the core uses of one.

    A framework is a ``lightning.pytorch.LightningModule`` (so a ``torch.nn.Module``) that
    trains one kind of model. Lightning calls its ``training_step`` (and
    ``configure_optimizers``); im2im's prediction, validation, writer, export and front ends
    use only the members below, so a framework needs no prediction code of its own.
    :class:`im2im_core.frameworks.Im2ImFramework` implements all of them with defaults, the
    shared training plumbing, the whole-image ``validation_step`` and the ``predict_step`` that
    ``im2im predict``'s writer relies on (it returns None: the writer predicts); subclass it and
    override what differs. See docs/plugins.md, "Writing a framework". Optional members, looked
    up only where present: the classmethod ``network_arguments`` (see the base class) lets
    ``im2im fit`` fill the networks' dimensions and channels from the data;
    ``pixel_postprocess(out_channels)`` describes :meth:`postprocess` for ``im2im export``, and
    the classmethod ``citations()`` names the method's papers in exported packages.

    Attributes
    ----------
    spatial_dims : int
        2 or 3: the spatial dimensions of the windows the network maps.
    """

    spatial_dims: int

    def window_network(self) -> torch.nn.Module:
        """The module that maps a batch of windows ``(B, C_in, *roi)`` to raw outputs
        ``(B, C_out, *roi)`` (logits, intensities, decoded embeddings...).

        Prediction may run an optimized copy of it (batch norms folded, channels-last), so it
        must compute the same function as a copy. Raw outputs of overlapping windows are
        blended, so they must be quantities a weighted mean makes sense of.
        """

    def window_defaults(self) -> WindowDefaults:
        """Window size, overlap and windows per batch used unless prediction settings say otherwise."""

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        """Turn raw output ``(B, C, *spatial)`` into the final output, pixel by pixel.

        Prediction streams: this runs on each finished band of the stitched output, so it may
        not look at neighbours beyond the band (activation, threshold, argmax, a scale).
        """

    def whole_image_postprocess(self) -> Postprocess | None:
        """A final step that needs the whole stitched raw output (instance clustering), or None.

        When it is not None, prediction keeps the raw output of each timepoint and calls it
        on the complete image instead of :meth:`postprocess`.
        """

    def tta_inverse(self, output: torch.Tensor, symmetry: tuple[tuple[int, ...], int]) -> torch.Tensor:
        """Map the raw output of a transformed window back (``im2im_core.inference.tta``).

        A symmetry is ``(flipped axes, quarter turns in YX)``; channels that are vectors
        (offsets) must be turned with the pixels, not only moved.
        """

    def output_in_input_units(self) -> bool:
        """Whether raw outputs are intensities on the input's normalized scale (denoising, restoration).

        When True and prediction normalized the input itself (percentiles of each timepoint
        mapped to 0 and 1), it maps every raw output back through the inverse of that
        normalization before post-processing, so outputs come in the input's units.
        """


#: The methods of :class:`Framework`, besides ``spatial_dims``.
FRAMEWORK_METHODS = ("window_network", "window_defaults", "postprocess", "whole_image_postprocess", "tta_inverse",
                     "output_in_input_units")


def is_framework(obj: Any) -> bool:
    """Whether ``obj`` has every member of :class:`Framework`, looked up without evaluating any.

    (``isinstance(obj, Framework)`` would evaluate ``spatial_dims``, which may need a data module.)
    """
    return inspect.getattr_static(obj, "spatial_dims", None) is not None and all(
        callable(inspect.getattr_static(obj, name, None)) for name in FRAMEWORK_METHODS)


@runtime_checkable
class Backbone(Protocol):
    """A factory of ``torch.nn.Module``: a class or function called with these arguments.

    MONAI's networks (``monai.networks.nets.UNet``...) fit as they are.
    """

    def __call__(
        self, *, spatial_dims: int, in_channels: int, out_channels: int, **kwargs: Any
    ) -> torch.nn.Module:
        """Build the network, mapping ``(B, in_channels, *spatial)`` to ``(B, out_channels, *spatial)``."""


@runtime_checkable
class Transform(Protocol):
    """A dictionary transform in MONAI's sense: maps a sample dict to a sample dict."""

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return the transformed sample."""


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

    def read(self, path: str) -> ImageData:
        """Read the image file at ``path`` (its pixels may stay lazy)."""
