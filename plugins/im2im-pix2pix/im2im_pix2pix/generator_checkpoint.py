"""Start a generator from the network of a trained checkpoint (an FCN's, or another Pix2Pix's)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from im2im_core.errors import ConfigError, DataError
from im2im_core.inference.checkpoint import read_checkpoint

#: State-dict prefixes of the network in checkpoints of im2im frameworks: FCN, Pix2Pix.
PREFIXES = ("backbone.", "generator.")


def load_generator_weights(generator: nn.Module, checkpoint: str | Path) -> None:
    """Load the ``backbone.*`` (FCN) or ``generator.*`` (Pix2Pix) weights of ``checkpoint``.

    Raises
    ------
    DataError
        If the file is missing, unreadable, holds objects that could run code when loaded
        (it is read with ``weights_only=True``), or holds neither prefix.
    ConfigError
        If its weights do not fit ``generator`` (another architecture or other sizes).
    """
    path = Path(checkpoint)
    try:
        state = read_checkpoint(path)["state_dict"]
    except DataError as exc:
        raise DataError(f"generator_checkpoint: {exc}") from None
    for prefix in PREFIXES:
        weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if weights:
            break
    else:
        raise DataError(f"generator_checkpoint {path} has no {' or '.join(p + '*' for p in PREFIXES)} weights "
                        f"(expected a checkpoint of an im2im FCN or Pix2Pix run)")
    try:
        generator.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise ConfigError(f"generator_checkpoint {path}: its network does not fit the generator of this config "
                          f"(give the same class and arguments as its run): {first}") from None
