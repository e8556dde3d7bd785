"""Readers: a path in, an :class:`~im2im_core.protocols.ImageData` with chosen axes out."""

from __future__ import annotations

import warnings
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
    strict : bool
        Refuse files whose axes ``dims`` would cut (see :meth:`check_axes`); ``False`` reads
        index 0 of such axes, as for scoring files of any shape.
    """

    def __init__(self, dims: str = "YX", T: int | list[int] | None = None, C: int | list[int] | None = None,
                 Z: int | list[int] | None = None, strict: bool = True) -> None:
        self.dims, self.strict = check_dims(dims), strict
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
            sizes_by_axis = {axis: int(getattr(image.dims, axis)) for axis in image.dims.order}
        except Exception as exc:
            raise DataError(f"cannot read image {path}: not an image file it can open ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        if self.strict:
            self.check_axes(path, sizes_by_axis)
        try:
            array = image.get_image_dask_data(self.dims, **self.selection)
            with warnings.catch_warnings():  # a TIFF without a resolution unit: the sizes are unknown (None)
                warnings.filterwarnings("ignore", message="Could not parse tiff pixel size")
                sizes = image.physical_pixel_sizes
        except Exception as exc:
            raise DataError(f"cannot read image {path} with dims {self.dims!r}: {type(exc).__name__}: {exc}") from None
        pixel_sizes: dict[str, Any] = {"Z": sizes.Z, "Y": sizes.Y, "X": sizes.X}
        return ImageData(array=array, dims=self.dims, physical_pixel_sizes=pixel_sizes)


    def check_axes(self, path: Path, sizes: dict[str, int]) -> None:
        """Refuse a file whose axes the config would silently cut: several planes, channels,
        colour samples or timepoints that ``dims`` leaves out and no selection picks, or a
        single plane read as a 3D stack.

        Raises
        ------
        DataError
            Naming the file, the axis and its size, and the options that fit.
        """
        advice = {
            "Z": "give data.dims ZYX for a 3D model, data.Z N for one plane, or predict a 2D model "
                 "slice by slice (--data.dims ZYX --prediction.inference.slice_by_slice true)",
            "C": "give data.dims CYX (or CZYX) and a network with that many input channels, or data.C N for one channel",
            "S": "give data.dims YXS to read the colour samples as channels, or convert the images to grey",
            "T": "give data.T N for one timepoint, or data.dims TCZYX to predict every timepoint",
        }
        for axis, hint in advice.items():
            if sizes.get(axis, 1) > 1 and axis not in self.dims and axis not in self.selection:
                raise DataError(f"{path} has {sizes[axis]} along {axis} but data.dims {self.dims!r} has no {axis}: {hint}")
        if "Z" in self.dims and sizes.get("Z", 1) == 1 and "Z" not in self.selection:
            raise DataError(f"{path} is a single plane (Z 1) but data.dims {self.dims!r} asks for a 3D stack: "
                            f"use a 2D preset or data.dims YX")


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
