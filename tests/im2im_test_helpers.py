"""A callback that tests load by class path to see what a training run started from."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl


class StartRecorder(pl.Callback):
    """Write the state a fit starts from (after any checkpoint is restored) to a JSON file.

    One file per process rank: ``<path>.rank<N>.json``.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizer = trainer.optimizers[0]
        adam_steps = [float(s["step"]) for s in optimizer.state.values() if "step" in s]
        schedulers = [config.scheduler.state_dict() for config in trainer.lr_scheduler_configs]
        record = {
            "global_step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "world_size": trainer.world_size,
            "rank": trainer.global_rank,
            "optimizer_steps": sorted(set(adam_steps)),
            "scheduler_last_epoch": [s.get("last_epoch") for s in schedulers],
            "lr": [group["lr"] for group in optimizer.param_groups],
        }
        Path(f"{self.path}.rank{trainer.global_rank}.json").write_text(json.dumps(record))
