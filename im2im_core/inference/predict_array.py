"""Predict a whole image of any size, 2D to 5D, in memory or streamed to OME-Zarr.

``predict(model, array)`` is the Python entry point; ``predict_file`` reads an image file
lazily and writes the output file. ``im2im predict`` runs the same window engine through
Lightning's predict loop (its writer calls ``predict_batch``).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from im2im_core.axes import is_ordered, spatial_of, with_channels
from im2im_core.data.normalization import MeanStd
from im2im_core.errors import ConfigError, DataError
from im2im_core.inference.checkpoint import load_model, read_checkpoint, training_statistics
from im2im_core.inference.optimize import channels_last, optimized_copy
from im2im_core.inference.options import Inference
from im2im_core.inference.outputs import ZarrOutput, default_chunks
from im2im_core.inference.plain_network import PlainNetwork, first_convolution_dims
from im2im_core.inference.postprocess import Postprocess
from im2im_core.inference.receptive_field import Locality, measure_locality, weights_signature
from im2im_core.inference.sliding_window import computed, predict_windows, read_region, window_of
from im2im_core.inference.streaming import NotStreamable, StreamedNetwork, stream_order
from im2im_core.inference.tta import with_tta
from im2im_core.inference.windows import MAX_AUTO_ALIGN, auto_align, auto_window, axis_starts, tiling_work
from im2im_core.protocols import FRAMEWORK_METHODS, Framework, WindowDefaults, is_framework

#: Streamed networks (or why a network cannot be streamed) per module, weights and settings.
_STREAMED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: Elements read to estimate the normalization percentiles of a lazy (out-of-core) image.
PERCENTILE_SAMPLE = 2**24
#: The percentiles mapped to 0 and 1 by the data module's default normalization.
DEFAULT_PERCENTILES = (0.5, 99.5)


def as_framework(model: Any, dims: str | None, slice_by_slice: bool) -> Framework:
    """``model`` itself if it is a framework; a bare network wrapped as :class:`PlainNetwork`.

    A bare network's spatial dimensions are those of its first convolution, else of ``dims``
    (2 with ``slice_by_slice``).
    """
    if is_framework(model):
        return model
    members = ("spatial_dims", *FRAMEWORK_METHODS)
    partly = [name for name in members if inspect.getattr_static(model, name, None) is not None]
    if set(partly) & {"window_network", "window_defaults", "whole_image_postprocess", "tta_inverse"}:  # names of im2im's
        missing = [name for name in members if name not in partly]
        raise ConfigError(f"{type(model).__name__} has part of the framework contract ({', '.join(partly)}) but not "
                          f"{', '.join(missing)}: implement them, or subclass im2im_core.frameworks.Im2ImFramework")
    if not isinstance(model, nn.Module):
        raise ConfigError(f"cannot predict with a {type(model).__name__}: expected an im2im framework, a torch.nn.Module "
                          f"or the path of a checkpoint")
    spatial = first_convolution_dims(model) or (2 if slice_by_slice else len(spatial_of(dims)) if dims else None)
    if spatial is None:
        raise ConfigError(f"cannot tell whether {type(model).__name__} is a 2D or 3D network; pass dims (e.g. 'CZYX')")
    return PlainNetwork(model, spatial)


def _load(model_or_checkpoint: nn.Module | str | Path, config: str | Path | None) -> nn.Module:
    if isinstance(model_or_checkpoint, (str, Path)):
        from im2im_core.export.imported import PackagedModel, is_package

        if is_package(model_or_checkpoint):
            return PackagedModel(str(model_or_checkpoint))
        return load_model(model_or_checkpoint, config)
    return model_or_checkpoint


def _guess_dims(ndim: int, net_dims: int, slice_by_slice: bool) -> str:
    spatial = "ZYX" if net_dims == 3 or slice_by_slice else "YX"
    options = {len(spatial): spatial, len(spatial) + 1: "C" + spatial, 5: "TCZYX"}
    if ndim not in options:
        raise DataError(f"cannot tell the axes of a {ndim}-D array for a {net_dims}D network; pass dims (e.g. 'CZYX')")
    return options[ndim]


def _lazy(array: Any) -> Any:
    """Numpy and torch arrays as they are; anything else (zarr, h5py, ...) as a lazy dask array."""
    if isinstance(array, (np.ndarray, torch.Tensor)) or hasattr(array, "compute"):
        return array
    import dask.array as da

    return da.from_array(array, chunks=getattr(array, "chunks", "auto"))


def percentiles(array: Any, low: float, high: float) -> tuple[float, float]:
    """``low`` and ``high`` percentiles of ``array``; a lazy array is subsampled on a regular grid."""
    if isinstance(array, torch.Tensor):
        array = array.cpu().numpy()
    if not isinstance(array, np.ndarray) and array.size > PERCENTILE_SAMPLE:
        step = math.ceil((array.size / PERCENTILE_SAMPLE) ** (1 / 3))
        array = array[(..., *[slice(None, None, step)] * min(3, array.ndim))]
    sample = computed(array)
    lo, hi = np.percentile(sample, (low, high))
    return float(lo), float(hi)


def moments(array: Any) -> tuple[float, float]:
    """Mean and standard deviation of ``array``; a lazy array is subsampled as for :func:`percentiles`."""
    if isinstance(array, torch.Tensor):
        array = array.cpu().numpy()
    if not isinstance(array, np.ndarray) and array.size > PERCENTILE_SAMPLE:
        step = math.ceil((array.size / PERCENTILE_SAMPLE) ** (1 / 3))
        array = array[(..., *[slice(None, None, step)] * min(3, array.ndim))]
    sample = np.asarray(computed(array), dtype=np.float64)
    return float(sample.mean()), float(sample.std())


#: What ``predict(normalize=...)`` takes: percentiles, fixed statistics, "zscore", "auto" or None.
Normalize = tuple[float, float] | MeanStd | Literal["zscore", "auto"] | None


def _normalization(image: Any, normalize: tuple[float, float] | MeanStd | Literal["zscore"] | None) -> MeanStd | None:
    """The map ``(x - mean) / std`` of ``image`` (one timepoint, channel-first): fixed statistics as
    they are, or ``normalize`` percentiles mapped to 0 and 1.
    """
    if normalize is None or isinstance(normalize, MeanStd):
        return normalize
    if normalize == "zscore":
        mean, std = moments(image)
        return MeanStd((mean,), (std if std > 0 else 1.0,))
    low, high = percentiles(image, *normalize)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise DataError("the image has NaN or infinite pixels; replace them (e.g. numpy.nan_to_num) before predicting")
    return MeanStd((low,), (max(high - low, 1e-12),))


def _checked_channels(stats: MeanStd, channels: int, what: str) -> None:
    if len(stats.mean) not in (1, channels):
        raise DataError(f"the normalization has statistics for {len(stats.mean)} channels but the {what} has "
                        f"{channels} (the model was trained on images with another number of channels)")


def _normalizer(stats: MeanStd | None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The normalization ``(x - mean) / std`` of each window ``(C, *spatial)``, or None."""
    if stats is None:
        return None

    def normalized(window: torch.Tensor) -> torch.Tensor:
        _checked_channels(stats, window.shape[0], "image")
        mean, std = stats.shaped(window.ndim, window)
        return (window - mean) / std

    return normalized


