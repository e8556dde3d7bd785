"""Data pipeline speed for the semanticseg_2d preset on BBBC039, beside the network-only limit.

Prints, in one run on this machine:
  - loader samples/s alone (memory cache filled),
  - first and second epoch times of the loader with the cache in memory, on disk, and off,
  - training samples/s through Lightning (fit, data module, FCN) and the network-only
    throughput of the same network, loss and optimizer on a fixed in-memory batch,
and ends with one JSON line of the figures.

    python benchmarks/bench_data.py [--data ../shared/data/bbbc039] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.cli import instantiate_class

from im2im_cli.config import load_config
from im2im_core.data import Im2ImDataModule
from im2im_core.plugins import get_registry

REPO = Path(__file__).resolve().parents[1]


def preset() -> dict:
    return yaml.safe_load(load_config("semanticseg_2d", get_registry()))


def make_datamodule(config: dict, data: Path, **overrides) -> Im2ImDataModule:
    kwargs = {k: v for k, v in config["data"].items() if k != "data_path"}
    kwargs.update(input_dir="images", target_dir="masks", **overrides)
    module = Im2ImDataModule(str(data), **kwargs)
    module.setup("fit")
    return module


def make_model(config: dict) -> pl.LightningModule:
    init = dict(config["model"]["init_args"])
    init["backbone"] = instantiate_class((), init["backbone"])
    optimizer_spec = init.pop("optimizer")
    from im2im_core.frameworks import FCN

    return FCN(**init, optimizer=lambda params: instantiate_class((params,), optimizer_spec))


def loader_epochs(config: dict, data: Path, cache: str, cache_dir: str | None = None) -> tuple[float, float, int]:
    """Times of two epochs over the training loader (the first includes filling the cache)."""
    start = time.perf_counter()
    module = make_datamodule(config, data, cache=cache, cache_dir=cache_dir)
    loader = module.train_dataloader()
    count = sum(batch["IM"].shape[0] for batch in loader)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in loader:
        pass
    return first, time.perf_counter() - start, count


def network_only(config: dict, steps: int) -> float:
    """Patches/s of forward, loss, backward and step on one fixed batch: the limit."""
    model = make_model(config)
    optimizer = model.configure_optimizers()
    batch_size, size = config["data"]["batch_size"], config["data"]["patch_size"]
    x = torch.rand(batch_size, 1, *size)
    y = (torch.rand(batch_size, 1, *size) > 0.7).float()
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = model._loss(model.backbone(x), y)
        loss.backward()
        optimizer.step()
        if step >= 2:  # warm-up
            times.append(time.perf_counter() - start)
    return batch_size / statistics.median(times)


class EpochTimer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self.samples: list[int] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start, self._count = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._count += batch["IM"].shape[0]

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.times.append(time.perf_counter() - self._start)
        self.samples.append(self._count)


def training(config: dict, data: Path, epochs: int) -> float:
    """Patches/s of Lightning training (data module, FCN, Trainer) after the first epoch."""
    timer = EpochTimer()
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, callbacks=[timer])
    trainer.fit(make_model(config), datamodule=make_datamodule(config, data))
    rates = [n / t for n, t in zip(timer.samples[1:], timer.times[1:])]
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "bbbc039")
    parser.add_argument("--steps", type=int, default=10, help="network-only steps")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (the first is not timed)")
    args = parser.parse_args()
    config = preset()
    print(f"semanticseg_2d on {args.data}: patch {config['data']['patch_size']}, batch {config['data']['batch_size']}, "
          f"{config['data']['samples_per_image']} patches per image, torch threads {torch.get_num_threads()}")

    figures: dict[str, float] = {}
    for cache in ("none", "memory", "disk"):
        with tempfile.TemporaryDirectory() as cache_dir:
            first, second, count = loader_epochs(config, args.data, cache, cache_dir)
        figures[f"epoch1_s_{cache}"], figures[f"epoch2_s_{cache}"] = round(first, 2), round(second, 2)
        print(f"loader, cache {cache:6s}: epoch 1 {first:6.2f} s, epoch 2 {second:6.2f} s ({count} patches), "
              f"epoch2/epoch1 {second / first:.3f}")
        if cache == "memory":
            figures["loader_samples_per_s"] = round(count / second, 1)
    figures["epoch2_over_epoch1_cached"] = round(figures["epoch2_s_memory"] / figures["epoch1_s_memory"], 3)
    figures["epoch2_over_epoch1_disk"] = round(figures["epoch2_s_disk"] / figures["epoch1_s_disk"], 3)
    print(f"loader alone (memory cache filled): {figures['loader_samples_per_s']:.1f} patches/s")

    # the limit is measured before and after training and the faster kept: the machine is shared
    limit_before = network_only(config, args.steps)
    train = training(config, args.data, args.epochs)
    limit = max(limit_before, network_only(config, args.steps))
    figures.update(network_only_samples_per_s=round(limit, 2), train_samples_per_s=round(train, 2),
                   train_share_of_limit=round(train / limit, 3))
    print(f"network only (fixed batch): {limit:.2f} patches/s")
    print(f"training (Lightning + data module, median epoch after the first): {train:.2f} patches/s "
          f"= {100 * train / limit:.1f}% of the network-only limit")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
