"""Optimizer defaults shared by the frameworks (configs name them by import path)."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def gan_adam(params: Iterable) -> torch.optim.Optimizer:
    """Adam with the settings of pix2pix and CycleGAN: learning rate 2e-4, betas (0.5, 0.999)."""
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))
