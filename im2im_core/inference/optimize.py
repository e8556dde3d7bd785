"""Make an inference copy of a network faster without changing what it computes.

Two rewrites, each exact up to float rounding, on a deep copy in eval mode:

- a batch norm that directly follows a convolution in a chain of ``nn.Sequential`` modules
  (MONAI's ``Convolution`` blocks: conv, then norm-dropout-activation) is folded into the
  convolution's weights and bias (``torch.nn.utils.fusion``), and a ReLU that follows
  in the same chain works in place: two fewer passes over every feature map;
- on the CPU, weights and windows use the channels-last memory layout, which oneDNN
  convolutions work in natively (no reordering of every feature map).

On a 3D fnet (depth 4, 32 channels) on 2 CPU cores this makes each window about twice as fast.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _chain(sequential: nn.Sequential) -> list[tuple[nn.Module, str, nn.Module]]:
    """``(parent, name, module)`` of the leaves of nested Sequentials, in execution order."""
    leaves = []
    for name, child in sequential.named_children():
        if isinstance(child, nn.Sequential):
            leaves.extend(_chain(child))
        else:
            leaves.append((sequential, name, child))
    return leaves


def _outermost_sequentials(model: nn.Module) -> list[nn.Sequential]:
    """Sequentials that are not directly inside another Sequential (each chain once)."""
    found = []
    for module in model.modules():
        for child in module.children():
            if isinstance(child, nn.Sequential) and not isinstance(module, nn.Sequential):
                found.append(child)
    if isinstance(model, nn.Sequential):
        found.append(model)
    return found


def fold_batch_norms(model: nn.Module) -> int:
    """Fold eval-mode batch norms into the convolutions before them, in place; return how many.

    Also makes each ReLU that follows a folded convolution (or a batch norm) in the same chain
    work in place: its input is a fresh tensor no other module sees.
    """
    folded = 0
    for sequential in _outermost_sequentials(model):
        chain = _chain(sequential)
        for (conv_parent, conv_name, conv), (norm_parent, norm_name, norm) in zip(chain, chain[1:]):
            if isinstance(conv, _CONVS) and isinstance(norm, _NORMS) and norm.track_running_stats \
                    and norm.running_mean is not None and conv.out_channels == norm.num_features:
                transposed = isinstance(conv, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d))
                setattr(conv_parent, conv_name, fuse_conv_bn_eval(conv, norm, transpose=transposed))
                setattr(norm_parent, norm_name, nn.Identity())
                folded += 1
        for position, (_, _, module) in enumerate(chain):
            before = [m for _, _, m in chain[:position] if not isinstance(m, (nn.Identity, nn.Dropout))]
            if isinstance(module, nn.ReLU) and before and isinstance(before[-1], (*_CONVS, *_NORMS)):
                module.inplace = True
    return folded


def channels_last(spatial_dims: int) -> torch.memory_format | None:
    """The channels-last memory format of ``spatial_dims`` (2 or 3), else None."""
    return {2: torch.channels_last, 3: torch.channels_last_3d}.get(spatial_dims)


def optimized_copy(model: nn.Module, spatial_dims: int, device: torch.device) -> nn.Module:
    """An eval-mode deep copy of ``model`` with batch norms folded, channels-last on the CPU."""
    network = copy.deepcopy(model).eval()
    fold_batch_norms(network)
    layout = channels_last(spatial_dims)
    if device.type == "cpu" and layout is not None:
        network = network.to(memory_format=layout)
    return network.to(device)