def _restorer(stats: MeanStd | None, framework: Framework) -> Callable[[torch.Tensor], torch.Tensor]:
    """The inverse of the normalization for a framework whose outputs are in the input's units, else identity."""
    if stats is None or not framework.output_in_input_units():
        return lambda block: block

    def restored(block: torch.Tensor) -> torch.Tensor:
        _checked_channels(stats, block.shape[0], "output")
        mean, std = stats.shaped(block.ndim, block)
        return block * std + mean

    return restored


def resolve_normalize(normalize: Normalize, model_or_checkpoint: Any) -> tuple[float, float] | MeanStd | str | None:
    """``normalize`` with ``"auto"`` resolved: the training-set statistics a checkpoint holds
    (:class:`~im2im_core.data.normalization.TrainingSetNormalized`), else percentiles (0.5, 99.5).
    """
    if normalize != "auto":
        if normalize is not None and normalize != "zscore" and not isinstance(normalize, MeanStd) and len(normalize) != 2:
            raise ConfigError(f"normalize {normalize!r}: expected two percentiles (low, high), a MeanStd, 'zscore', "
                              f"'auto' or None")
        return normalize
    from im2im_core.export.imported import PackagedModel, is_package

    if isinstance(model_or_checkpoint, PackagedModel):
        return model_or_checkpoint.normalization()[1]
    if isinstance(model_or_checkpoint, (str, Path)) and is_package(model_or_checkpoint):
        return PackagedModel(str(model_or_checkpoint)).normalization()[1]
    if isinstance(model_or_checkpoint, (str, Path)):
        stored = training_statistics(read_checkpoint(model_or_checkpoint))
        if stored is not None:
            return stored
    return DEFAULT_PERCENTILES


