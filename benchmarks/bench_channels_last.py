"""Training steps in the channels-last memory layout against the default layout, per preset network.

For each preset below, its network (built as ``im2im fit`` builds it: the backbone of the
preset with ``spatial_dims`` and one channel in and out), a fixed random batch of the preset's
batch size and patch size, MSE loss and Adam: one training step (forward, backward, optimizer)
in the default (channels-first) layout, then one with the network and batch in channels-last
(``torch.channels_last`` / ``channels_last_3d``), alternating (a, b, a, b) after warm-up steps of
both. Prints the median step time of each and the ratio default / channels-last (above 1:
channels-last is faster), and ends with one JSON line. This is what decides
``channels_last: auto`` in ``Im2ImFramework``: the layout is used where it measures faster here.

    python benchmarks/bench_channels_last.py [--rounds 8] [--threads 2] [--presets demo denoise_n2v_2d]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
import yaml
from lightning.pytorch.cli import instantiate_class

from im2im_cli.config import load_config
from im2im_cli.network_arguments import accepted_arguments
from im2im_core.inference.optimize import channels_last
from im2im_core.plugins import get_registry, import_object

PRESETS = ["denoise_n2v_2d", "denoise_n2v2_2d", "demo", "semanticseg_2d", "labelfree_2d",
           "denoise_n2v_3d", "denoise_3d", "labelfree_3d", "semanticseg_3d"]


def network_and_batch(name: str) -> tuple[torch.nn.Module, torch.Tensor, int]:
    """The preset's backbone with one channel in and out, a batch of its patch and batch size, and its spatial dims."""
    config = yaml.safe_load(load_config(name, get_registry()))
    patch, batch = config["data"]["patch_size"], config["data"]["batch_size"]
    spec = copy.deepcopy(config["model"]["init_args"]["backbone"])
    spec["class_path"] = get_registry().import_path(spec["class_path"]) or spec["class_path"]
    init = spec.setdefault("init_args", {}) or {}
    spec["init_args"] = init
    accepted = accepted_arguments(import_object(spec["class_path"]))
    for key, value in {"spatial_dims": len(patch), "in_channels": 1, "out_channels": 1}.items():
        if key in accepted:
            init.setdefault(key, value)
    network = instantiate_class((), spec)
    return network, torch.randn(batch, 1, *patch), len(patch)


def step_time(network: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: torch.Tensor) -> float:
    start = time.perf_counter()
    output = network(batch)
    loss = torch.nn.functional.mse_loss(output, torch.zeros_like(output))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="*", default=PRESETS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = {}
    for name in args.presets:
        network, batch, dims = network_and_batch(name)
        layout = channels_last(dims)
        last = copy.deepcopy(network).to(memory_format=layout)
        cases = {"default": (network, batch), "channels_last": (last, batch.contiguous(memory_format=layout))}
        optimizers = {case: torch.optim.Adam(net.parameters(), 1e-4) for case, (net, _) in cases.items()}
        times: dict[str, list[float]] = {case: [] for case in cases}
        for warm in (True, False):
            for _ in range(2 if warm else args.rounds):
                for case, (net, x) in cases.items():
                    seconds = step_time(net, optimizers[case], x)
                    if not warm:
                        times[case].append(seconds)
        medians = {case: statistics.median(values) for case, values in times.items()}
        ratio = medians["default"] / medians["channels_last"]
        results[name] = {"shape": list(batch.shape), "default_s": round(medians["default"], 4),
                         "channels_last_s": round(medians["channels_last"], 4), "default_over_channels_last": round(ratio, 3)}
        print(f"{name:18s} {str(list(batch.shape)):22s} default {medians['default']:.3f} s  "
              f"channels-last {medians['channels_last']:.3f} s  ratio {ratio:.2f}", flush=True)
    print(json.dumps({"bench": "channels_last", "threads": args.threads, "rounds": args.rounds,
                      "torch": torch.__version__, "results": results}))


if __name__ == "__main__":
    main()
