"""Settings of whole-image prediction, shared by ``im2im predict`` and :func:`im2im_core.inference.predict`."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

from im2im_core.errors import ConfigError
from im2im_core.inference.postprocess import Postprocess
from im2im_core.inference.sliding_window import PaddingMode
from im2im_core.inference.tta import TTAMode

#: How the image is covered: measured choice, one streamed pass, crop tiling, or blending weights (``windows.BlendMode``).
TilingMode = Literal["auto", "stream", "crop", "gaussian", "constant"]

#: Default largest window (pixels) when none is given: a 3D fnet (depth 4, 32 channels) needs
#: about 0.5 kB per pixel of window on the CPU (one forward's peak), so ~0.55 GB, and prediction
#: of a 64 x 512 x 512 stack peaks at 1.86 GB (benchmarks/bench_predict.py).
DEFAULT_MAX_WINDOW_VOXELS = 2**20

#: Default memory a streamed pass may hold (``streaming.py``): the rows each layer keeps plus the
#: image-sized input and output buffers. A 3D fnet (depth 4, 32 channels) streamed over a
#: 64 x 512 x 512 stack keeps 0.75 GB of rows (dry run), and its buffers are counted as 0.4 GB.
DEFAULT_MAX_STREAM_BYTES = 3 * 2**29


@dataclass
class Inference:
    """How a whole image is predicted window by window.

    Parameters
    ----------
    roi_size : list of int or "auto", optional
        Window size, one entry per spatial axis of the network (2 for a 2D network applied
        slice by slice). ``None``: the framework's ``roi_size`` if set, else ``"auto"``: a
        window of at most ``max_window_voxels`` pixels shaped after the image (see
        ``windows.auto_window``).
    max_window_voxels : int
        Size limit of an automatic window, divided by ``sw_batch_size``.
    overlap : float, optional
        Fraction of a window shared with each neighbour; default: the framework's (0.25).
    sw_batch_size : int, optional
        Windows computed together; default: the framework's, 1 with an automatic window.
    mode : {"auto", "stream", "crop", "gaussian", "constant"}
        How the image is covered. ``stream``: no windows; one pass of the network over the
        whole image, computed a few rows at a time along its longest axis, every layer keeping
        only the rows it still needs (``streaming.py``): exact, every pixel computed once, for
        networks made of convolutions, concatenations and per-pixel operators (not instance
        norms or attention). ``crop``: neighbours overlap by twice ``halo`` and
        each keeps only its part away from the shared border, exact (one whole-image pass up to
        float rounding) when the network's receptive field fits in the halo. ``gaussian`` and
        ``constant``: blended with those weights (``overlap``). ``auto``: ``crop`` with the
        receptive field measured on the network (``receptive_field.py``) where the network is
        local and translation-equivariant and crop tiling computes no more pixels than
        blending would, else ``gaussian``; before either, for a 3D network on the CPU with an
        automatic window (no ``roi_size`` given), ``stream`` where the network can be streamed
        and the pass fits in ``max_stream_bytes``
        (in 2D, windows measured faster: ``benchmarks/bench_stream.py``, docs/results.md).
    max_stream_bytes : int
        Memory a streamed pass may hold: the rows each layer keeps (found by a dry run on the
        ``meta`` device) plus the image-sized input and output buffers.
    halo : list of int, optional
        Pixels a window gives up at each shared border in ``crop`` mode, one entry per spatial
        axis of the network; default: measured. A halo smaller than the receptive field makes
        crop tiling approximate.
    sigma_scale : float
        Standard deviation of the Gaussian, a fraction of the window.
    edge_trim : float
        Fraction of each overlap where a window's border pixels get weight 0 (they see the
        window's zero padding); in ``[0, 0.5)``.
    align : int, optional
        Window starts are multiples of it (default: the largest power of two up to 16 that
        divides the window), so networks that downsample see one pixel grid everywhere.
    padding_mode : {"constant", "reflect", "replicate"}
        Filling of windows that reach past the image (``constant``: zeros).
    tta : {"none", "flips", "rot90", "flips_rot90"}
        Test-time augmentation, averaged (see ``tta.symmetries``).
    slice_by_slice : bool
        Apply a 2D network to each Z plane of a 3D image.
    amp : bool
        Mixed precision (float16 on CUDA, bfloat16 on the CPU).
    optimize : bool
        Predict with an inference copy of the network: batch norms folded into convolutions,
        channels-last on the CPU (see ``optimize.py``); exact up to float rounding. A streamed
        pass traces the module itself and applies its batch norms per channel within each step,
        so that no second copy of the weights is held.
    """

    roi_size: list[int] | Literal["auto"] | None = None
    max_window_voxels: int = DEFAULT_MAX_WINDOW_VOXELS
    max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES
    overlap: float | None = None
    sw_batch_size: int | None = None
    mode: TilingMode = "auto"
    halo: list[int] | None = None
    sigma_scale: float = 0.125
    edge_trim: float = 0.25
    align: int | None = None
    padding_mode: PaddingMode = "constant"
    tta: TTAMode = "none"
    slice_by_slice: bool = False
    amp: bool = False
    optimize: bool = True

    def __post_init__(self) -> None:
        """Check the values at once (when a config is parsed), before anything is predicted or written."""
        checks = [
            (self.overlap is None or 0 <= self.overlap < 1, f"overlap {self.overlap} must be in [0, 1)"),
            (self.sw_batch_size is None or self.sw_batch_size >= 1, f"sw_batch_size {self.sw_batch_size} must be >= 1"),
            (self.max_window_voxels >= 1, f"max_window_voxels {self.max_window_voxels} must be >= 1"),
            (self.sigma_scale > 0, f"sigma_scale {self.sigma_scale} must be > 0"),
            (0 <= self.edge_trim < 0.5, f"edge_trim {self.edge_trim} must be in [0, 0.5)"),
            (self.align is None or self.align >= 1, f"align {self.align} must be >= 1"),
            (self.max_stream_bytes >= 0, f"max_stream_bytes {self.max_stream_bytes} must be >= 0"),
            (self.mode in ("auto", "stream", "crop", "gaussian", "constant"),
             f"mode {self.mode!r} must be one of auto, stream, crop, gaussian, constant"),
            (self.halo is None or isinstance(self.halo, (list, tuple)) and all(int(h) >= 0 for h in self.halo),
             f"halo {self.halo} must be a list of numbers of pixels >= 0, one per spatial axis"),
            (not isinstance(self.roi_size, list) or all(int(r) >= 1 for r in self.roi_size),
             f"roi_size {self.roi_size} must be positive numbers of pixels"),
        ]
        for valid, message in checks:
            if not valid:
                raise ConfigError(f"prediction.inference.{message}")


#: ``store(shape, dims, dtype)``: opens the output of one image as a ``ZarrOutput`` to fill band by band.
StoreFactory = Callable[[tuple[int, ...], str, Any], Any]
#: ``open_output(input_path, pixel_sizes)``: a context whose value is the :data:`StoreFactory` of that
#: input's output; the output becomes visible when the block ends without error.
OpenOutput = Callable[[str, dict[str, float]], AbstractContextManager[StoreFactory]]


@dataclass
class PredictionSettings:
    """One prediction run's settings, passed explicitly with the framework (never stored on it).

    Parameters
    ----------
    inference : Inference
        Window, overlap, blending, TTA, slicing, precision options.
    postprocess : Postprocess, "auto" or None
        ``auto``: the framework's own (``whole_image_postprocess()`` or ``postprocess``);
        ``None``: raw outputs.
    progress : callable, optional
        ``progress(done, total)`` windows of the current image or timepoint.
    open_output : callable, optional
        Streams each output to a store (OME-Zarr) instead of returning it; see :data:`OpenOutput`.
    """

    inference: Inference = field(default_factory=Inference)
    postprocess: Postprocess | Literal["auto"] | None = "auto"
    progress: Callable[[int, int], None] | None = None
    open_output: OpenOutput | None = None