def _finite(image: Any, prepare: Callable[[torch.Tensor], torch.Tensor] | None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``prepare``, after a check that ``image`` has no NaN or infinite pixel: at once for an image in
    memory, window by window for a lazy one (so it is read once).
    """
    message = "the image has NaN or infinite pixels; replace them (e.g. numpy.nan_to_num) before predicting"
    dtype = image.dtype if not isinstance(image, torch.Tensor) else None
    if dtype is not None and not np.issubdtype(np.dtype(dtype), np.floating):
        return prepare  # integer pixels are always finite
    if isinstance(image, (np.ndarray, torch.Tensor)):
        finite = bool(torch.isfinite(image).all()) if isinstance(image, torch.Tensor) else bool(np.isfinite(image).all())
        if not finite:
            raise DataError(message)
        return prepare

    def checked(window: torch.Tensor) -> torch.Tensor:
        if not bool(torch.isfinite(window).all()):
            raise DataError(message)
        return prepare(window) if prepare is not None else window

    return checked


def _resolve_window(options: Inference, defaults: WindowDefaults, spatial: tuple[int, ...],
                    net_dims: int) -> tuple[list[int], int]:
    """Window (one entry per spatial axis of the image) and windows per batch."""
    roi = options.roi_size if options.roi_size is not None else defaults.roi_size
    batch = options.sw_batch_size
    if roi is None or roi == "auto":
        batch = batch or 1
        plane = spatial[-net_dims:]
        roi = auto_window(plane, max(1, options.max_window_voxels // batch), options.overlap or defaults.overlap,
                          options.align or MAX_AUTO_ALIGN)
    else:
        batch = batch or defaults.sw_batch_size
    roi = [int(r) for r in roi][-net_dims:]
    return ([1] * (len(spatial) - net_dims) + roi), batch


@dataclasses.dataclass(frozen=True)
class Tiling:
    """How one image is cut into windows: window, windows per batch, joining mode, halo, alignment."""

    roi: list[int]
    batch: int
    mode: str
    overlap: float
    halo: list[int] | None
    align: int | None


def _resolve_tiling(settings: Inference, defaults: WindowDefaults, spatial: tuple[int, ...], net_dims: int,
                    measure: Callable[[list[int], int, list[int | None]], Locality | None],
                    stream: Callable[[list[int]], str | None] | None = None) -> Tiling:
    """A streamed pass where it can run, else crop tiling where it is exact and no more work than
    blending (``mode`` auto), else blending.

    ``stream(padded)`` says why a streamed pass over the image padded to ``padded`` cannot run
    (the network cannot be streamed, or the pass needs more than ``max_stream_bytes``), or None
    where it can; None in place of the function: no streaming (in ``auto`` mode off the CPU or in 2D).

    ``measure(roi, align, limit)`` gives the halo per spatial axis and the pixel grid that crop
    tiling of windows ``roi`` needs, or None where the network is not local or the halo exceeds
    ``limit`` (``receptive_field.measure_locality``); it runs only when the choice needs it. An
    axis that one window covers is not measured (no seam crosses it) and stays whole. In
    ``auto`` mode a halo above the blend's overlap on either side could not make crop tiling
    cheaper, so the measurement stops there. Crop windows are sized and start on multiples of the
    network's grid, so that an image whose size is a multiple of it is tiled exactly to its end.
    """
    roi, batch = _resolve_window(settings, defaults, spatial, net_dims)
    overlap = settings.overlap if settings.overlap is not None else defaults.overlap
    blend = Tiling(roi, batch, "gaussian" if settings.mode in ("auto", "crop") else settings.mode, overlap, None,
                   settings.align)
    if settings.mode in ("gaussian", "constant"):
        return blend
    requested = settings.roi_size if settings.roi_size is not None else defaults.roi_size
    automatic = requested is None or requested == "auto"  # a window someone asked for is kept
    if settings.mode == "stream" or settings.mode == "auto" and automatic and stream is not None \
            and len(spatial) == net_dims == 3:
        grid = settings.align or MAX_AUTO_ALIGN
        padded = [math.ceil(s / grid) * grid for s in spatial]
        whole = tiling_work(spatial, roi, overlap, settings.align or auto_align(roi)) == math.prod(padded)
        reason = "a 2D network applied plane by plane is not streamed" if len(spatial) != net_dims else None
        if reason is None and not (settings.mode == "auto" and whole):  # one window is already one pass
            reason = stream(padded) if stream is not None else "no streamed network was given"
            if reason is None:
                return Tiling(padded, 1, "stream", overlap, [0] * len(spatial), grid)
        if settings.mode == "stream":
            raise ConfigError(f"prediction.inference.mode stream: {reason}; use mode auto")
    align = settings.align or auto_align(roi)
    if settings.mode == "auto" and tiling_work(spatial, roi, overlap, align) == math.prod(
            max(r, math.ceil(s / align) * align) for s, r in zip(spatial, roi)):
        return blend  # one window covers the image: nothing to join
    whole = [len(axis_starts(s, r, overlap, align)) == 1 for s, r in zip(spatial, roi)]  # axes no seam crosses
    if settings.halo is not None:
        if len(settings.halo) != net_dims:
            raise ConfigError(f"prediction.inference.halo {settings.halo} needs {net_dims} entries, one per spatial axis "
                              f"of the network")
        # the user's halo, on the alignment's grid: nothing is measured
        locality: Locality | None = Locality([0] * (len(spatial) - net_dims) + [int(h) for h in settings.halo], align)
    else:
        limit = [None if w else math.ceil(overlap * r) if settings.mode == "auto" else r // 2 for w, r in zip(whole, roi)]
        locality = measure(roi, align, limit)
    if locality is None:
        if settings.mode == "crop":
            raise ConfigError("prediction.inference.mode crop: the network's output at a pixel depends on the whole window "
                              "(instance or group norms, attention, a receptive field wider than half the window) or it "
                              "refuses small probe windows; use mode gaussian, or give prediction.inference.halo to crop "
                              "anyway (approximate)")
        return blend
    requested = settings.roi_size if settings.roi_size is not None else defaults.roi_size
    grid = locality.grid
    fitted = [r if r == 1 else math.ceil(s / grid) * grid for s, r in zip(spatial, roi)]  # the image, on the grid
    crop_roi = [min(f, r) if w else r for f, r, w in zip(fitted, roi, whole)]  # a window as wide as the image ends with it
    try:
        if requested is None or requested == "auto":
            keep_whole = [f if w else h for f, w, h in zip(fitted, whole, locality.halo)]  # a whole axis stays whole
            plane = auto_window(spatial[-net_dims:], max(1, settings.max_window_voxels // batch), overlap, grid,
                                halo=keep_whole[-net_dims:])
            crop_roi = [1] * (len(spatial) - net_dims) + plane
        crop_work = tiling_work(spatial, crop_roi, overlap, grid, locality.halo)
    except ValueError as exc:  # the halo leaves no core inside the window
        if settings.mode == "crop":
            raise ConfigError(f"prediction.inference.mode crop: {exc}; use a larger roi_size or mode gaussian") from None
        return blend
    if settings.mode == "auto" and crop_work > tiling_work(spatial, roi, overlap, align):
        return blend
    return Tiling(crop_roi, batch, "crop", overlap, locality.halo, grid)


def _layout(options: Inference, net_dims: int, device: torch.device) -> torch.memory_format | None:
    """The memory format windows are given to the network in: channels-last for an optimized copy on the CPU."""
    return channels_last(net_dims) if options.optimize and device.type == "cpu" else None


def streamed_network(framework: Framework, module: nn.Module, options: Inference, device: torch.device,
                     channels: int) -> StreamedNetwork:
    """The framework's window network itself (no folded copy: its batch norms run per channel in
    each step) as a :class:`~im2im_core.inference.streaming.StreamedNetwork`, traced once per
    module, weights and layout (channels-last on the CPU with ``options.optimize``).

    Raises
    ------
    NotStreamable
        If it cannot be streamed (remembered: the next call raises at once).
    """
    net_dims = framework.spatial_dims
    key = (channels, options.optimize, str(device), options.align or MAX_AUTO_ALIGN, weights_signature(module))
    known = _STREAMED.setdefault(module, {})
    if key not in known:
        try:  # the module itself, batch norms applied per channel: no folded copy of its weights is held
            known[key] = StreamedNetwork(framework.window_network(), channels, net_dims, options.align or MAX_AUTO_ALIGN,
                                         _layout(options, net_dims, device), device)
        except NotStreamable as exc:
            known[key] = exc
    if isinstance(known[key], NotStreamable):
        raise known[key]
    return known[key]


def build_predictor(framework: Framework, options: Inference, device: torch.device, image_dims: int,
                    network: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function from a batch of windows to raw outputs: optimized network, TTA, AMP, slicing.

    ``network``: what computes a batch in place of the framework's window network (a streamed pass of it).
    """
    net_dims = framework.spatial_dims
    if network is not None:
        forward = network
    else:
        forward = optimized_copy(framework.window_network(), net_dims, device) if options.optimize \
            else framework.window_network()
    layout = _layout(options, net_dims, device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)) \
        if options.amp else nullcontext

    def run(x: torch.Tensor) -> torch.Tensor:
        with autocast():
            return forward(x.contiguous(memory_format=layout) if layout is not None else x).float()

    augmented = with_tta(run, net_dims, options.tta, inverse=framework.tta_inverse)
    if image_dims == net_dims:
        return augmented
    return lambda x: augmented(x[:, :, 0])[:, :, None]  # a 2D network on windows one plane thick


