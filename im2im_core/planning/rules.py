"""The rules of ``im2im plan``: from a fingerprint to patch size, network topology, normalization, sampling.

Each rule returns its value and the reason, which the written config carries as a comment.
The topology rule is nnU-Net's (Isensee et al. 2021): an axis is pooled only while its current
spacing is at most twice the finest one and its feature map stays at least
:data:`MIN_FEATURE_MAP` wide, and gets 3-wide kernels only where it is that fine; so a stack
whose planes are more than twice as far apart as its pixels is convolved and pooled in XY only
until pooling XY has made the spacings comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from im2im_core.planning.fingerprint import Fingerprint

#: Pooling stops when an axis would fall below this many feature-map pixels.
MIN_FEATURE_MAP = 4
#: Levels of pooling at most (nnU-Net: 5 in 3D, 6 in 2D is reached only on large patches).
MAX_POOLINGS = {2: 6, 3: 5}
#: Patch voxels per device: what one step of the network on a batch of a few patches fits.
PATCH_VOXELS = {("cpu", 2): 256 * 256, ("cpu", 3): 96 * 96 * 32, ("gpu", 2): 512 * 512, ("gpu", 3): 128 * 128 * 128}
#: Filters of the first level and their cap. nnU-Net's 32 at full resolution make a CPU step of 4 patches of
#: 256 x 256 about 2x slower than 8 (0.39 s against 0.22 s on 2 cores), and a time budget then holds half the steps.
FILTERS = {"cpu": (8, 128), "gpu": (32, 320)}
#: Thinnest objects (5th percentile of inscribed diameters, pixels) for which the CPU plan starts at half resolution:
#: halved, they stay 3 pixels across, a 3 x 3 kernel's width.
STRIDED_FIRST_WIDTH = 6


@dataclass(frozen=True)
class Topology:
    """Kernel sizes and strides per level of a U-Net (MONAI ``DynUNet``'s arguments)."""

    kernels: list[list[int]]
    strides: list[list[int]]

    @property
    def divisor(self) -> list[int]:
        """What each patch side must be a multiple of: the product of its strides."""
        return [int(np.prod([s[a] for s in self.strides])) for a in range(len(self.strides[0]))]

    def filters(self, device: str, strided_first: bool = False) -> list[int]:
        """Filters per level: doubling from the first, capped; twice as many at a first level of half resolution
        (its maps have a quarter of the pixels in 2D).
        """
        first, cap = FILTERS[device]
        first *= 2 if strided_first else 1
        return [min(cap, first * 2**level) for level in range(len(self.strides))]


def _fine(spacing: list[float]) -> list[bool]:
    finest = min(spacing)
    return [s <= 2 * finest for s in spacing]


def topology(patch: list[int], spacing: list[float]) -> tuple[Topology, str]:
    """nnU-Net's rule for kernels and strides of a ``patch`` of voxels of ``spacing``."""
    dims = len(patch)
    current, size = list(spacing), list(patch)
    kernels = [[3 if fine else 1 for fine in _fine(current)]]
    strides = [[1] * dims]
    for _ in range(MAX_POOLINGS[dims]):
        pool = [fine and size[a] // 2 >= MIN_FEATURE_MAP for a, fine in enumerate(_fine(current))]
        if not any(pool):
            break
        stride = [2 if p else 1 for p in pool]
        size = [n // s for n, s in zip(size, stride)]
        current = [c * s for c, s in zip(current, stride)]
        strides.append(stride)
        kernels.append([3 if fine else 1 for fine in _fine(current)])
    plan = Topology(kernels, strides)
    if dims == 3:
        flat = next((i for i, s in enumerate(strides[1:], 1) if s[0] == 2), None)
        z = ("Z is pooled from the first level" if flat == 1 else "Z is never pooled" if flat is None
             else "Z is not pooled in the first level" if flat == 2 else f"Z is not pooled in the first {flat - 1} levels")
        reason = (f"{len(strides) - 1} poolings (spacing {_fmt(spacing)}): {z}, while its spacing is over twice XY's "
                  f"(nnU-Net's rule); feature maps stay >= {MIN_FEATURE_MAP} pixels")
    else:
        reason = f"{len(strides) - 1} poolings of the {_fmt(patch)} patch, down to feature maps of {MIN_FEATURE_MAP} pixels"
    return plan, reason


def first_level(data: Fingerprint, device: str, plan: Topology) -> tuple[bool, str]:
    """Whether the network's first level runs at half resolution (a strided first convolution), and why.

    nnU-Net convolves the first level at full resolution. On the CPU that level dominates a step: for 8 patches of
    256 x 256 on 2 threads, channels-last as im2im trains there, nnU-Net's DynUNet (filters 8-128) takes 0.71 s a
    step, a U-Net of the same depth whose first convolution has stride 2 (filters 16-128) 0.33 s
    (``benchmarks/bench_plan_step.py``), so a time budget holds 2.2x the steps. The strided
    first level is chosen only where the targets show the objects survive it: their thinnest (5th percentile of
    inscribed diameters) at least :data:`STRIDED_FIRST_WIDTH` pixels, and every pooling halving every axis.
    """
    if device != "cpu":
        return False, "first level at full resolution (nnU-Net's): on a GPU it is not what bounds a step"
    if any(s != [2] * len(plan.strides[0]) for s in plan.strides[1:]) or any(k != 3 for k in plan.kernels[0]):
        # MONAI's UNet takes one stride per pooling for every axis (its config type is a list of ints)
        return False, "first level at full resolution: the axes are not pooled alike (anisotropic voxels or patch)"
    width = data.object_width.get("p5")
    if width is None:
        return False, "first level at full resolution: no objects in the targets to measure how thin they get"
    if width < STRIDED_FIRST_WIDTH:
        return False, (f"first level at full resolution: the thinnest objects are {width:.0f} px across (5th "
                       f"percentile of inscribed diameters), under {STRIDED_FIRST_WIDTH}")
    return True, (f"first convolution strided (half resolution, as the semanticseg presets): the thinnest objects are "
                  f"{width:.0f} px across (5th percentile of inscribed diameters; at least {STRIDED_FIRST_WIDTH}), and "
                  f"on the CPU a full-resolution first level makes a step 2.2x slower")


def _fmt(values: list[float] | list[int]) -> str:
    return "x".join(f"{v:g}" for v in values)


def patch_size(data: Fingerprint, device: str) -> tuple[list[int], str]:
    """A patch as close to physically isotropic as the median image allows, within the device's voxel budget."""
    dims = len(data.median_shape)
    budget = PATCH_VOXELS[(device, dims)]
    inverse = [1 / s for s in data.spacing]  # voxels per micrometre: a physically cubic patch
    scale = (budget / math.prod(inverse)) ** (1 / dims)
    patch = [max(1, int(scale * v)) for v in inverse]
    # an axis capped at the median image frees budget for the others
    for _ in range(dims):
        capped = [min(p, n) for p, n in zip(patch, data.median_shape)]
        free = [a for a in range(dims) if capped[a] < data.median_shape[a]]
        if capped == patch or not free:
            patch = capped
            break
        grow = (budget / math.prod(capped)) ** (1 / len(free))
        patch = [min(n, int(c * grow)) if a in free else c for a, (c, n) in enumerate(zip(capped, data.median_shape))]
    guessed = "" if all(data.spacing_known) else ", Z from the shape rule"
    return patch, (f"physically near-isotropic ({_fmt(data.spacing)} um voxels{guessed}), "
                   f"at most {budget} voxels on {device.upper()}, within the median image {_fmt(data.median_shape)}")


def fit_to(patch: list[int], divisor: list[int], median_shape: list[int]) -> list[int]:
    """``patch`` rounded to multiples of ``divisor`` (down, but at least one multiple; up when the image allows)."""
    fitted = []
    for p, d, n in zip(patch, divisor, median_shape):
        down = max(d, p // d * d)
        up = -(-p // d) * d
        fitted.append(up if up <= n and up - p < p - down else down)
    return fitted


def unknown_z_spacing(data: Fingerprint) -> tuple[list[float], str | None]:
    """Spacings with an unknown Z replaced by the shape rule: a stack with far fewer planes than pixels
    across (under half) has planes taken as ``XY / Z`` extent times coarser, capped at 4.

    Most microscopes step in Z several times their pixel size, and files often omit it
    (``physical_pixel_sizes.Z`` None); planning them as isotropic would pool Z away at once.
    """
    if len(data.spacing) != 3 or data.spacing_known[0]:
        return data.spacing, None
    z, xy = data.median_shape[0], min(data.median_shape[1:])
    if 2 * z >= xy:
        return data.spacing, "Z spacing unknown; as many planes as pixels across: taken as isotropic"
    ratio = min(4.0, xy / z)
    spacing = [data.spacing[1] * ratio, *data.spacing[1:]]
    return spacing, (f"Z spacing unknown (not in the files): {z} planes against {xy} pixels across, planes taken as "
                     f"{ratio:.2g}x coarser than pixels; give --spacing Z,Y,X if known")


def normalization(data: Fingerprint) -> tuple[dict[str, float], str]:
    """Percentiles mapped to 0..1: (0.5, 99.5), or 99.9 at the top where the foreground is a sliver of the image."""
    upper = 99.5
    why = "percentiles (0.5, 99.5) of each image to 0..1 (robust to outliers, the data module's default)"
    fg = data.foreground_fraction
    if fg is not None and fg < 0.01:
        upper = 99.9
        why = (f"percentiles (0.5, 99.9): the foreground is {100 * fg:.2g} % of the pixels, so 99.5 would fall in "
               f"the background and saturate every object")
    return {"lower": 0.5, "upper": upper}, why


def sampling(empty_share: float | None) -> tuple[dict[str, object], str]:
    """Uniform patches when nearly all hold foreground, else foreground-centred for the empty share."""
    if empty_share is None:
        return {"sampling": "uniform"}, "no targets: patches drawn uniformly"
    if empty_share <= 0.1:
        return {"sampling": "uniform"}, f"{100 * empty_share:.0f} % of random patches are empty: uniform patches suffice"
    fraction = round(min(0.67, max(0.33, empty_share)), 2)
    return ({"sampling": "foreground", "foreground_fraction": fraction},
            f"{100 * empty_share:.0f} % of random patches hold no foreground: {int(100 * fraction)} % are centred on it")


def embedding_voxel_size(data: Fingerprint) -> tuple[list[float] | None, str | None]:
    """EmbedSeg's ``voxel_size`` of a 3D plan: the data's spacing, so that embeddings, centres and
    sigmas are in physical units (a round nucleus stays round in 0.3 x 0.1 x 0.1 um voxels).
    None for 2D, where the preset's square pixels stand.
    """
    if len(data.spacing) != 3:
        return None, None
    source = "from the files" if all(data.spacing_known) else "Z from the shape rule (not in the files)"
    return [float(f"{s:.6g}") for s in data.spacing], f"the voxel size, {_fmt(data.spacing)} um ({source})"


def offset_range(data: Fingerprint) -> tuple[float | None, str | None]:
    """EmbedSeg's offset range: at least the 95th percentile of object diameters (an object's pixels point at
    its centre from up to half of it away, with margin), not below the preset's 64.
    """
    diameter = data.object_diameter.get("p95")
    if diameter is None:
        return None, None
    value = float(max(64.0, math.ceil(diameter / 16) * 16))
    return value, f"objects up to {diameter:.0f} px across (95th percentile): offsets span +-{value:g} px"
