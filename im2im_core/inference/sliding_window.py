"""Whole-image prediction with MONAI's sliding window, for any Framework."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from monai.inferers import sliding_window_inference

from im2im_core.protocols import Framework


def predict_image(framework: Framework, image: torch.Tensor, roi_size: Sequence[int], overlap: float = 0.25,
                  sw_batch_size: int = 4, mode: Literal["gaussian", "constant"] = "gaussian") -> torch.Tensor:
    """Return the raw output of ``framework`` for a batch of whole images ``(B, C, [Z], Y, X)``.

    Windows of ``roi_size`` overlap by the fraction ``overlap`` and are blended with ``mode``;
    an image smaller than a window is padded and the padding cut off again.
    """
    return sliding_window_inference(image, roi_size=list(roi_size), sw_batch_size=sw_batch_size,
                                    predictor=framework.predict_patch, overlap=overlap, mode=mode)
