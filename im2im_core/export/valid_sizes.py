"""The window sizes a network accepts, measured by trial passes rather than read from its class.

A network's divisibility depends on its strides, kernel sizes and padding, in ways that differ
between MONAI, segmentation-models-pytorch and a user's own module; running it on a few small
inputs is the one answer that holds for all of them. A size is valid when the network runs and
returns the input's spatial size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from im2im_core.errors import ConfigError

#: Base sizes tried, in turn, for the axes not being measured.
BASE_SIZES = (64, 128, 256)
#: Largest step tried; networks that need more are rare and get this error.
MAX_STEP = 256


@dataclass(frozen=True)
class AxisSizes:
    """Valid sizes of one spatial axis: ``min + n * step`` for every ``n >= 0``."""

    min: int
    step: int


def _runs(network: nn.Module, channels: int, sizes: tuple[int, ...]) -> bool:
    try:
        with torch.inference_mode():
            output = network(torch.zeros((1, channels, *sizes)))
    except Exception:  # noqa: BLE001  a size it cannot take: skip connections that do not match, its own size check
        return False
    return tuple(output.shape[2:]) == sizes


def measure_valid_sizes(network: nn.Module, in_channels: int, spatial_dims: int, source: str = "the input") -> list[AxisSizes]:
    """Smallest size and step of each spatial axis, from forward passes on zeros (eval mode).

    Parameters
    ----------
    network : torch.nn.Module
        Maps ``(B, in_channels, *spatial)`` to outputs of the same spatial size.
    in_channels : int
        Channels of the inputs tried (those of ``source``).
    spatial_dims : int
        2 or 3.
    source : str
        What the channels come from, for the error message.

    Returns
    -------
    list of AxisSizes
        One per spatial axis.

    Raises
    ------
    ConfigError
        If the network accepts none of the base sizes, or needs a step over :data:`MAX_STEP`.
    """
    network = network.eval()
    base = next((size for size in BASE_SIZES if _runs(network, in_channels, (size,) * spatial_dims)), None)
    if base is None:
        raise ConfigError(f"the network of this model maps none of the sizes {', '.join(map(str, BASE_SIZES))} of "
                          f"{source} ({in_channels} channels, {spatial_dims} axes) to themselves: a sample with another "
                          f"number of channels than the training images, or a network without valid window sizes")
    measured = []
    for axis in range(spatial_dims):
        def fits(size: int, axis: int = axis) -> bool:
            sizes = [base] * spatial_dims
            sizes[axis] = size
            return _runs(network, in_channels, tuple(sizes))

        step = next((s for s in (2**k for k in range(9)) if s <= MAX_STEP and fits(base + s) and fits(base + 2 * s)), None)
        if step is None:
            raise ConfigError(f"the network of this model needs window sizes along spatial axis {axis} that are "
                              f"multiples of more than {MAX_STEP}: not supported")
        smallest = next(size for size in range(step, base + step, step) if fits(size))
        measured.append(AxisSizes(smallest, step))
    return measured
