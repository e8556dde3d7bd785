"""Whole-image prediction speed and memory on the CPU: im2im vs MONAI vs one forward pass.

Cases, each run in its own child process (peak memory = the child's peak resident set,
VmHWM, which includes the ~0.6-1.0 GB of importing torch and MONAI):

a   ``im2im_core.inference.predict`` of an FCN with the 3D fnet (depth 4, 32 channels, random
    weights) with its default settings (automatic window, Gaussian blending, inference copy
    of the network);
b   MONAI ``sliding_window_inference`` with the original toolbox's label-free settings: window
    32x128x128, overlap 0.2, 4 windows per batch, Gaussian;
c   one forward pass of the same network over the whole image (every voxel computed once).
    Where that does not fit in ``--c-max-gb`` of memory (64x512x512 needs about 20 GB), the
    pass runs on the largest centred crop that fits and its time is scaled by the voxel
    ratio (``c_extrapolated``). A whole-image pass is, if anything, slower per voxel than a
    smaller one, so the scaled time flatters c and a/c errs high.
c_same  as c, with the inference copy of the network that (a) uses (batch norms folded,
    channels-last): a/c_same separates the window overhead from the network rewrite.
zarr    ``predict_file`` of a uint16 OME-Zarr volume of ``--zarr-gb`` GB into float32 OME-Zarr,
    default settings, with a pointwise (1x1x1) convolution standing in for the network (the
    fnet would take hours on 1 G voxels and needs ~1 GB for its own features): the memory of
    the streaming pipeline itself (reading, blending buffers, writing).
zarr_cli  the same volume through ``im2im predict`` (Lightning's predict loop, the data module
    reading it lazily, the writer streaming OME-Zarr), an FCN checkpoint with the same
    pointwise network: the command users run, held to the same bound.

Also printed: the largest |a - c| at least ``--margin`` voxels from every border of the
region c computed, and how many voxels a threshold at c's median would classify differently.

Full run (minutes; about 20 on 2 cores):  python benchmarks/bench_predict.py
Quick check (SMALL sizes, not the issue's figures):  python benchmarks/bench_predict.py --small

The last line is one JSON object with all figures (keys a_over_b, a_over_c, a_over_c_same, peak_gb_a,
zarr_2gb_peak_gb, zarr_cli_2gb_peak_gb among them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FULL_SHAPE = (64, 512, 512)
SMALL_SHAPE = (32, 192, 192)
BYTES_PER_VOXEL_C = 1300  # measured peak of one fnet pass on the CPU, with some margin


def _peak_gb() -> float:
    """Peak resident memory of this process (VmHWM): unlike ``ru_maxrss``, which a child
    inherits from its parent on Linux, it starts afresh at ``exec``.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # not Linux: kilobytes too


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _fnet():
    import torch

    from im2im_core.networks import FNet

    torch.manual_seed(0)
    return FNet(spatial_dims=3, in_channels=1, out_channels=1, depth=4, mult_chan=32).eval()


