"""Predict an image file, read lazily, into an OME-TIFF or OME-Zarr file named after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from im2im_core.axes import with_channels
from im2im_core.inference.outputs import OutputFormat, ZarrOutput, atomic_output, output_path, save_ome_tiff
from im2im_core.inference.predict_array import Normalize, predict, resolve_normalize
from im2im_core.plugins import get_registry


def predict_file(model_or_checkpoint: nn.Module | str | Path, input_path: str | Path, output_dir: str | Path = ".", *,
                 dims: str = "ZYX", T: int | list[int] | None = None, C: int | list[int] | None = None,
                 output_format: OutputFormat = "ome-tiff", suffix: str = "_pred", overwrite: bool = False,
                 normalize: Normalize = "auto", reader: str = "bioio", **kwargs: Any) -> Path:
    """Predict ``input_path`` and write ``output_dir/<stem><suffix>.ome.tiff`` (or ``.ome.zarr``).

    Parameters
    ----------
    model_or_checkpoint : torch.nn.Module or path
        As for :func:`~im2im_core.inference.predict_array.predict`.
    input_path : str or Path
        Any image bioio reads; read lazily, one band of windows at a time.
    output_dir : str or Path
        Folder of the output (created if needed).
    dims : str
        Axes to read, e.g. ``"ZYX"``, ``"CZYX"``, ``"TCZYX"``; the output keeps them.
    T, C : int or list of int, optional
        Timepoints and channels to read (as in the data config).
    output_format : {"ome-tiff", "ome-zarr"}
        OME-Zarr is written band by band, so memory stays bounded by the window batch and one
        band of the output; OME-TIFF is assembled in memory, then written.
    suffix : str
        Added to the input's name.
    overwrite : bool
        Replace an existing output; without it an existing output is an error and stays as it is.
    normalize : (float, float), MeanStd, "auto" or None
        As for :func:`~im2im_core.inference.predict_array.predict`; ``"auto"``: the training
        set's statistics a checkpoint holds, else input percentiles (0.5, 99.5) mapped to 0
        and 1 (the data module's default normalization).
    reader : str
        Registered reader name (``im2im plugins`` lists them), as ``data.reader`` of a config.
    kwargs
        Passed to :func:`~im2im_core.inference.predict_array.predict` (``inference``, ``postprocess``,
        ``device``, ``config``, or any field of ``Inference`` such as ``roi_size`` or ``tta``).

    Returns
    -------
    Path
        The output written.
    """
    normalize = resolve_normalize(normalize, model_or_checkpoint)  # checked before any file is written
    selection = {key: value for key, value in {"T": T, "C": C}.items() if value is not None}
    image = get_registry().get("readers", reader)(dims=dims, **selection).read(str(input_path))
    path = output_path(input_path, output_dir, suffix, output_format)
    path.parent.mkdir(parents=True, exist_ok=True)
    sizes = image.physical_pixel_sizes
    with atomic_output(path, overwrite) as partial:
        if output_format == "ome-zarr":
            def store(shape: tuple[int, ...], out_dims: str, dtype: Any) -> ZarrOutput:
                return ZarrOutput(partial, shape, out_dims, dtype, sizes)

            predict(model_or_checkpoint, image.array, dims=image.dims, normalize=normalize, store=store, **kwargs)
        else:
            result = predict(model_or_checkpoint, image.array, dims=image.dims, normalize=normalize, **kwargs)
            out_dims = image.dims if result.ndim == len(image.dims) else with_channels(image.dims)
            save_ome_tiff(result, partial, out_dims, sizes)
    return path

