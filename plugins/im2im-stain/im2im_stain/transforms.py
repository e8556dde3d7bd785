"""MONAI dictionary transforms for stain normalization and stain separation.

Each works on channel-first RGB arrays ``(3, Y, X)`` with values 0..255, numpy or torch (on
any device), as :class:`im2im_core.data.Im2ImDataModule` reads them with ``dims: YXS``; they
belong in ``data.normalize``, before any scaling to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from monai.transforms import MapTransform
from monai.utils import convert_to_dst_type

from im2im_core.data.readers import BioioReader
from im2im_core.errors import ConfigError, DataError
from im2im_stain.macenko import NoTissueError, StainFit, fit_stains, normalize_stains, separate_stains
from im2im_stain.reinhard import LabStats, lab_stats, reinhard_normalize


def read_rgb(path: str) -> np.ndarray:
    """Read an RGB image file as a channel-first float32 array ``(3, Y, X)``."""
    array = np.moveaxis(BioioReader(dims="YXS").read(path).numpy(), -1, 0).astype(np.float32)
    if array.shape[0] != 3:
        raise DataError(f"reference image {path}: expected an RGB image with 3 colour samples, got {array.shape[0]}")
    return array


def _fit_reference(path: str, io: float, alpha: float, beta: float) -> StainFit:
    try:
        return fit_stains(read_rgb(path), io, alpha, beta)
    except DataError as exc:
        raise DataError(f"reference image {path}: {exc}") from None


def _stain_fit(stains: Sequence[Sequence[float]], max_concentrations: Sequence[float] | None) -> StainFit:
    matrix = torch.tensor(stains, dtype=torch.float32)
    if matrix.shape != (3, 2):
        raise ConfigError(f"stains must be 3 rows (R, G, B) of 2 values (hematoxylin, eosin); got shape {tuple(matrix.shape)}")
    maxima = (StainFit.standard().max_concentrations if max_concentrations is None
              else torch.tensor(max_concentrations, dtype=torch.float32))
    if maxima.shape != (2,):
        raise ConfigError(f"max_concentrations must be 2 values (hematoxylin, eosin); got {list(max_concentrations or [])}")
    return StainFit(matrix / matrix.norm(dim=0, keepdim=True), maxima)


class _RGBTransform(MapTransform):
    """Apply ``self.apply`` to each key; errors name the file the sample came from.

    ``unit_range`` divides outputs by 255 (``self.divisor``), so that a config needs no MONAI
    scaling transform: MONAI's ``keys`` type (``Hashable``) does not survive jsonargparse's
    saving of the run config ("Unable to serialize instance IM").
    """

    def __init__(self, keys: str | Sequence[str], allow_missing_keys: bool = False, unit_range: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.divisor = 255.0 if unit_range else 1.0

    def _scaled(self, image: Any) -> Any:
        return image if self.divisor == 1.0 else image / self.divisor

    def apply(self, image: Any) -> Any:
        raise NotImplementedError

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        sample = dict(data)
        for key in self.key_iterator(sample):
            try:
                sample[key] = self.apply(sample[key])
            except DataError as exc:
                source = sample.get(f"{key}_path", f"sample key {key!r}")
                raise type(exc)(f"{source}: {type(self).__name__}: {exc}") from None
        return sample


class MacenkoNormalized(_RGBTransform):
    """Macenko stain normalization of RGB images to a reference stain appearance.

    Parameters
    ----------
    keys : str or list of str
        Sample keys of RGB images, e.g. ``["IM"]``.
    reference : str, optional
        An RGB image file whose stain vectors and maximum concentrations are the target.
    stains : list of 3 lists of 2 floats, optional
        Target stain OD vectors instead of a reference image: rows R, G, B; columns
        hematoxylin, eosin. Default (no reference, no stains): the standard H&E reference.
    max_concentrations : list of 2 floats, optional
        Target 99th-percentile concentrations with ``stains``; default the standard H&E ones.
    io : float
        Transmitted light intensity (brightness of an empty slide), 240 by default.
    alpha : float
        Angle percentile of the extreme stain directions, 1 by default.
    beta : float
        Optical density below which a pixel is transparent, 0.15 by default.
    no_tissue : {"error", "keep"}
        For an image without tissue (no pixel above ``beta``, or one colour only): raise a
        DataError, or keep it unchanged (tile datasets with blank tiles).
    unit_range : bool
        Divide the output by 255, giving values in [0, 1] for a network; otherwise 0..255.
    """

    def __init__(self, keys: str | Sequence[str], reference: str | None = None,
                 stains: list[list[float]] | None = None, max_concentrations: list[float] | None = None,
                 io: float = 240.0, alpha: float = 1.0, beta: float = 0.15,
                 no_tissue: Literal["error", "keep"] = "error", unit_range: bool = False,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys, unit_range)
        if reference is not None and stains is not None:
            raise ConfigError("MacenkoNormalized: give a reference image or stains, not both")
        if no_tissue not in ("error", "keep"):
            raise ConfigError(f"MacenkoNormalized: no_tissue must be 'error' or 'keep', got {no_tissue!r}")
        self.io, self.alpha, self.beta, self.no_tissue = io, alpha, beta, no_tissue
        if reference is not None:
            self.target = _fit_reference(reference, io, alpha, beta)
        elif stains is not None:
            self.target = _stain_fit(stains, max_concentrations)
        else:
            self.target = StainFit.standard()

    def apply(self, image: Any) -> Any:
        """One RGB image normalized; without tissue, a DataError or (``no_tissue: keep``) the image as it is."""
        try:
            return self._scaled(normalize_stains(image, self.target, self.io, self.alpha, self.beta))
        except NoTissueError:
            if self.no_tissue == "keep":
                return self._scaled(convert_to_dst_type(image, dst=image, dtype=torch.float32)[0])
            raise


class StainSeparated(_RGBTransform):
    """Replace RGB images by stain concentrations: hematoxylin, eosin, residual (in OD units).

    Parameters
    ----------
    keys : str or list of str
        Sample keys of RGB images.
    channels : str
        Which concentrations to keep, in order: letters of ``"HER"`` (``"H"`` for the
        hematoxylin channel alone).
    per_image : bool
        Fit the stain vectors on each image (Macenko). Otherwise they come from ``reference``,
        ``stains`` or, with neither, the standard H&E stain vectors.
    reference : str, optional
        An RGB image file to fit the stain vectors on once.
    stains : list of 3 lists of 2 floats, optional
        Stain OD vectors: rows R, G, B; columns hematoxylin, eosin (or a second stain, e.g. DAB).
    io, alpha, beta : float
        As in :class:`MacenkoNormalized`.
    """

    def __init__(self, keys: str | Sequence[str], channels: str = "HER", per_image: bool = False,
                 reference: str | None = None, stains: list[list[float]] | None = None,
                 io: float = 240.0, alpha: float = 1.0, beta: float = 0.15,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if sum([per_image, reference is not None, stains is not None]) > 1:
            raise ConfigError("StainSeparated: give at most one of per_image, reference and stains")
        if not channels or any(c not in "HER" for c in channels):
            raise ConfigError("StainSeparated: channels must be letters of 'HER' (hematoxylin, eosin, residual), "
                              f"got {channels!r}")
        self.rows = ["HER".index(c) for c in channels]
        self.io, self.alpha, self.beta = io, alpha, beta
        self.stains: StainFit | None = None
        if reference is not None:
            self.stains = _fit_reference(reference, io, alpha, beta)
        elif stains is not None:
            self.stains = _stain_fit(stains, None)
        elif not per_image:
            self.stains = StainFit.standard()

    def apply(self, image: Any) -> Any:
        """The concentrations of ``channels``, ``(len(channels), *spatial)``, of one RGB image."""
        return separate_stains(image, self.stains, self.io, self.alpha, self.beta)[self.rows]


class ReinhardNormalized(_RGBTransform):
    """Reinhard colour normalization: match the Lab mean and standard deviation of a reference.

    Parameters
    ----------
    keys : str or list of str
        Sample keys of RGB images.
    reference : str, optional
        An RGB image file whose Lab statistics are the target.
    target_mean, target_std : list of 3 floats, optional
        The target Lab statistics instead of a reference image (L in 0..100).
    unit_range : bool
        Divide the output by 255, giving values in [0, 1] for a network; otherwise 0..255.
    """

    def __init__(self, keys: str | Sequence[str], reference: str | None = None,
                 target_mean: list[float] | None = None, target_std: list[float] | None = None,
                 unit_range: bool = False, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys, unit_range)
        if (target_mean is None) != (target_std is None) or (reference is None) == (target_mean is None):
            raise ConfigError("ReinhardNormalized: give either a reference image or both target_mean and target_std")
        if reference is not None:
            try:
                self.target = lab_stats(read_rgb(reference))
            except DataError as exc:
                raise DataError(f"reference image {reference}: {exc}") from None
        else:
            if len(target_mean) != 3 or len(target_std) != 3:
                raise ConfigError("ReinhardNormalized: target_mean and target_std need 3 values each (L, a, b)")
            self.target = LabStats(tuple(target_mean), tuple(target_std))

    def apply(self, image: Any) -> Any:
        """One RGB image with the target's Lab mean and standard deviation."""
        return self._scaled(reinhard_normalize(image, self.target))


#: The transforms this plugin registers, by short name.
TRANSFORMS: dict[str, Callable[..., MapTransform]] = {
    "MacenkoNormalized": MacenkoNormalized,
    "StainSeparated": StainSeparated,
    "ReinhardNormalized": ReinhardNormalized,
}