# ----------------------------------------------------------------------------- child cases
def _case(name: str, work: Path, crop: list[int]) -> dict:
    """Run one case in this (child) process and return its figures."""
    import torch

    image = np.load(work / "image.npy")
    if name.startswith("c"):
        starts = [(s - c) // 2 for s, c in zip(image.shape, crop)]
        image = np.ascontiguousarray(image[tuple(slice(s, s + c) for s, c in zip(starts, crop))])
    net = _fnet()
    base_gb = _peak_gb()
    wall, cpu = time.perf_counter(), _cpu_seconds()
    if name == "a":
        from im2im_core.frameworks.fcn import FCN
        from im2im_core.inference import predict

        out = predict(FCN(backbone=net, task="regression", spatial_dims=3), image, dims="ZYX")
    elif name == "b":
        from monai.inferers import sliding_window_inference

        with torch.inference_mode():
            out = sliding_window_inference(torch.from_numpy(image)[None, None], (32, 128, 128), 4, net, overlap=0.2,
                                           mode="gaussian")[0, 0].numpy()
    elif name in ("c", "c_same"):
        from im2im_core.inference.optimize import channels_last, optimized_copy

        x = torch.from_numpy(image)[None, None]
        if name == "c_same":
            net = optimized_copy(net, 3, torch.device("cpu"))
            x = x.contiguous(memory_format=channels_last(3))
        with torch.inference_mode():
            out = net(x)[0, 0].numpy()
    else:
        raise ValueError(name)
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    if name in ("a", "c"):
        np.save(work / f"out_{name}.npy", out)
    return {"seconds": wall, "cpu_seconds": cpu, "peak_gb": _peak_gb(), "base_gb": base_gb}


def _zarr_case(work: Path) -> dict:
    import torch
    from torch import nn

    from im2im_core.inference import predict_file

    torch.manual_seed(0)
    net = nn.Conv3d(1, 1, 1).eval()  # a pointwise stand-in: measures the pipeline, not a network
    base_gb = _peak_gb()
    wall, cpu = time.perf_counter(), _cpu_seconds()
    predict_file(net, work / "volume.ome.zarr", work / "zarr_out", dims="ZYX", output_format="ome-zarr")
    return {"seconds": time.perf_counter() - wall, "cpu_seconds": _cpu_seconds() - cpu, "peak_gb": _peak_gb(),
            "base_gb": base_gb}


def _zarr_cli_case(work: Path) -> dict:
    """``im2im predict`` of the volume, in this process, with a pointwise FCN checkpoint."""
    import lightning.pytorch as pl
    import torch
    from torch import nn

    from im2im_cli.main import main as im2im
    from im2im_core.frameworks.fcn import FCN

    torch.manual_seed(0)
    model = FCN(backbone=nn.Conv3d(1, 1, 1), task="regression", spatial_dims=3)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(work / "pointwise.ckpt")  # written outside im2im fit: the config below gives the model
    (work / "pointwise.yaml").write_text(
        "model:\n  class_path: im2im_core.frameworks.fcn.FCN\n  init_args:\n    task: regression\n"
        "    backbone:\n      class_path: torch.nn.Conv3d\n"
        "      init_args: {in_channels: 1, out_channels: 1, kernel_size: 1}\n"
        "data:\n  dims: ZYX\n  target: intensity\n  patch_size: [32, 128, 128]\n")
    (work / "cli_in").mkdir(exist_ok=True)
    (work / "cli_in" / "volume.ome.zarr").symlink_to(work / "volume.ome.zarr")
    base_gb = _peak_gb()
    wall, cpu = time.perf_counter(), _cpu_seconds()
    code = im2im(["predict", "--config", str(work / "pointwise.yaml"), "--ckpt_path", str(work / "pointwise.ckpt"),
                  "--data.predict_path", str(work / "cli_in"), "--prediction.output_format", "ome-zarr",
                  "--prediction.output_dir", str(work / "cli_out"), "--trainer.accelerator", "cpu",
                  "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"])
    if code != 0:
        raise RuntimeError(f"im2im predict exited with {code}")
    return {"seconds": time.perf_counter() - wall, "cpu_seconds": _cpu_seconds() - cpu, "peak_gb": _peak_gb(),
            "base_gb": base_gb}


# ----------------------------------------------------------------------------- parent
def _run_child(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _c_crop(shape: tuple[int, ...], max_gb: float) -> list[int]:
    """The whole image if one pass fits in ``max_gb``, else the largest centred crop (multiples of 16) that does."""
    crop = list(shape)
    while math.prod(crop) * BYTES_PER_VOXEL_C > max_gb * 1e9:
        axis = max(range(3), key=lambda a: crop[a])
        crop[axis] -= 16
    return crop


def _write_volume(path: Path, gigabytes: float) -> tuple[int, int, int]:
    """A uint16 OME-Zarr volume of about ``gigabytes`` GB (a smooth pattern plus noise), written
    in blocks of whole chunks, so that making it needs little memory.
    """
    from im2im_core.inference.outputs import ZarrOutput

    side = 2048 if gigabytes >= 1 else 1024
    depth = max(64, int(round(gigabytes * 1e9 / (2 * side * side) / 64)) * 64)
    shape = (depth, side, side)
    store = ZarrOutput(path, shape, "ZYX", np.uint16, {"Z": 1.0, "Y": 0.2, "X": 0.2})
    rng = np.random.default_rng(0)
    xx = np.arange(side)
    for z in range(0, depth, 64):
        for y in range(0, side, 256):
            yy = np.arange(y, y + 256)[:, None]
            pattern = 1000 + 800 * np.sin(yy / 37.0 + z / 11.0) * np.cos(xx / 53.0)
            block = pattern[None] + rng.integers(0, 200, (64, 256, side))
            store.write((slice(z, z + 64), slice(y, y + 256), slice(0, side)), block.astype(np.uint16))
    return shape


def _difference(work: Path, shape: tuple[int, ...], crop: list[int], margin: int) -> dict:
    a, c = np.load(work / "out_a.npy"), np.load(work / "out_c.npy")
    starts = [(s - k) // 2 for s, k in zip(shape, crop)]
    a = a[tuple(slice(s, s + k) for s, k in zip(starts, crop))]
    inner = tuple(slice(margin, k - margin) if k > 2 * margin else slice(None) for k in crop)
    a, c = a[inner], c[inner]
    threshold = float(np.median(c))
    flips = int(((a > threshold) != (c > threshold)).sum())
    return {"max_abs_diff_a_c": float(np.abs(a - c).max()), "c_range": float(c.max() - c.min()),
            "mask_flips_at_median": flips, "mask_flip_fraction": flips / c.size, "diff_margin": margin}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help=f"quick check: {SMALL_SHAPE} image, 0.25 GB volume")
    parser.add_argument("--c-max-gb", type=float, default=6.0, help="memory allowed for the whole-image pass (c)")
    parser.add_argument("--zarr-gb", type=float, default=None, help="size of the OME-Zarr volume (default 2, small 0.25)")
    parser.add_argument("--margin", type=int, default=16, help="voxels from the borders left out of |a - c|")
    parser.add_argument("--skip", nargs="*", default=[], help="cases to leave out (b, c_same, zarr, zarr_cli)")
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--crop", type=int, nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        work = Path(args.workdir)
        cases = {"zarr": _zarr_case, "zarr_cli": _zarr_cli_case}
        print(json.dumps(cases[args.child](work) if args.child in cases else _case(args.child, work, args.crop)))
        return

    shape = SMALL_SHAPE if args.small else FULL_SHAPE
    zarr_gb = args.zarr_gb if args.zarr_gb is not None else (0.25 if args.small else 2.0)
    crop = _c_crop(shape, args.c_max_gb)
    figures: dict = {"small": args.small, "shape": list(shape), "c_crop": crop, "c_extrapolated": crop != list(shape),
                     "cpu_threads": os.cpu_count(), "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        work = Path(tmp)
        np.save(work / "image.npy", np.random.default_rng(0).random(shape, dtype=np.float32))
        scale = math.prod(shape) / math.prod(crop)
        for case in ("a", "b", "c", "c_same"):
            if case in args.skip:
                continue
            result = _run_child(["--child", case, "--workdir", tmp, "--crop", *map(str, crop)])
            if case.startswith("c"):
                result["measured_seconds"] = result["seconds"]
                result["seconds"] *= scale
                result["cpu_seconds"] *= scale
            figures[case] = result
            print(f"{case:7s} {result['seconds']:8.1f} s wall  {result['cpu_seconds']:8.1f} s cpu  "
                  f"peak {result['peak_gb']:.2f} GB (after imports {result['base_gb']:.2f} GB)", flush=True)
        figures.update(_difference(work, shape, crop, args.margin))
        for case in ("zarr", "zarr_cli"):
            if case in args.skip:
                continue
            if "zarr_shape" not in figures:
                figures["zarr_shape"] = list(_write_volume(work / "volume.ome.zarr", zarr_gb))
            figures[case] = _run_child(["--child", case, "--workdir", tmp])
            print(f"{case:8s} {figures[case]['seconds']:8.1f} s wall  peak {figures[case]['peak_gb']:.2f} GB "
                  f"for a {zarr_gb} GB uint16 volume {figures['zarr_shape']}", flush=True)
    a = figures["a"]
    summary = {
        "a_over_b": a["seconds"] / figures["b"]["seconds"] if "b" in figures else None,
        "a_over_c": a["seconds"] / figures["c"]["seconds"],
        "a_over_c_same": a["seconds"] / figures["c_same"]["seconds"] if "c_same" in figures else None,
        "a_over_b_cpu": a["cpu_seconds"] / figures["b"]["cpu_seconds"] if "b" in figures else None,
        "a_over_c_cpu": a["cpu_seconds"] / figures["c"]["cpu_seconds"],
        "peak_gb_a": a["peak_gb"],
        "peak_gb_b": figures["b"]["peak_gb"] if "b" in figures else None,
        "peak_gb_c": figures["c"]["peak_gb"],
        "zarr_2gb_peak_gb": figures["zarr"]["peak_gb"] if "zarr" in figures else None,
        "zarr_cli_2gb_peak_gb": figures["zarr_cli"]["peak_gb"] if "zarr_cli" in figures else None,
        "zarr_gb": zarr_gb,
        "load_after": os.getloadavg()[0],
    }
    figures.update(summary)
    print(f"a/b {summary['a_over_b']}  a/c {summary['a_over_c']:.3f}  max |a-c| {figures['max_abs_diff_a_c']:.3g} "
          f"(c range {figures['c_range']:.3g}), mask flips {figures['mask_flips_at_median']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
