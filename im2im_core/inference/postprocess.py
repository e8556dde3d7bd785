"""Turn a stitched raw output into the final image: activation, mask, labels, small objects removed.

The per-pixel steps (activation, threshold, argmax) run on each finished band while streaming;
the steps that need the whole image (connected components, small-object removal) run once
the image is complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch


@dataclass
class Postprocess:
    """Segmentation post-processing applied to the blended network output.

    Parameters
    ----------
    activation : {"none", "sigmoid", "softmax"}
        Applied to the raw output (``softmax`` across channels).
    threshold : float, optional
        Foreground where the activated output exceeds it (one 0/1 mask per channel).
    argmax : bool
        Class index of the largest channel (``(1, ...)`` output); exclusive with ``threshold``.
    label : bool
        Connected components of the foreground (``> 0``) become instance labels
        (``skimage.measure.label``, full connectivity), numbered 1..N in each channel.
    min_size : int
        Objects (connected components) smaller than this many pixels are removed
        (``skimage.morphology.remove_small_objects``); 0 keeps all.
    """

    activation: Literal["none", "sigmoid", "softmax"] = "none"
    threshold: float | None = None
    argmax: bool = False
    label: bool = False
    min_size: int = 0

    def __post_init__(self) -> None:
        if self.activation not in ("none", "sigmoid", "softmax"):
            raise ValueError(f"activation {self.activation!r} is not one of none, sigmoid, softmax")
        if self.threshold is not None and self.argmax:
            raise ValueError("threshold and argmax exclude each other: choose one")
        if self.min_size < 0:
            raise ValueError(f"min_size must be >= 0, got {self.min_size}")

    @property
    def needs_whole_image(self) -> bool:
        """Whether a step needs the complete image (labelling, small-object removal)."""
        return self.label or self.min_size > 0

    def pointwise(self, output: torch.Tensor) -> torch.Tensor:
        """Activation, then threshold or argmax, of ``(C, *spatial)``; masks come out as uint8."""
        if self.activation == "sigmoid":
            output = torch.sigmoid(output)
        elif self.activation == "softmax":
            output = torch.softmax(output, dim=0)
        if self.threshold is not None:
            return (output > self.threshold).to(torch.uint8)
        if self.argmax:
            classes = output.argmax(dim=0, keepdim=True)
            return classes.to(torch.uint8 if output.shape[0] <= 256 else torch.int32)
        return output

    def whole_image(self, output: np.ndarray) -> np.ndarray:
        """Labelling and small-object removal of ``(C, *spatial)``, channel by channel."""
        if not self.needs_whole_image:
            return output
        from skimage.measure import label as connected_components
        from skimage.morphology import remove_small_objects
        from skimage.segmentation import relabel_sequential

        channels = []
        for channel in output:
            objects = connected_components(channel > 0)
            if self.min_size > 0:  # max_size: objects of at most this size go (scikit-image >= 0.26)
                objects = relabel_sequential(remove_small_objects(objects, max_size=self.min_size - 1))[0]
            channels.append(objects if self.label else np.where(objects > 0, channel, 0).astype(channel.dtype))
        result = np.stack(channels)
        if self.label:
            return result.astype(np.uint16 if result.max() < 2**16 else np.uint32)
        return result

    def __call__(self, output: torch.Tensor) -> np.ndarray:
        """All steps on a complete image ``(C, *spatial)``; returns numpy."""
        return self.whole_image(self.pointwise(output).cpu().numpy())
