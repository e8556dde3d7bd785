"""Streamed prediction against windows and against one whole pass, in one process, interleaved.

Cases (CPU, random weights, noise input; timing only):

2d    the ``semanticseg_2d`` U-Net on a 4096 x 4096 image: ``predict`` with ``mode="crop"`` (what
      ``auto`` picks in 2D) against ``mode="stream"``; why ``auto`` streams only in 3D.
steps the 3D fnet (depth 4, 32 channels) on a 64 x 512 x 512 stack, streamed with steps of
      ``--steps`` voxels, against one whole pass over a centred 64 x 256 x 272 crop scaled by
      the voxel ratio (the whole stack would need ~20 GB); prints the rows each pass keeps.

    python benchmarks/bench_stream.py --case 2d --repeats 2
    python benchmarks/bench_stream.py --case steps --steps 131072 262144 524288 --repeats 2

The last line is one JSON object with every time (seconds) and the medians' ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _case_2d(repeats: int) -> dict:
    from monai.networks.nets import UNet

    from im2im_core.frameworks.fcn import FCN
    from im2im_core.inference import predict

    torch.manual_seed(0)
    net = UNet(2, 1, 1, (16, 32, 64, 128), (2, 2, 2), num_res_units=1, norm="batch").eval()
    framework = FCN(backbone=net, task="segmentation", spatial_dims=2)
    image = np.random.default_rng(0).random((4096, 4096), dtype=np.float32)
    times: dict[str, list[float]] = {"crop": [], "stream": []}
    for _ in range(repeats):
        for mode in times:
            times[mode].append(_timed(lambda m=mode: predict(framework, image, dims="YX", mode=m, postprocess=None)))
            print(f"2d {mode:6s} {times[mode][-1]:.2f} s", flush=True)
    return {"times": times, "stream_over_crop": statistics.median(times["stream"]) / statistics.median(times["crop"])}


def _case_steps(steps: list[int], repeats: int) -> dict:
    from im2im_core.inference import streaming
    from im2im_core.inference.optimize import optimized_copy
    from im2im_core.networks import FNet

    torch.manual_seed(0)
    net = FNet(3, 1, 1, depth=4, mult_chan=32).eval()
    layout = torch.channels_last_3d
    network = streaming.StreamedNetwork(net, 1, 3, 16, layout, torch.device("cpu"))
    folded = optimized_copy(net, 3, torch.device("cpu"))
    stack = torch.rand(1, 1, 64, 512, 512).contiguous(memory_format=layout)
    crop = torch.rand(1, 1, 64, 256, 272).contiguous(memory_format=layout)
    scale = (512 * 512) / (256 * 272)
    times: dict[str, list[float]] = {**{f"stream_{s}": [] for s in steps}, "whole_scaled": []}
    kept: dict[str, float] = {}
    with torch.inference_mode():
        network(stack[:, :, :16, :64, :64])  # the check, outside the timings
        for _ in range(repeats):
            for step in steps:
                streaming.STEP_VOXELS = step
                network.peak_bytes = 0
                times[f"stream_{step}"].append(_timed(lambda: network(stack)))
                kept[f"stream_{step}"] = network.peak_bytes / 1e9
                print(f"steps {step:8d} voxels {times[f'stream_{step}'][-1]:.2f} s, rows kept {kept[f'stream_{step}']:.3f} GB",
                      flush=True)
            times["whole_scaled"].append(_timed(lambda: folded(crop)) * scale)
            print(f"whole pass (scaled) {times['whole_scaled'][-1]:.2f} s", flush=True)
    whole = statistics.median(times["whole_scaled"])
    return {"times": times, "kept_gb": kept,
            "stream_over_whole": {k: statistics.median(v) / whole for k, v in times.items() if k != "whole_scaled"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=["2d", "steps"], required=True)
    parser.add_argument("--steps", type=int, nargs="+", default=[2**17, 2**18, 2**19])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    result = _case_2d(args.repeats) if args.case == "2d" else _case_steps(args.steps, args.repeats)
    print(json.dumps({"case": args.case, "threads": torch.get_num_threads(), **result}))


if __name__ == "__main__":
    main()
