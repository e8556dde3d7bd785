"""How far a network's output at a pixel sees, measured on the network itself.

Crop tiling (``Inference.mode`` ``crop``) keeps of each window only the pixels at least a
*halo* away from the borders it shares with other windows. For a network whose output at a
pixel depends only on input pixels within the halo (its receptive field), and that computes
the same function wherever a window starts on the windows' alignment grid (shift
equivariance for shifts of the alignment, which a network whose strides multiply to a divisor
of it has), the kept pixels are those of one pass over the whole image, up to float rounding,
except near the image's far end where its size is not a multiple of the alignment (the last
window is padded there with zeros, not the network's own padding of each layer).

Which networks qualify is measured, not looked up by class: convolutional networks with
batch norms (folded at inference) do, with a receptive field their depth sets (MONAI's UNet of
the ``semanticseg_2d`` preset sees 23 pixels); a network with instance or group norms,
attention over the window, a fixed input size, or a receptive field wider than the limit
prediction can use (the branched ERFNet of EmbedSeg, whose dilated convolutions see hundreds
of pixels; the 3D fnet of depth 4 in 64-pixel windows) does not, and is blended.

The measurement is black-box (any predictor, TorchScript or ONNX packages too): along each
axis, a window of the size prediction will use, two alignment steps thin along the other axes,
is filled with noise. The input farther than ``r`` from a block of ``align`` positions at the
window's centre is replaced by other noise ten thousand times stronger (so that a weak
dependence rises above float rounding), and the smallest ``r`` that leaves the outputs of the
whole block unchanged is found by bisection. Passes of the window shifted by 1, 2, 4, ...
pixels find the smallest shift that shifts the outputs of its whole interior alike: the
network's grid (the product of its strides). A position of the block at phase ``p`` sees at
most ``r + p`` pixels to one side and ``r + align - 1 - p`` to the other, and phases repeat
every grid, so no kept pixel sees farther than the halo ``r + grid - 1``. Changes count
relative to how much the output varies over the window, so an output dominated by a constant
cannot hide one, and a block whose output does not vary at all is not measured.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

Predictor = Callable[[torch.Tensor], torch.Tensor]

#: Largest change of an output, relative to how much the output varies over the probe window,
#: that counts as unchanged: float32 rounding of reordered sums, far below any real dependence.
TOLERANCE = 1e-6

#: Scale of the noise that replaces the input far from the centre: a weak but real dependence (a
#: random-weight U-Net's deepest levels add ~1e-8 of the output) grows above float rounding.
FAR_AMPLITUDE = 1e4

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _AxisProbe:
    """Noise windows along one axis (thin along the others) and their outputs."""

    def __init__(self, predictor: Predictor, channels: int, roi: Sequence[int], axis: int, align: int,
                 generator: torch.Generator, device: torch.device) -> None:
        self.predictor, self.axis, self.align, self.device = predictor, axis, align, device
        self.length, self.dims = int(roi[axis]), len(roi)
        shape = [self.length + align if a == axis else min(int(r), 2 * align) for a, r in enumerate(roi)]
        self.noise = torch.randn((1, channels, *shape), generator=generator)
        self.other = torch.randn((1, channels, *shape), generator=generator) * FAR_AMPLITUDE
        self.reference = self._output(self.noise, 0)
        self.centre = (self.length // 2) // align * align
        self.block = self._along(self.centre, self.centre + align)
        self.scale = float(self.reference.max() - self.reference.min())
        self.widest = min(self.centre, self.length - self.centre - align) - 1

    def _along(self, lo: int, hi: int) -> tuple[slice, ...]:
        return (slice(None), slice(None), *(slice(lo, hi) if a == self.axis else slice(None) for a in range(self.dims)))

    def _output(self, x: torch.Tensor, shift: int) -> torch.Tensor:
        return self.predictor(x[self._along(shift, shift + self.length)].to(self.device)).float().cpu()

    def _same(self, output: torch.Tensor, reference: torch.Tensor) -> bool:
        if not bool(torch.isfinite(output).all()):
            return False
        return float((output - reference).abs().max()) <= TOLERANCE * self.scale

    @property
    def measurable(self) -> bool:
        """Whether the centre block's output varies at all (a dead block would look independent of everything)."""
        block = self.reference[self.block]
        return bool(torch.isfinite(self.reference).all()) and float(block.max() - block.min()) > 0.0

    def unchanged_beyond(self, radius: int) -> bool:
        """Whether replacing the input farther than ``radius`` from the centre block leaves its outputs as they were."""
        mixed = self.other.clone()
        near = self._along(self.centre - radius, self.centre + self.align + radius)
        mixed[near] = self.noise[near]
        return self._same(self._output(mixed, 0)[self.block], self.reference[self.block])

    def equivariant(self, halo: int, shift: int) -> bool:
        """Whether the window shifted by ``shift`` gives every interior pixel the same output."""
        if self.length - shift - 2 * halo <= 0:
            return False  # no interior pixel sees a whole receptive field in both windows
        inner = self._along(halo, self.length - shift - halo)
        moved = self._along(halo + shift, self.length - halo)
        return self._same(self._output(self.noise, shift)[inner], self.reference[moved])

    def grid(self, halo: int) -> int | None:
        """The smallest shift, a power of two up to the alignment, that shifts the outputs alike, or None."""
        shift = 1
        while shift <= self.align:
            if self.equivariant(halo, shift):
                return shift
            shift *= 2
        return None


