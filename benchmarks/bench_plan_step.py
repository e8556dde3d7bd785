"""What one CPU training step costs for the networks ``im2im plan`` chooses between in 2D.

Networks as :func:`im2im_core.planning.plan.backbone` builds them for 256 x 256 patches (nnU-Net's
6 poolings, maps down to 4 px):

full            nnU-Net's MONAI ``DynUNet``: first level at full resolution, filters 8-128, instance norm;
strided         what the plan chooses on the CPU for objects >= 6 px thick: MONAI ``UNet``, first
                convolution of stride 2, filters 16-128, residual units, instance norm;
strided_batch   the same with batch norm (cheaper on the CPU, but its running statistics did not hold
                for whole images: docs/results.md, "Planning");
preset          the ``semanticseg_2d`` preset's UNet (16-128, 3 poolings, batch norm), for reference.

Networks and batches are channels-last, as im2im trains on the CPU. Each case takes ``--warmup``
steps, then one timed optimizer step (forward, a Dice-like loss, backward, Adam) on a fixed batch;
cases alternate (a, b, c, d, a, b, ...) ``--repeats`` times; medians and the ratios full / strided,
strided / preset and strided / strided_batch are reported.

    python benchmarks/bench_plan_step.py --repeats 7 --threads 2

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from monai.networks.nets import UNet

from im2im_core.planning.plan import backbone
from im2im_core.planning.rules import topology


def _networks() -> dict[str, torch.nn.Module]:
    from monai.networks.nets import DynUNet

    plan, _ = topology([256, 256], [1.0, 1.0])
    full = backbone(plan, "cpu", strided_first=False)["init_args"]
    strided = backbone(plan, "cpu", strided_first=True)["init_args"]
    return {"full": DynUNet(in_channels=1, out_channels=1, **full),
            "strided": UNet(in_channels=1, out_channels=1, **strided),
            "strided_batch": UNet(in_channels=1, out_channels=1, **(strided | {"norm": "batch"})),
            "preset": UNet(2, 1, 1, channels=[16, 32, 64, 128], strides=[2, 2, 2], num_res_units=1, norm="batch")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    networks = {name: net.to(memory_format=torch.channels_last) for name, net in _networks().items()}
    optimizers = {name: torch.optim.Adam(net.parameters(), 1e-3) for name, net in networks.items()}
    images = torch.rand(args.batch, 1, 256, 256).to(memory_format=torch.channels_last)
    masks = (torch.rand(args.batch, 1, 256, 256) > 0.7).float().to(memory_format=torch.channels_last)
    times: dict[str, list[float]] = {name: [] for name in networks}

    def step(name: str) -> float:
        started = time.perf_counter()
        optimizers[name].zero_grad()
        probability = torch.sigmoid(networks[name](images))
        loss = 1 - 2 * (probability * masks).sum() / (probability.sum() + masks.sum())
        loss.backward()
        optimizers[name].step()
        return time.perf_counter() - started

    for name in networks:
        for _ in range(args.warmup):
            step(name)
    for _ in range(args.repeats):
        for name in networks:
            times[name].append(step(name))
    medians = {name: statistics.median(values) for name, values in times.items()}
    parameters = {name: sum(p.numel() for p in net.parameters()) for name, net in networks.items()}
    for name, median in medians.items():
        print(f"{name:>8}: {median:.3f} s a step of {args.batch} x 256 x 256 (median of {args.repeats}), "
              f"{parameters[name] / 1e6:.2f} M parameters")
    ratios = {"full_over_strided": medians["full"] / medians["strided"],
              "strided_over_preset": medians["strided"] / medians["preset"],
              "strided_over_strided_batch": medians["strided"] / medians["strided_batch"]}
    print("; ".join(f"{name.replace('_over_', ' / ')}: {value:.2f}" for name, value in ratios.items()))
    print(json.dumps({"threads": args.threads, "batch": args.batch, "median_s": medians, **ratios,
                      "parameters": parameters}))

if __name__ == "__main__":
    main()
