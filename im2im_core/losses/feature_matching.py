"""Discriminator feature matching (pix2pixHD, Wang et al. 2018).

MONAI has no such loss. pix2pixHD's ``loss_G_GAN_Feat``: the L1 distance between the
discriminator's intermediate features of the generated and of the real image, summed over
layers with weight ``4 / (n_layers + 1)`` and averaged over the scales; the real features are
constants (detached).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FeatureMatchingLoss"]


class FeatureMatchingLoss(nn.Module):
    """L1 between discriminator features of fake and real images, pix2pixHD's weighting.

    ``loss(fake_features, real_features)``: per scale, the list of block outputs of the
    discriminator (``PatchGAN.features``); the last entry of each list, the logit map, is
    left out, as in pix2pixHD.
    """

    def forward(self, fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]]) -> torch.Tensor:
        """The loss of the ``fake`` against the ``real`` features (per scale, the discriminator's block outputs)."""
        if len(fake) != len(real) or not fake:
            raise ValueError(f"feature matching: {len(fake)} fake and {len(real)} real scales")
        total = fake[0][0].new_zeros(())
        for fake_blocks, real_blocks in zip(fake, real, strict=True):
            layers = list(zip(fake_blocks[:-1], real_blocks[:-1], strict=True))
            weight = 4.0 / max(len(layers), 1)  # pix2pixHD: 4 / (n_layers + 1), the number of feature maps compared
            for f, r in layers:
                total = total + weight * F.l1_loss(f, r.detach())
        return total / len(fake)
