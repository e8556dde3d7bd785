"""A bare ``torch.nn.Module`` seen through the framework contract, so prediction has one code path."""

from __future__ import annotations

import torch
from torch import nn

from im2im_core.inference.postprocess import Postprocess
from im2im_core.inference.tta import Symmetry, undo_symmetry
from im2im_core.protocols import WindowDefaults


def first_convolution_dims(network: nn.Module) -> int | None:
    """Spatial dimensions (2 or 3) of the first convolution of a bare network, None if it has none.

    Only for networks given without a framework (``predict(network, array)`` without ``dims``);
    frameworks declare their ``spatial_dims``.
    """
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            return 2
        if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
            return 3
    return None


class PlainNetwork:
    """The :class:`~im2im_core.protocols.Framework` of a bare network: raw outputs, scalar TTA inverse.

    Parameters
    ----------
    network : torch.nn.Module
        Maps ``(B, C, *spatial)`` windows to outputs of the same spatial size.
    spatial_dims : int
        2 or 3.
    """

    def __init__(self, network: nn.Module, spatial_dims: int) -> None:
        self.network, self.spatial_dims = network, spatial_dims

    def window_network(self) -> nn.Module:
        """The network itself."""
        return self.network

    def window_defaults(self) -> WindowDefaults:
        """An automatic window, overlap 0.25, 4 windows per batch."""
        return WindowDefaults()

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        """The raw output."""
        return output

    def whole_image_postprocess(self) -> Postprocess | None:
        """None: nothing needs the whole image."""
        return None

    def tta_inverse(self, output: torch.Tensor, symmetry: Symmetry) -> torch.Tensor:
        """Each channel as a scalar map."""
        return undo_symmetry(output, symmetry)

    def output_in_input_units(self) -> bool:
        """False: a bare network's outputs are returned as it gives them."""
        return False
