"""How far a network's output at a pixel sees, measured on the network itself.

Crop tiling (``Inference.mode`` ``crop``) keeps of each window only the pixels at least a
*halo* away from the borders it shares with other windows. For a network whose output at a
pixel depends only on input pixels within the halo (its receptive field), and that computes
the same function wherever a window starts on its pixel grid (translation equivariance for
shifts of the window alignment), the kept pixels are exactly those of one pass over the whole
image: no blending, and no pixel computed twice beyond the halos.

Which networks qualify is measured, not looked up by class: convolutional networks with
batch norms (folded at inference) do, with a receptive field their depth sets (MONAI's UNet of
the ``semanticseg_2d`` preset sees 23 pixels, the ``fnet`` of depth 4 94 pixels); a network
with instance or group norms, attention over the window, or a receptive field wider than half
the window (the branched ERFNet of EmbedSeg, whose dilated convolutions see hundreds of
pixels) does not, and is blended.

The measurement is black-box (any predictor, TorchScript or ONNX packages too): along each
axis, a window of the size prediction will use, one or two alignment steps thin along the
other axes, is filled with noise; the input beyond a distance ``r`` from its centre is
replaced by other noise, and the smallest ``r`` that leaves the output at the centre unchanged
is found by bisection. Passes of the same input shifted by 1, 2, 4, ... pixels find the
smallest shift that shifts the output alike (the network's pixel grid, the product of its
strides): windows start on multiples of it. About ``2 * log2(window)`` small passes per axis.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

Predictor = Callable[[torch.Tensor], torch.Tensor]

#: Largest change of the centre output, relative to its largest magnitude, that counts as unchanged:
#: float32 rounding of reordered sums, far below what any real dependence gives.
TOLERANCE = 1e-6

#: Scale of the noise that replaces the input far from the centre: a weak but real dependence (a
#: random-weight U-Net's deepest levels add ~1e-8 of the output) grows above float rounding.
FAR_AMPLITUDE = 1e4

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _unchanged(output: torch.Tensor, reference: torch.Tensor) -> bool:
    """Whether ``output`` equals ``reference`` up to float rounding (relative to the reference's magnitude)."""
    if not bool(torch.isfinite(output).all()):
        return False
    return float((output - reference).abs().max()) <= TOLERANCE * float(reference.abs().max()) + 1e-30


class _AxisProbe:
    """Noise windows along one axis (thin along the others) and the output at their centre."""

    def __init__(self, predictor: Predictor, channels: int, roi: Sequence[int], axis: int, align: int,
                 generator: torch.Generator, device: torch.device) -> None:
        self.predictor, self.axis, self.align, self.device = predictor, axis, align, device
        self.length = int(roi[axis])
        self.dims = len(roi)
        shape = [self.length + align if a == axis else min(int(r), 2 * align) for a, r in enumerate(roi)]
        self.noise = torch.randn((1, channels, *shape), generator=generator)
        self.other = torch.randn((1, channels, *shape), generator=generator) * FAR_AMPLITUDE
        self.centre = self.length // 2
        self.widest = min(self.centre, self.length - 1 - self.centre) - 1
        self.reference = self._centre_output(self.noise, 0)

    def _along(self, lo: int, hi: int) -> tuple[slice, ...]:
        return (slice(None), slice(None), *(slice(lo, hi) if a == self.axis else slice(None) for a in range(self.dims)))

    def _centre_output(self, x: torch.Tensor, shift: int) -> torch.Tensor:
        output = self.predictor(x[self._along(shift, shift + self.length)].to(self.device)).float().cpu()
        return output[self._along(self.centre - shift, self.centre - shift + 1)]

    def unchanged_beyond(self, radius: int) -> bool:
        """Whether replacing every input pixel farther than ``radius`` from the centre leaves its output as it was."""
        mixed = self.other.clone()
        near = self._along(self.centre - radius, self.centre + radius + 1)
        mixed[near] = self.noise[near]
        return _unchanged(self._centre_output(mixed, 0), self.reference)

    def grid(self) -> int | None:
        """The smallest shift (a power of two up to the alignment) of the window that gives the centre the
        same output: the network's pixel grid (the product of its strides), or None.
        """
        shift = 1
        while shift <= self.align:
            if _unchanged(self._centre_output(self.noise, shift), self.reference):
                return shift
            shift *= 2
        return None


@dataclass(frozen=True)
class Locality:
    """What crop tiling needs of a network: its halo per spatial axis and its pixel grid.

    Attributes
    ----------
    halo : list of int
        Receptive-field radius per spatial axis (0 for axes of size 1).
    grid : int
        Smallest window shift that shifts the output alike (the product of the network's
        strides); windows that start on multiples of it, and images whose size is a multiple
        of it, give one whole-image pass exactly.
    """

    halo: list[int]
    grid: int


def measure_locality(predictor: Predictor, channels: int, roi: Sequence[int], align: int,
                     device: torch.device | str = "cpu", limit: Sequence[int | None] | None = None,
                     owner: object | None = None, key: tuple | None = None) -> Locality | None:
    """The receptive field and pixel grid of ``predictor`` at windows of ``roi``; None if it is not local.

    Parameters
    ----------
    predictor : callable
        Windows ``(B, C, *spatial)`` to outputs of the same spatial size (as in prediction).
    channels : int
        Input channels.
    roi : sequence of int
        The window prediction will use; axes of size 1 get a halo of 0.
    align : int
        Largest grid looked for (window starts are multiples of it).
    device : torch.device or str
        Where ``predictor`` runs.
    limit : sequence of int or None, optional
        Largest halo of use per axis (a wider one is reported as None after one pass); an entry
        None: the axis is not measured (halo 0: no seam crosses it, one window covers it);
        default: half the window on every axis.
    owner, key : optional
        Cache the result under ``key`` for as long as ``owner`` (e.g. the framework) lives; the
        receptive field is a property of the architecture, not of the weights.

    Returns
    -------
    Locality or None
        None where some axis' output depends on input beyond ``limit`` or the window's edges
        (instance or group norms, attention, a wide receptive field) or on where the window
        starts (no shift up to ``align`` keeps it).
    """
    if owner is not None and key is not None and key in _CACHE.get(owner, {}):
        return _CACHE[owner][key]
    generator = torch.Generator().manual_seed(0)
    halos, grid = [0] * len(roi), 1
    local = True
    with torch.inference_mode():
        probes = {}
        for axis, size in enumerate(roi):  # every axis' widest useful halo first: a non-local network fails fast
            if int(size) == 1 or (limit is not None and limit[axis] is None):
                continue
            probe = _AxisProbe(predictor, channels, roi, axis, align, generator, torch.device(device))
            highest = probe.widest if limit is None else min(probe.widest, int(limit[axis]))  # type: ignore[arg-type]
            if highest < 0 or not probe.unchanged_beyond(highest):
                local = False
                break
            probes[axis] = (probe, highest)
        for axis, (probe, highest) in probes.items() if local else ():
            low = -1  # unchanged_beyond(highest) holds; bisect for the smallest radius that does
            while highest - low > 1:
                middle = (low + highest) // 2
                low, highest = (low, middle) if probe.unchanged_beyond(middle) else (middle, highest)
            axis_grid = probe.grid()
            if axis_grid is None:
                local = False
                break
            halos[axis], grid = highest, max(grid, axis_grid)
    result = Locality(halos, grid) if local else None
    if owner is not None and key is not None:
        _CACHE.setdefault(owner, {})[key] = result
    return result
