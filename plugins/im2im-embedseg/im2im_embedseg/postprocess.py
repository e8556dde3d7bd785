"""Clustering as a whole-image post-processing step of the core's prediction engine.

``im2im_core.inference.predict`` post-processes finished bands of the output as they stream
out, except for a :class:`~im2im_core.inference.Postprocess` whose ``needs_whole_image`` is
true: that one gets the complete stitched output of each timepoint. Clustering must see the
whole image (an object may span bands), so :class:`InstanceClustering` is such a step::

    labels = predict(model, image, dims="CYX")  # postprocess='auto': model.whole_image_postprocess()
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from im2im_core.inference import Postprocess
from im2im_embedseg.cluster import cluster


@dataclass
class InstanceClustering(Postprocess):
    """Instance labels from a stitched decoded EmbedSeg output ``(2D+1, *spatial)``.

    Parameters
    ----------
    voxel_size : list of float, optional
        Physical voxel size per axis of the model's training; ``None``: isotropic.
    offset_range : float, optional
        The model's largest offset (bounds the search box of each object).
    seed_threshold, foreground_threshold : float
        See :func:`im2im_embedseg.cluster.cluster`.
    min_size : int
        Fewest pixels of an object.
    device : str, optional
        Where to cluster (e.g. ``"cuda"``); default the CPU.
    """

    voxel_size: list[float] | None = None
    offset_range: float | None = None
    seed_threshold: float = 0.9
    foreground_threshold: float = 0.5
    min_size: int = 10
    device: str | None = None

    @property
    def needs_whole_image(self) -> bool:
        """Always true: clustering needs the complete stitched output."""
        return True

    def pointwise(self, output: torch.Tensor) -> torch.Tensor:
        """Nothing per pixel: the decoded output is kept for the whole-image step."""
        return output

    def whole_image(self, output: np.ndarray | torch.Tensor) -> np.ndarray:
        """``(1, *spatial)`` labels: uint16, or int32 above 65535 objects."""
        decoded = torch.as_tensor(output, device=self.device)
        labels = cluster(decoded, self.voxel_size, self.offset_range, self.seed_threshold, self.foreground_threshold,
                         self.min_size).cpu().numpy()[None]
        return labels.astype(np.uint16) if labels.max(initial=0) < 2**16 else labels
