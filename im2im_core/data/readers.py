"""Readers: a path in, an :class:`~im2im_core.protocols.ImageData` with chosen axes out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from im2im_core.errors import DataError
from im2im_core.protocols import ImageData

#: Axis letters a reader can be asked for, in canonical order; S is bioio's RGB(A) sample axis.
ALL_DIMS = "TCZYXS"


def check_dims(dims: str) -> str:
    """Validate an axis string such as ``"YX"``, ``"ZYX"`` or ``"CZYX"`` and return it.

    Allowed letters are T, C, Z, Y, X, each at most once, in TCZYX order, ending in YX; an
    RGB image adds S (its colour samples) after X, e.g. ``"YXS"``.
    """
    if not dims.removesuffix("S").endswith("YX") or any(d not in ALL_DIMS for d in dims) or len(set(dims)) != len(dims):
        raise DataError(f"dims {dims!r} is not valid: expected letters of 'TCZYX' in that order ending in 'YX' "
                        "(or 'YXS' for RGB), e.g. 'YX', 'ZYX', 'CZYX', 'YXS'")
    if "".join(d for d in ALL_DIMS if d in dims) != dims:
        raise DataError(f"dims {dims!r} must keep the order T, C, Z, Y, X, S")
    return dims


def _reader_for(path: Path) -> Any:
    """Pick bioio's reader from the file name, so plain TIFFs skip the OME-XML attempt.

    ``None`` lets bioio choose among every installed reader plugin.
    """
    name = path.name.lower()
    if name.endswith((".ome.tif", ".ome.tiff")):
        from bioio_ome_tiff import Reader
    elif name.endswith((".tif", ".tiff")):
        from bioio_tifffile import Reader
    elif name.endswith(".zarr"):
        from bioio_ome_zarr import Reader
    else:
        return None
    return Reader


class BioioReader:
    """Read any format bioio has a reader for (TIFF, OME-TIFF, OME-Zarr, ...), lazily.

    Parameters
    ----------
    dims : str
        Axes to return, a subsequence of ``"TCZYX"`` ending in ``"YX"``.
    T, C, Z : int, list of int or None
        Selection along an axis that is *not* in ``dims`` (an int) or a subset of one that is
        (a list). Axes not in ``dims`` and not selected default to index 0.
    """

    def __init__(self, dims: str = "YX", T: int | list[int] | None = None, C: int | list[int] | None = None,
                 Z: int | list[int] | None = None) -> None:
        self.dims = check_dims(dims)
        self.selection = {k: v for k, v in {"T": T, "C": C, "Z": Z}.items() if v is not None}

    def open(self, path: Path) -> Any:
        """The library's image object for ``path`` (bioio's ``BioImage``)."""
        from bioio import BioImage

        return BioImage(path, reader=_reader_for(path))

    def read(self, path: str | Path) -> ImageData:
        """Return the image at ``path`` with axes ``self.dims`` (a dask array)."""
        path = Path(path)
        if not path.exists():
            raise DataError(f"image file not found: {path}")
        try:
            image = self.open(path)
            array = image.get_image_dask_data(self.dims, **self.selection)
            sizes = image.physical_pixel_sizes
        except Exception as exc:
            raise DataError(f"cannot read image {path} with dims {self.dims!r}: {type(exc).__name__}: {exc}") from None
        pixel_sizes: dict[str, Any] = {"Z": sizes.Z, "Y": sizes.Y, "X": sizes.X}
        return ImageData(array=array, dims=self.dims, physical_pixel_sizes=pixel_sizes)


class AicsImageIOReader(BioioReader):
    """Read with aicsimageio 4.x, the package the original MMV_Im2Im toolbox used.

    Same axes and selection as :class:`BioioReader`; registered as ``aicsimageio`` only when
    aicsimageio is importable (it needs older zarr and numcodecs than bioio, so it usually
    lives in an environment of its own).
    """

    def open(self, path: Path) -> Any:
        """Aicsimageio's ``AICSImage`` for ``path``."""
        from aicsimageio import AICSImage

        return AICSImage(path)