def weights_signature(owner: torch.nn.Module) -> tuple[float, ...]:
    """A fingerprint of the weights: a measurement made before training steps is not reused after them."""
    with torch.no_grad():
        return tuple(float(p.detach().double().sum()) for p in owner.parameters())


@dataclass(frozen=True)
class Locality:
    """What crop tiling needs of a network: the halo per spatial axis and its pixel grid.

    Attributes
    ----------
    halo : list of int
        Pixels a window gives up at each border it shares, per spatial axis (0 where unmeasured).
    grid : int
        Smallest window shift that shifts the outputs alike (the product of the network's strides,
        a power of two): windows start on multiples of it, so that an image whose size is a
        multiple of it is tiled exactly up to its far end.
    """

    halo: list[int]
    grid: int


def measure_locality(predictor: Predictor, channels: int, roi: Sequence[int], align: int,
                     device: torch.device | str = "cpu", limit: Sequence[int | None] | None = None,
                     owner: torch.nn.Module | None = None, key: tuple | None = None) -> Locality | None:
    """The halo and pixel grid crop tiling of windows ``roi`` needs, measured on ``predictor``; None if it is not local.

    Parameters
    ----------
    predictor : callable
        Windows ``(B, C, *spatial)`` to outputs of the same spatial size (as in prediction).
    channels : int
        Input channels.
    roi : sequence of int
        The window prediction will use; axes of size 1 get a halo of 0.
    align : int
        The largest grid looked for (a power of two): windows will start on multiples of the grid found.
    device : torch.device or str
        Where ``predictor`` runs.
    limit : sequence of int or None, optional
        Largest halo of use per axis (a wider one is reported as None after one pass); an entry
        None: the axis is not measured (halo 0: one window covers it, no seam crosses it);
        default: about half the window on every axis.
    owner, key : optional
        Cache the result under ``key`` for ``owner`` (the module whose weights the predictor
        uses) while its weights stay the same.

    Returns
    -------
    Locality or None
        None where some measured axis' outputs depend on input beyond ``limit`` or the window's
        edges (instance or group norms, attention, a wide receptive field), are not shifted alike
        by any shift up to ``align``, or cannot be measured (the network refuses the probe
        windows, or its output does not vary).
    """
    if owner is not None and key is not None:
        key = (*key, weights_signature(owner))
        cached = _CACHE.get(owner, {}).get(key, False)
        if cached is not False:
            return cached
    result = _measure(predictor, channels, roi, align, torch.device(device), limit)
    if owner is not None and key is not None:
        _CACHE.setdefault(owner, {})[key] = result
    return result


def _measure(predictor: Predictor, channels: int, roi: Sequence[int], align: int, device: torch.device,
             limit: Sequence[int | None] | None) -> Locality | None:
    generator = torch.Generator().manual_seed(0)
    halos, grid = [0] * len(roi), 1
    try:
        with torch.inference_mode():
            probes = {}
            for axis, size in enumerate(roi):  # every axis' widest useful halo first: a non-local network fails fast
                if int(size) == 1 or (limit is not None and limit[axis] is None):
                    continue
                probe = _AxisProbe(predictor, channels, roi, axis, align, generator, device)
                highest = probe.widest if limit is None else min(probe.widest, int(limit[axis]))  # type: ignore[arg-type]
                if highest < 0 or not probe.measurable or not probe.unchanged_beyond(highest):
                    return None
                probes[axis] = (probe, highest)
            for axis, (probe, highest) in probes.items():
                low = -1  # unchanged_beyond(highest) holds; bisect for the smallest radius that does
                while highest - low > 1:
                    middle = (low + highest) // 2
                    low, highest = (low, middle) if probe.unchanged_beyond(middle) else (middle, highest)
                axis_grid = probe.grid(highest + align - 1)
                if axis_grid is None:
                    return None
                # the block's positions see at most `highest + phase` to one side; phases repeat every grid
                halos[axis], grid = highest + axis_grid - 1, max(grid, axis_grid)
    except Exception:  # a network that refuses the probe windows (a fixed input size, a minimum depth): not measured
        return None
    return Locality(halos, grid)
