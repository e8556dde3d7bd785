"""Whole-image prediction speed and memory on the CPU: im2im vs one pass of the same network vs MONAI.

Cases, each run in its own child process (peak memory = the child's peak resident set,
VmHWM, which includes the ~0.6-1.0 GB of importing torch and MONAI):

a   ``im2im_core.inference.predict`` of an FCN with the 3D fnet (depth 4, 32 channels, random
    weights) with its default settings (automatic window, tiling chosen by measurement: crop
    tiling where the network is local enough, else Gaussian blending; inference copy of the
    network);
c_same  the limit: one forward pass over the whole image of the inference copy of the network
    that (a) uses (batch norms folded, channels-last), every voxel computed once. Where that
    does not fit in ``--c-max-gb`` of memory (64x512x512 needs about 20 GB), the pass runs on
    the largest centred crop that fits and its time is scaled by the voxel ratio. A
    whole-image pass is, if anything, slower per voxel than a smaller one, so the scaled time
    flatters c and a/c errs high;
c   as c_same with the plain network (no folding, default layout);
b   MONAI ``sliding_window_inference`` with the original toolbox's label-free settings: window
    32x128x128, overlap 0.2, 4 windows per batch, Gaussian;
a2d / c2d_same  the same pair for the ``semanticseg_2d`` preset's U-Net (trained
    ``--train-steps`` steps on BBBC039 here) on a BBBC039 field tiled to 4096 x 4096 (raw logits);
ai / ci_same  the same pair for the ``instanceseg_2d`` preset (EmbedSeg, branched ERFNet,
    trained ``--train-steps`` steps) on that image, clustering into instances included in both;
zarr    ``predict_file`` of a uint16 OME-Zarr volume of ``--zarr-gb`` GB into float32 OME-Zarr,
    default settings, with a pointwise (1x1x1) convolution standing in for the network (the
    fnet would take hours on 1 G voxels and needs ~1 GB for its own features): the memory of
    the streaming pipeline itself (reading, blending buffers, writing);
zarr_cli  the same volume through ``im2im predict`` (Lightning's predict loop, the data module
    reading it lazily, the writer streaming OME-Zarr), an FCN checkpoint with the same
    pointwise network: the command users run, held to the same bound.

Each pair (a, c_same) runs ``--repeats`` times interleaved (a, c, a, c, ...) so that load on
the machine hits both alike; ratios are medians of the per-pair ratios. Also printed: the
largest |a - c_same| at least ``--margin`` pixels from every border of the region c computed,
and how many pixels a threshold (c's median in 3D, logit 0 in 2D) classifies differently; for
the instance case, how many objects each found and the AP50 of (a)'s labels against (c)'s.

Full run (about 30 minutes on 2 cores, BBBC039 from ../shared/data):  python benchmarks/bench_predict.py
Quick check (SMALL sizes, not the issue's figures):  python benchmarks/bench_predict.py --small

The last line is one JSON object with all figures (keys a_over_c_same, a_over_c_same_2d,
a_over_c_same_instance, a_over_b, peak_gb_a, zarr_2gb_peak_gb, zarr_cli_2gb_peak_gb among them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FULL_SHAPE = (64, 512, 512)
SMALL_SHAPE = (32, 192, 192)
FULL_SIDE_2D, SMALL_SIDE_2D = 4096, 1024
BBBC039 = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbbc039"
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
    if name in ("a", "c_same"):
        np.save(work / f"out_{name}.npy", out)
    return {"seconds": wall, "cpu_seconds": cpu, "peak_gb": _peak_gb(), "base_gb": base_gb}


def _case_2d(name: str, work: Path) -> dict:
    """A 2D pair: (a) im2im's predict of a checkpoint, (c_same) one pass of its inference network."""
    import torch

    from im2im_core.inference import predict
    from im2im_core.inference.checkpoint import load_model
    from im2im_core.inference.optimize import channels_last, optimized_copy

    image = np.load(work / "field2d.npy")
    model = load_model(work / ("instance.ckpt" if name.startswith(("ai", "ci")) else "semantic.ckpt"))
    base_gb = _peak_gb()
    wall, cpu = time.perf_counter(), _cpu_seconds()
    figures: dict = {}
    if name in ("a2d", "ai"):
        tiling: list = []
        out = predict(model, image, dims="YX", postprocess=None if name == "a2d" else "auto",
                      progress=lambda done, total: tiling.append(total))
        figures["windows"] = tiling[-1] if tiling else None
    else:
        net = optimized_copy(model.window_network(), 2, torch.device("cpu"))
        with torch.inference_mode():
            raw = net(torch.from_numpy(image)[None, None].contiguous(memory_format=channels_last(2)))[0]
        out = raw[0].numpy() if name == "c2d_same" else model.whole_image_postprocess().whole_image(raw)[0]
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    np.save(work / f"out_{name}.npy", np.asarray(out))
    return {"seconds": wall, "cpu_seconds": cpu, "peak_gb": _peak_gb(), "base_gb": base_gb, **figures}


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
    a, c = np.load(work / "out_a.npy"), np.load(work / "out_c_same.npy")
    starts = [(s - k) // 2 for s, k in zip(shape, crop)]
    a = a[tuple(slice(s, s + k) for s, k in zip(starts, crop))]
    inner = tuple(slice(margin, k - margin) if k > 2 * margin else slice(None) for k in crop)
    a, c = a[inner], c[inner]
    threshold = float(np.median(c))
    flips = int(((a > threshold) != (c > threshold)).sum())
    return {"max_abs_diff_a_c_same": float(np.abs(a - c).max()), "c_same_range": float(c.max() - c.min()),
            "mask_flips_at_median": flips, "mask_flip_fraction": flips / c.size, "diff_margin": margin}


def _field_2d(work: Path, side: int) -> None:
    """A BBBC039 field (the first by name) tiled to ``side`` x ``side``, percentile-normalized as training does."""
    import tifffile

    field = tifffile.imread(sorted((BBBC039 / "images").glob("*.tif"))[0]).astype(np.float32)
    reps = [math.ceil(side / n) for n in field.shape]
    tiled = np.tile(field, reps)[:side, :side]
    low, high = np.percentile(tiled, (0.5, 99.5))
    np.save(work / "field2d.npy", np.ascontiguousarray((tiled - low) / (high - low), dtype=np.float32))


def _train(work: Path, preset: str, out: str, steps: int) -> None:
    """``im2im fit`` of ``preset`` on the 50 BBBC039 fields for ``steps`` steps; its last.ckpt saved as ``out``."""
    data = work / "bbbc039"
    for sub, source in (("IM", "images"), ("GT", "masks")):
        (data / sub).mkdir(parents=True, exist_ok=True)
        for path in sorted((BBBC039 / source).glob("*.tif")):
            if not (data / sub / path.name).exists():
                (data / sub / path.name).symlink_to(path)
    run = work / f"run_{preset}"
    command = [sys.executable, "-m", "im2im_cli", "fit", "--config", preset, "--data.data_path", str(data),
               "--trainer.max_steps", str(steps), "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0",
               "--trainer.default_root_dir", str(run), "--trainer.accelerator", "cpu",
               "--trainer.enable_progress_bar", "false"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=work)
    if done.returncode != 0:
        raise RuntimeError(f"training {preset} failed:\n{done.stderr[-4000:]}")
    (work / out).write_bytes(next(run.rglob("last.ckpt")).read_bytes())


def _pairs(first: str, limit: str, work: Path, repeats: int, extra: list[str]) -> tuple[dict, dict, list[float]]:
    """``repeats`` interleaved runs of ``first`` and ``limit``: their median figures and the per-pair ratios."""
    runs: dict[str, list[dict]] = {first: [], limit: []}
    for _ in range(repeats):
        for case in (first, limit):
            runs[case].append(_run_child(["--child", case, "--workdir", str(work), *extra]))
    ratios = [a["seconds"] / c["seconds"] for a, c in zip(runs[first], runs[limit])]

    def median_of(results: list[dict]) -> dict:
        merged = dict(results[0])
        for key in ("seconds", "cpu_seconds", "peak_gb"):
            merged[key] = statistics.median(r[key] for r in results)
        merged["all_seconds"] = [r["seconds"] for r in results]
        return merged

    return median_of(runs[first]), median_of(runs[limit]), ratios


def _instance_agreement(work: Path) -> dict:
    from im2im_core.metrics import average_precision

    a, c = np.load(work / "out_ai.npy"), np.load(work / "out_ci_same.npy")
    a = a[0] if a.ndim == 3 else a
    return {"instance_objects_a": int(len(np.unique(a)) - 1), "instance_objects_c_same": int(len(np.unique(c)) - 1),
            "instance_ap50_a_vs_c_same": float(average_precision(a.astype(np.int64), c.astype(np.int64), 0.5))}


def _difference_2d(work: Path, margin: int) -> dict:
    a, c = np.load(work / "out_a2d.npy"), np.load(work / "out_c2d_same.npy")
    inner = (slice(margin, -margin),) * 2
    a, c = a[inner], c[inner]
    flips = int(((a > 0) != (c > 0)).sum())
    return {"max_abs_diff_a_c_same_2d": float(np.abs(a - c).max()), "c_same_range_2d": float(c.max() - c.min()),
            "mask_flips_2d": flips, "mask_pixels_2d": int(c.size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help=f"quick check: {SMALL_SHAPE} image, 0.25 GB volume")
    parser.add_argument("--c-max-gb", type=float, default=6.0, help="memory allowed for the whole-image pass (c)")
    parser.add_argument("--zarr-gb", type=float, default=None, help="size of the OME-Zarr volume (default 2, small 0.25)")
    parser.add_argument("--margin", type=int, default=16, help="voxels from the borders left out of |a - c|")
    parser.add_argument("--skip", nargs="*", default=[], help="cases to leave out (b, c, 2d, instance, zarr, zarr_cli)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each (a, c_same) pair")
    parser.add_argument("--train-steps", type=int, default=None, help="training steps of the 2D checkpoints (100; small 10)")
    parser.add_argument("--semantic-ckpt", type=Path, help="a trained semanticseg_2d checkpoint instead of training one")
    parser.add_argument("--instance-ckpt", type=Path,
                        help="a trained EmbedSeg checkpoint instead of training one (clustering needs seeds above its threshold)")
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--crop", type=int, nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        work = Path(args.workdir)
        cases = {"zarr": _zarr_case, "zarr_cli": _zarr_cli_case}
        if args.child in cases:
            result = cases[args.child](work)
        elif args.child in ("a2d", "c2d_same", "ai", "ci_same"):
            result = _case_2d(args.child, work)
        else:
            result = _case(args.child, work, args.crop)
        print(json.dumps(result))
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
        crop_args = ["--crop", *map(str, crop)]

        def scaled(result: dict) -> dict:
            result["measured_seconds"] = result["seconds"]
            result["seconds"] *= scale
            result["cpu_seconds"] *= scale
            return result

        def show(case: str, result: dict) -> None:
            print(f"{case:9s} {result['seconds']:8.1f} s wall  {result['cpu_seconds']:8.1f} s cpu  "
                  f"peak {result['peak_gb']:.2f} GB (after imports {result['base_gb']:.2f} GB)", flush=True)

        a, c_same, ratios = _pairs("a", "c_same", work, args.repeats, crop_args)
        figures["a"], figures["c_same"] = a, scaled(c_same)
        figures["a_over_c_same_pairs"] = [r / scale for r in ratios]
        for case in ("a", "c_same"):
            show(case, figures[case])
        for case in ("b", "c"):
            if case not in args.skip:
                result = _run_child(["--child", case, "--workdir", tmp, *crop_args])
                figures[case] = scaled(result) if case == "c" else result
                show(case, figures[case])
        figures.update(_difference(work, shape, crop, args.margin))
        side = SMALL_SIDE_2D if args.small else FULL_SIDE_2D
        for label, (first, limit, preset, ckpt) in {"2d": ("a2d", "c2d_same", "semanticseg_2d", "semantic.ckpt"),
                                                    "instance": ("ai", "ci_same", "instanceseg_2d", "instance.ckpt")}.items():
            if label in args.skip:
                continue
            if not (work / "field2d.npy").exists():
                _field_2d(work, side)
            given = args.semantic_ckpt if label == "2d" else args.instance_ckpt
            if given is not None:
                (work / ckpt).write_bytes(given.read_bytes())
            else:
                _train(work, preset, ckpt, args.train_steps or (10 if args.small else 100))
            figures[f"{label}_checkpoint"] = str(given) if given is not None else f"{preset}, trained here"
            first_result, limit_result, pair_ratios = _pairs(first, limit, work, args.repeats, [])
            figures[first], figures[limit] = first_result, limit_result
            figures[f"a_over_c_same_{label}_pairs"] = pair_ratios
            show(first, first_result)
            show(limit, limit_result)
            figures.update(_difference_2d(work, args.margin) if label == "2d" else _instance_agreement(work))
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
        "a_over_c_same": statistics.median(figures["a_over_c_same_pairs"]),
        "a_over_c_same_2d": statistics.median(figures["a_over_c_same_2d_pairs"]) if "a2d" in figures else None,
        "a_over_c_same_instance": (statistics.median(figures["a_over_c_same_instance_pairs"])
                                   if "ai" in figures else None),
        "a_over_b": a["seconds"] / figures["b"]["seconds"] if "b" in figures else None,
        "a_over_c": a["seconds"] / figures["c"]["seconds"] if "c" in figures else None,
        "a_over_b_cpu": a["cpu_seconds"] / figures["b"]["cpu_seconds"] if "b" in figures else None,
        "peak_gb_a": a["peak_gb"],
        "peak_gb_a2d": figures["a2d"]["peak_gb"] if "a2d" in figures else None,
        "peak_gb_ai": figures["ai"]["peak_gb"] if "ai" in figures else None,
        "peak_gb_b": figures["b"]["peak_gb"] if "b" in figures else None,
        "zarr_2gb_peak_gb": figures["zarr"]["peak_gb"] if "zarr" in figures else None,
        "zarr_cli_2gb_peak_gb": figures["zarr_cli"]["peak_gb"] if "zarr_cli" in figures else None,
        "zarr_gb": zarr_gb,
        "load_after": os.getloadavg()[0],
    }
    figures.update(summary)
    print(f"a/c_same 3D {summary['a_over_c_same']:.3f}  2D {summary['a_over_c_same_2d']}  "
          f"instance {summary['a_over_c_same_instance']}  a/b {summary['a_over_b']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
