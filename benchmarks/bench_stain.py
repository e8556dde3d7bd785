"""Time Macenko stain normalization of the 2967 x 2220 H&E image beside scikit-image's rgb2hed.

Both run on the same image in the same process, alternating, so that load from other
processes slows them alike; each figure is the median of ``--repeats`` runs after one warm-up
round, the ratio the median of the per-round ratios. Macenko gets the image as the data module gives it (channel-first
float32, values 0..255) and does the whole method: optical density, tissue selection, stain
fit (eigenvectors, angle percentiles), concentrations, their 99th percentiles, re-rendering
with the standard H&E reference. ``rgb2hed`` gets the image as scikit-image expects it
(channel-last uint8) and does fixed-matrix colour deconvolution only (no fitting), the lower
bound of what a stain method costs.

Usage::

    python benchmarks/bench_stain.py [--image FILE] [--repeats 7] [--device cpu|cuda] [--quality]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile
import torch
from skimage.color import rgb2hed

from im2im_stain.macenko import StainFit, fit_stains, normalize_stains

DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "histology_unpaired" / "he_cmu1_small_region.tif"


def interleaved_seconds(runs: dict[str, Callable[[], object]], repeats: int,
                        sync: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Wall times of each run, ``repeats`` rounds after one warm-up round.

    The runs alternate within each round, so that a busy machine slows them alike and their
    ratio stays meaningful.
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(repeats + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            sync()
            if round_:
                times[name].append(time.perf_counter() - start)
    return times


def angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angles in degrees between matching columns of two (3, 2) stain matrices."""
    a, b = a / np.linalg.norm(a, axis=0), b / np.linalg.norm(b, axis=0)
    return np.degrees(np.arccos(np.clip((a * b).sum(axis=0), -1.0, 1.0)))


def quality(image: np.ndarray) -> dict[str, float]:
    """The figures behind the tests' tolerances, on the whole image (tests use every 2nd pixel)."""
    from monai.apps.pathology.transforms.stain import ExtractHEStains

    from im2im_stain.macenko import optical_density, separate_stains

    own = fit_stains(image)
    out = normalize_stains(image, own)
    tissue = (optical_density(torch.from_numpy(image).reshape(3, -1), 240.0).amin(0) > 0.15).numpy()
    diff = np.abs(out - np.minimum(image, 240.0)).reshape(3, -1)
    ruifrok = np.array([[0.65, 0.07], [0.70, 0.99], [0.29, 0.11]])
    ruifrok /= np.linalg.norm(ruifrok, axis=0)
    conc = separate_stains(image, own)[:2].reshape(2, -1) * np.array([[0.8], [1.3]], dtype=np.float32)
    restained = np.clip(np.round(240.0 * np.exp(-(ruifrok.astype(np.float32) @ conc))), 0, 255).reshape(image.shape)
    reference = fit_stains(restained.astype(np.float32))
    refit = fit_stains(normalize_stains(image, reference))
    monai = ExtractHEStains()(np.moveaxis(image, 0, -1).astype(np.uint8))
    return {
        "self_mean_abs_diff": float(diff.mean()), "self_mean_abs_diff_tissue": float(diff[:, tissue].mean()),
        "self_pearson": float(np.corrcoef(out.ravel(), image.ravel())[0, 1]),
        "restained_reference_angle_before_deg": float(angles_deg(own.stains.numpy(), reference.stains.numpy()).max()),
        "restained_reference_angle_after_deg": float(angles_deg(refit.stains.numpy(), reference.stains.numpy()).max()),
        "max_concentration_rel_error": float((refit.max_concentrations / reference.max_concentrations - 1).abs().max()),
        "monai_extract_he_stains_angle_deg": float(min(angles_deg(own.stains.numpy(), monai).max(),
                                                       angles_deg(own.stains.numpy(), monai[:, ::-1]).max())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="RGB image (default: the 2967 x 2220 H&E)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device of the Macenko torch path")
    parser.add_argument("--quality", action="store_true", help="also print the normalization quality figures")
    args = parser.parse_args()

    rgb = tifffile.imread(args.image)  # (Y, X, 3) uint8
    channel_first = np.ascontiguousarray(np.moveaxis(rgb, -1, 0)).astype(np.float32)
    reference = StainFit.standard()

    figures: dict[str, object] = {
        "image": args.image.name, "shape": list(rgb.shape), "repeats": args.repeats,
        "cpu_threads_torch": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_average_1min": os.getloadavg()[0],
    }
    runs: dict[str, Callable[[], object]] = {
        "macenko_normalize_s": lambda: normalize_stains(channel_first, reference),
        "macenko_fit_only_s": lambda: fit_stains(channel_first),
        "skimage_rgb2hed_s": lambda: rgb2hed(rgb),
    }
    times = interleaved_seconds(runs, args.repeats)
    figures.update({name: statistics.median(values) for name, values in times.items()})
    figures.update({name.replace("_s", "_min_s"): min(values) for name, values in times.items()})  # least disturbed run
    figures["ratio_macenko_to_rgb2hed"] = statistics.median(
        m / r for m, r in zip(times["macenko_normalize_s"], times["skimage_rgb2hed_s"], strict=True))
    if args.device == "cuda":
        image = torch.from_numpy(channel_first).cuda()
        figures["gpu"] = torch.cuda.get_device_name()
        gpu_times = interleaved_seconds({"gpu": lambda: normalize_stains(image, reference)}, args.repeats, torch.cuda.synchronize)
        figures["macenko_normalize_cuda_s"] = statistics.median(gpu_times["gpu"])

    megapixels = rgb.shape[0] * rgb.shape[1] / 1e6
    print(f"image {args.image.name}: {rgb.shape[0]} x {rgb.shape[1]} RGB ({megapixels:.1f} Mpx), "
          f"median of {args.repeats} runs, torch threads {figures['cpu_threads_torch']}")
    print(f"  Macenko normalize (fit + re-render), CPU : {figures['macenko_normalize_s']:.3f} s  (target < 1 s)")
    print(f"  Macenko fit only, CPU                     : {figures['macenko_fit_only_s']:.3f} s")
    print(f"  scikit-image rgb2hed, CPU                 : {figures['skimage_rgb2hed_s']:.3f} s")
    if args.device == "cuda":
        print(f"  Macenko normalize, {figures['gpu']}: {figures['macenko_normalize_cuda_s']:.4f} s")
    print(f"  fastest runs: Macenko {figures['macenko_normalize_min_s']:.3f} s, rgb2hed {figures['skimage_rgb2hed_min_s']:.3f} s")
    print(f"  ratio Macenko / rgb2hed (per round)       : {figures['ratio_macenko_to_rgb2hed']:.2f}")
    if args.quality:
        figures.update(quality(channel_first))
        print("  quality: " + ", ".join(f"{k} {figures[k]:.4g}" for k in figures
                                        if k.startswith(("self_", "restained", "max_conc", "monai"))))
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