def _streamed_image(predictor: Callable[[torch.Tensor], torch.Tensor], image: Any, padded: list[int],
                    padding_mode: str, prepare: Callable[[torch.Tensor], torch.Tensor] | None,
                    device: torch.device) -> torch.Tensor:
    """The raw output ``(C_out, *spatial)`` of one streamed pass over ``image`` ``(C, *spatial)``,
    padded at its end to ``padded`` as windows are (nothing is copied where it needs no padding).
    """
    spatial = tuple(int(n) for n in image.shape[1:])
    whole = read_region(image, (slice(None), *(slice(0, n) for n in spatial)))
    window = window_of(whole, [0] * len(spatial), padded, padding_mode, prepare)  # type: ignore[arg-type]
    output = predictor(window[None].to(device))[0]
    return output[(slice(None), *(slice(0, n) for n in spatial))].to(torch.float32)


def _finisher(framework: Framework, postprocess: Postprocess | Literal["auto"] | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-pixel part of post-processing, applied to each finished band ``(C, rows, ...)``."""
    if isinstance(postprocess, Postprocess):
        return postprocess.pointwise
    if postprocess == "auto":
        return lambda block: framework.postprocess(block[None])[0]
    return lambda block: block


class _Collector:
    """Receives finished bands, post-processes them, and fills an array or an OME-Zarr store.

    The output axes are the input's; a C axis is added at the first band if the network gives
    several channels and the input has none.
    """

    def __init__(self, shape: tuple[int, ...], dims: str, finish: Callable[[torch.Tensor], torch.Tensor],
                 store: Callable[[tuple[int, ...], str, Any], ZarrOutput] | None) -> None:
        self.shape, self.dims, self.finish, self.store_factory = shape, dims, finish, store
        self.out_dims = dims
        self.target: np.ndarray | ZarrOutput | None = None

    def add(self, index: tuple[int, ...], region: tuple[slice, ...], block: torch.Tensor, owned: bool = False) -> None:
        """Store the output ``block`` at spatial ``region`` of timepoint ``index`` (empty without T).

        ``owned``: ``block`` is the whole output of a single image, and nothing else holds it; it
        becomes the result without a copy where the result is an array in memory.
        """
        final = self.finish(block).cpu().numpy()
        if owned and self.target is None and self.store_factory is None and not index:
            self.out_dims = self.dims if final.shape[0] == 1 else with_channels(self.dims)
            self.target = final[0] if "C" not in self.out_dims else final
            return
        if self.target is None:
            self.out_dims = self.dims if final.shape[0] == 1 else with_channels(self.dims)
            shape = tuple(final.shape[0] if a == "C" else self.shape[self.dims.index(a)] for a in self.out_dims)
            self.target = (self.store_factory(shape, self.out_dims, final.dtype) if self.store_factory
                           else np.zeros(shape, final.dtype))
        if "C" not in self.out_dims:
            final = final[0]
        channels = (slice(0, final.shape[0]),) if "C" in self.out_dims else ()
        full = (*(slice(i, i + 1) for i in index), *channels, *region)
        final = final.reshape((1,) * len(index) + final.shape)
        if isinstance(self.target, np.ndarray):
            self.target[full] = final
        else:
            self.target.write(full, final)


def _whole_image(result: np.ndarray, dims: str, postprocess: Postprocess) -> np.ndarray:
    """Labelling and small-object removal of each timepoint ``(C, *spatial)`` of ``result``."""
    first_spatial = dims.index(spatial_of(dims)[0])
    with_c = result if "C" in dims else np.expand_dims(result, first_spatial)
    lead = with_c.shape[: 1 if "T" in dims else 0]
    parts = [postprocess.whole_image(with_c[i]) for i in np.ndindex(*lead)] if lead else [postprocess.whole_image(with_c)]
    stacked = np.stack(parts) if lead else parts[0]
    return stacked if "C" in dims else np.squeeze(stacked, axis=first_spatial)


def predict(model_or_checkpoint: nn.Module | str | Path, array: Any, *, dims: str | None = None,
            inference: Inference | None = None, postprocess: Postprocess | Literal["auto"] | None = "auto",
            normalize: Normalize = None, device: str | torch.device | None = None,
            config: str | Path | None = None,
            store: Callable[[tuple[int, ...], str, Any], ZarrOutput] | None = None,
            progress: Callable[[int, int], None] | None = None, **options: Any) -> np.ndarray | None:
    """Predict a whole image with sliding windows and return (or store) the output.

    Parameters
    ----------
    model_or_checkpoint : torch.nn.Module or path
        A framework (e.g. ``FCN``, anything with the members of
        :class:`~im2im_core.protocols.Framework`), a bare network, or a ``.ckpt`` file of
        ``im2im fit`` (it holds its run's config; or pass ``config``), or a bioimage.io model
        package (``.zip``, folder or ``rdf.yaml``; its own pre- and post-processing apply).
    array : numpy, torch, dask or zarr array
        The image, axes ``dims``. Lazy arrays are read one band of windows at a time.
    dims : str, optional
        Axes of ``array``, letters of ``"TCZYX"`` in that order; default: guessed from the
        number of axes (``YX``/``CYX`` for a 2D network, ``ZYX``/``CZYX``/``TCZYX`` for 3D).
        Each timepoint is predicted in turn. The output has the same axes, except that a
        missing C axis is added when the network gives several channels.
    inference : Inference, optional
        Window, overlap, blending, TTA, slicing options; keyword ``options`` override fields.
    postprocess : Postprocess, "auto" or None
        ``auto``: the framework's ``whole_image_postprocess()`` if it is not None (e.g.
        EmbedSeg's clustering), else its per-pixel ``postprocess`` (e.g. FCN masks), raw
        output for a bare network; ``None``: raw output.
    normalize : (float, float), MeanStd, "auto" or None
        Percentiles of the input mapped to 0 and 1 before prediction (training normalizes
        with (0.5, 99.5) by default), of each timepoint on its own; estimated on a subsample
        for lazy arrays of more than 2**24 pixels. A :class:`~im2im_core.data.normalization.MeanStd`:
        ``(x - mean) / std`` with those fixed statistics. ``"auto"``: the training set's
        statistics stored in the checkpoint by ``im2im fit`` (a ``TrainingSetNormalized``
        config), a package's own input steps, else the percentiles (0.5, 99.5). ``None``: the
        input is used as it is (but a bioimage.io package always gets its own input steps: they
        are part of its model). ``"zscore"``: the mean and std of each timepoint (subsampled
        like the percentiles). A
        framework whose ``output_in_input_units()`` is True (denoising) gets its outputs mapped
        back through the inverse of this normalization, into the input's units.
    device : str or torch.device, optional
        Default: where the model's parameters are.
    store : callable, optional
        ``store(shape, dims, dtype)`` returning a :class:`ZarrOutput`: the output is written
        there band by band, in whole chunks of ``default_chunks``, and None is returned.
    progress : callable, optional
        ``progress(done, total)`` windows of the current timepoint.

    Returns
    -------
    numpy.ndarray or None

    Examples
    --------
    >>> from im2im_core.inference import predict, Postprocess
    >>> mask = predict("run/checkpoints/last.ckpt", image, normalize=(0.5, 99.5), tta="flips")
    >>> labels = predict(model, stack, dims="ZYX", slice_by_slice=True, roi_size=[256, 256],
    ...                  postprocess=Postprocess("sigmoid", 0.5, label=True, min_size=30))
    """
    settings = dataclasses.replace(inference or Inference(), **options)
    module = _load(model_or_checkpoint, config)
    from im2im_core.export.imported import PackagedModel

    if isinstance(module, PackagedModel) and normalize is None:
        normalize = "auto"  # a package's pre-processing is part of its model
    normalize = resolve_normalize(normalize, module if isinstance(module, PackagedModel) else model_or_checkpoint)
    framework = as_framework(module, dims, settings.slice_by_slice)
    if postprocess == "auto":  # e.g. clustering, which needs the whole image
        postprocess = framework.whole_image_postprocess() or "auto"
    training = module.training
    try:
        module.eval()
        return _predict(framework, module, array, dims, settings, postprocess, normalize, device, store, progress)
    finally:
        module.train(training)


def _predict(framework: Framework, module: nn.Module, array: Any, dims: str | None, settings: Inference,
             postprocess: Postprocess | Literal["auto"] | None, normalize: tuple[float, float] | MeanStd | str | None,
             device: str | torch.device | None, store: Callable[[tuple[int, ...], str, Any], ZarrOutput] | None,
             progress: Callable[[int, int], None] | None) -> np.ndarray | None:
    """:func:`predict` for a framework whose module is in eval mode."""
    first = next(module.parameters(), None)
    device = torch.device(device) if device is not None else (first.device if first is not None else torch.device("cpu"))
    net_dims = framework.spatial_dims
    dims = dims or _guess_dims(array.ndim, net_dims, settings.slice_by_slice)
    if len(dims) != array.ndim or not is_ordered(dims):
        raise DataError(f"dims {dims!r} do not fit an array of shape {tuple(array.shape)} (letters of 'TCZYX' in order)")
    spatial_letters = spatial_of(dims)
    spatial = tuple(int(array.shape[dims.index(a)]) for a in spatial_letters)
    if len(spatial) != net_dims and not (settings.slice_by_slice and net_dims == 2 and len(spatial) == 3):
        hint = "; set slice_by_slice to apply a 2D network to each plane" if net_dims == 2 and len(spatial) == 3 else ""
        raise ConfigError(f"a {net_dims}D network cannot predict an image with spatial axes {dims!r}{hint}")
    predictor = build_predictor(framework, settings, device, len(spatial))
    channels = int(array.shape[dims.index("C")]) if "C" in dims else 1

    def measure(roi: list[int], align: int, limit: list[int | None]) -> Locality | None:
        def probe(x: torch.Tensor) -> torch.Tensor:  # without mixed precision: rounding would hide weak dependence
            if not settings.amp:
                return predictor(x)
            if not exact:
                exact.append(build_predictor(framework, dataclasses.replace(settings, amp=False), device, len(spatial)))
            return exact[0](x)

        exact: list[Callable[[torch.Tensor], torch.Tensor]] = []
        key = (tuple(roi), channels, align, tuple(limit), settings.tta, settings.slice_by_slice, str(device))
        return measure_locality(probe, channels, roi, align, device, limit, owner=module, key=key)

    streamed: list[StreamedNetwork] = []

    def stream(padded: list[int]) -> str | None:
        try:
            network = streamed_network(framework, module, settings, device, channels)
            network.check(stream_order(padded))
            kept, out_channels = network.memory(padded)
        except NotStreamable as exc:
            return f"the network cannot be streamed: {exc}"
        buffers = 4 * math.prod(padded) * (3 * channels + 3 * out_channels)  # input, prepared, output copies
        if kept + buffers > settings.max_stream_bytes:
            return (f"a streamed pass over {padded} would hold {(kept + buffers) / 2**30:.2f} GiB, above "
                    f"prediction.inference.max_stream_bytes ({settings.max_stream_bytes / 2**30:.2f} GiB)")
        streamed.append(network)
        return None

    # auto: 3D networks on the CPU, where windows recompute a U-Net's wide halo (a 3D fnet's blend costs 1.57
    # whole passes, its stream 1.09-1.13: bench_predict.py); in 2D crop tiling measured 4x faster (bench_stream.py)
    use_stream = settings.mode == "stream" or settings.mode == "auto" and device.type == "cpu" and net_dims == 3
    tiling = _resolve_tiling(settings, framework.window_defaults(), spatial, net_dims, measure,
                             stream if use_stream else None)
    if tiling.mode == "stream":
        predictor = build_predictor(framework, settings, device, len(spatial), network=streamed[-1])
    whole = isinstance(postprocess, Postprocess) and postprocess.needs_whole_image
    source = _lazy(array)
    emit_multiple = default_chunks(spatial, spatial_letters) if store is not None and not whole else 1
    collector = _Collector(tuple(int(n) for n in array.shape), dims, _finisher(framework, postprocess), None if whole else store)
    with torch.inference_mode():
        for index in np.ndindex(*([int(array.shape[0])] if "T" in dims else [])):
            image = source[index] if index else source
            image = image if "C" in dims else image[None]
            stats = _normalization(image, normalize)
            prepare, restore = _finite(image, _normalizer(stats)), _restorer(stats, framework)
            if tiling.mode == "stream":
                output = _streamed_image(predictor, image, tiling.roi, settings.padding_mode, prepare, device)
                collector.add(index, tuple(slice(0, n) for n in spatial), restore(output), owned=True)
                if progress is not None:
                    progress(1, 1)
                continue
            predict_windows(predictor, image, tiling.roi, tiling.overlap, tiling.batch, tiling.mode,  # type: ignore[arg-type]
                            sigma_scale=settings.sigma_scale, edge_trim=settings.edge_trim, align=tiling.align,
                            padding_mode=settings.padding_mode, device=device, prepare=prepare,
                            sink=lambda region, block, i=index, r=restore: collector.add(i, region, r(block)),
                            progress=progress, emit_multiple=emit_multiple, halo=tiling.halo)
    if not whole:
        return collector.target if store is None else None  # type: ignore[return-value]
    result = _whole_image(collector.target, collector.out_dims, postprocess)  # type: ignore[arg-type]
    if store is None:
        return result
    store(result.shape, collector.out_dims, result.dtype).write(tuple(slice(0, n) for n in result.shape), result)
    return None
