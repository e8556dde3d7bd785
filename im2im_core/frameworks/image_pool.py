"""History of generated images for discriminator updates (Shrivastava et al. 2017; CycleGAN).

Nothing in MONAI or Lightning keeps such a buffer, so it is ours. It is an ``nn.Module`` whose
stored images are *extra state*: they are saved in checkpoints and come back on resume.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["ImagePool"]


class ImagePool(nn.Module):
    """A buffer of up to ``pool_size`` generated images, as in CycleGAN.

    :meth:`query` takes a batch of generated images and returns a batch of the same size for
    the discriminator: while the buffer fills, the images themselves (and they are stored);
    after that each image is, with probability ``swap_probability``, exchanged for a random
    stored one (which it replaces in the buffer), and otherwise returned as it is. Randomness
    comes from torch's global generator, so ``seed_everything`` makes it reproducible.

    Parameters
    ----------
    pool_size : int
        Images kept (50 in CycleGAN); 0 disables the buffer (``query`` returns its input).
    swap_probability : float
        Chance that a query returns a stored image instead of the new one.
    """

    def __init__(self, pool_size: int = 50, swap_probability: float = 0.5) -> None:
        super().__init__()
        if pool_size < 0 or not 0 <= swap_probability <= 1:
            raise ValueError(f"ImagePool: pool_size {pool_size} must be >= 0 and swap_probability "
                             f"{swap_probability} in [0, 1]")
        self.pool_size, self.swap_probability = pool_size, swap_probability
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Images for the discriminator, ``(B, C, [Z], Y, X)`` like ``images`` (detached)."""
        images = images.detach()
        if self.pool_size == 0:
            return images
        chosen = []
        for image in images:
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                chosen.append(image)
            elif float(torch.rand(())) < self.swap_probability:
                index = int(torch.randint(len(self.images), ()))
                chosen.append(self.images[index].to(image.device))
                self.images[index] = image.clone()
            else:
                chosen.append(image)
        return torch.stack(chosen)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`query`."""
        return self.query(images)

    # ----------------------------------------------------------------- checkpoints
    def get_extra_state(self) -> Any:
        """The stored images (on the CPU), saved in checkpoints."""
        return {"images": [image.cpu() for image in self.images]}

    def set_extra_state(self, state: Any) -> None:
        """Restore the stored images of a checkpoint (at most ``pool_size``), on the device of those held now."""
        device = next((image.device for image in self.images), None)
        images = list(state.get("images", [])) if isinstance(state, dict) else []
        self.images = [image.to(device) if device is not None else image for image in images][: self.pool_size]
