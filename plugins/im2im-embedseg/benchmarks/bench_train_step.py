"""Where an EmbedSeg training step goes: the network alone against network + loss, on real patches.

One fixed in-memory batch of 8 patches of 256 x 256 from BBBC039 (``../shared/data/bbbc039``,
CC0: images percentile-normalized, manual instance labels), the ``instanceseg_2d`` preset's
network (branched ERFNet, channels 16/64/128), decoding and learning rate, read from the preset file. Cases, each a
whole optimizer step (zero_grad, forward, backward, step), timed in turn (a, b, c, a, b, c, ...)
so that load on the machine hits all alike:

- ``network``: the limit: forward and backward of the same network with a loss that costs
  nothing (the mean of the decoded outputs);
- ``step_medoid``: the preset's step: the EmbedSeg loss with the preset's centres (exact medoids);
- ``step_approximate``: the same with ``approximate_medoid`` centres (256 samples an object);
- ``step_centroid``: the same with centroids.

Data loading is not timed here (the batch is fixed); ``bench_data.py`` of the core measures it.
The network is in the default memory layout, as EmbedSeg trains (``--layout channels_last`` for
the other). Prints the median seconds of each case and its ratio
network / case (1: the loss is free), and ends with one JSON line. Usage::

    python plugins/im2im-embedseg/benchmarks/bench_train_step.py [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
import yaml

from im2im_embedseg.erfnet import BranchedERFNet
from im2im_embedseg.framework import DecodedNetwork
from im2im_embedseg.loss import EmbedSegLoss

DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "bbbc039"
PRESET = Path(__file__).resolve().parents[1] / "im2im_embedseg" / "presets" / "instanceseg_2d.yaml"
PATCH, BATCH = 256, 8


def real_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """8 random 256 x 256 crops (one per image, the first 8 images by name): images and labels."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for path in sorted((DATA / "images").glob("*.tif"))[:BATCH]:
        image = tifffile.imread(path).astype(np.float32)
        label = tifffile.imread(DATA / "masks" / path.name).astype(np.int64)
        y, x = (int(rng.integers(0, s - PATCH + 1)) for s in image.shape)
        low, high = np.percentile(image, (0.5, 99.5))
        images.append((image[y:y + PATCH, x:x + PATCH] - low) / (high - low))
        labels.append(label[y:y + PATCH, x:x + PATCH])
    return torch.from_numpy(np.stack(images)[:, None].astype(np.float32)), torch.from_numpy(np.stack(labels))


def preset_model() -> dict:
    """The ``model.init_args`` of the ``instanceseg_2d`` preset as it ships (read, not copied here)."""
    return yaml.safe_load(PRESET.read_text())["model"]["init_args"]


def make_step(criterion: EmbedSegLoss | None, images: torch.Tensor, labels: torch.Tensor, channels_last: bool = False):
    """One optimizer step of a fresh preset network (seeded) with ``criterion`` (None: the network-only limit).

    ``channels_last``: the network in the channels-last layout (EmbedSeg's ``channels_last``,
    False by default: slower for this network).
    """
    model = preset_model()
    torch.manual_seed(0)
    network = DecodedNetwork(BranchedERFNet(**model["backbone"]["init_args"]), offset_range=model["offset_range"],
                             sigma_init=model["sigma_init"])
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    module, name = model["optimizer"]["class_path"].rsplit(".", 1)
    optimizer = getattr(importlib.import_module(module), name)(network.parameters(), **model["optimizer"]["init_args"])

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        decoded = network(images)
        loss = decoded.mean() if criterion is None else criterion(decoded, labels)["loss"]
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layout", choices=["channels_last", "contiguous"], default="contiguous",
                        help="the network's memory layout (EmbedSeg trains in the default one: channels_last=False)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, labels = real_batch()
    objects = sum(len(torch.unique(lab)) - 1 for lab in labels)
    last = args.layout == "channels_last"
    cases = {"network": make_step(None, images, labels, last),
             "step_medoid": make_step(EmbedSegLoss(centre=preset_model()["centre"]), images, labels, last),
             "step_approximate": make_step(EmbedSegLoss(centre="approximate_medoid"), images, labels, last),
             "step_centroid": make_step(EmbedSegLoss(centre="centroid"), images, labels, last)}
    for step in cases.values():  # warm-up: first-call allocations and kernel choices
        step()
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, step in cases.items():
            start = time.perf_counter()
            step()
            seconds[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"batch {BATCH} x {PATCH} x {PATCH}, {objects} objects (pieces) in it, {args.threads} threads, "
          f"{args.repeats} interleaved repeats")
    for name, median in medians.items():
        print(f"{name:17s} median {median:7.3f} s   network / case {medians['network'] / median:5.3f}")
    print(json.dumps({"bench": "embedseg_train_step", "threads": args.threads, "repeats": args.repeats, "layout": args.layout,
                      "objects": objects, "median_seconds": {k: round(v, 4) for k, v in medians.items()},
                      "network_over_case": {k: round(medians["network"] / v, 3) for k, v in medians.items()}}))


if __name__ == "__main__":
    main()
