"""``im2im plan --search N``: train N variants of a plan with k-fold cross-validation, keep the best.

Each (variant, fold) run is ``im2im fit`` in a child process for an equal share of the budget,
then scored here: the fold's validation images are predicted from the run's last checkpoint with
the core's engine and compared with their targets (Dice for masks, AP50 for instances, Pearson's
r for intensities). A finished run leaves ``result.json`` in its folder, so an interrupted
search continues where it stopped.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from im2im_core.errors import ConfigError
from im2im_core.planning.commented_yaml import commented_yaml
from im2im_core.planning.fingerprint import Fingerprint
from im2im_core.planning.plan import Plan, backbone
from im2im_core.planning.rules import Topology

#: Shortest run of a search (seconds): less does not train a network at all.
MIN_RUN_SECONDS = 60


def variants(plan: Plan) -> list[tuple[str, Plan]]:
    """The plan, then variants in order: learning rate x3, half the patch area at twice the batch, one level
    fewer, learning rate / 3, the first level at the other resolution (strided U-Net against nnU-Net's DynUNet).
    """
    found = [("planned", plan)]
    model = plan.config["model"]["init_args"]

    def changed(name: str, edit: Any) -> None:
        other = Plan(copy.deepcopy(plan.config), dict(plan.reasons), dict(plan.measured))
        if edit(other.config) is not False:
            found.append((name, other))

    lr = model.get("optimizer", {}).get("init_args", {}).get("lr")
    if lr:
        changed("lr_x3", lambda c: c["model"]["init_args"]["optimizer"]["init_args"].update(lr=lr * 3))

    def half_patch(config: dict[str, Any]) -> bool:
        network = config["model"]["init_args"].get("backbone", {}).get("init_args", {})
        strides = network.get("strides")
        patch = config["data"]["patch_size"]
        per_axis = [[s] * len(patch) if isinstance(s, int) else s for s in strides or []]  # UNet: one int a pooling
        divisor = [int(np.prod([s[a] for s in per_axis])) for a in range(len(patch))] if per_axis else [16] * len(patch)
        smaller = [max(d, round(p / math.sqrt(2) / d) * d) for p, d in zip(patch, divisor)]  # nearest multiple
        if smaller == patch:
            return False
        config["data"]["patch_size"] = smaller
        config["data"]["batch_size"] = config["data"].get("batch_size", 4) * 2
        return True

    changed("half_patch", half_patch)

    def shallower(config: dict[str, Any]) -> bool:
        network = config["model"]["init_args"].get("backbone", {}).get("init_args", {})
        if "strides" not in network or len(network["strides"]) < 3:
            return False
        if "channels" in network:  # MONAI UNet: a stride per pooling, a width per level
            network["strides"], network["channels"] = network["strides"][:-1], network["channels"][:-1]
            return True
        for key in ("strides", "kernel_size", "filters"):  # DynUNet: the first level's stride is 1
            network[key] = network[key][:-1]
        network["upsample_kernel_size"] = network["strides"][1:]
        return True

    changed("one_level_fewer", shallower)
    if lr:
        changed("lr_div3", lambda c: c["model"]["init_args"]["optimizer"]["init_args"].update(lr=lr / 3))

    def other_first_level(config: dict[str, Any]) -> bool:
        topology = plan.measured.get("topology")
        if topology is None:
            return False
        strided = not plan.measured["strided_first"]
        if strided and any(s != [2] * len(s) for s in topology["strides"][1:]):
            return False  # MONAI's UNet pools every axis alike
        config["model"]["init_args"]["backbone"] = backbone(Topology(**topology), plan.measured["device"], strided)
        return True

    changed("other_first_level", other_first_level)
    return found


def _score(checkpoint: Path, data: Fingerprint, task: str, fold: int, folds: int, seed: int) -> float:
    """The mean score of the fold's validation images predicted from ``checkpoint``."""
    from im2im_core.data.datamodule import fold_indices
    from im2im_core.data.layouts import paired_samples
    from im2im_core.inference import predict
    from im2im_core.keys import IMAGE, TARGET
    from im2im_core.metrics import average_precision, dice, pearson
    from im2im_core.plugins import get_registry

    samples = paired_samples(data.data_path, data.layout, data.input_dir, data.target_dir)
    read = get_registry().get("readers", data.reader)(dims=data.dims).read
    scores = []
    for index in fold_indices(len(samples), folds, fold, seed):  # the folds the run's data module drew
        image = read(samples[index][IMAGE]).numpy()
        target = np.squeeze(read(samples[index][TARGET]).numpy())
        output = np.squeeze(predict(checkpoint, image, dims=data.dims, normalize="auto"))
        if task == "segmentation":
            scores.append(dice(output > 0, target > 0))
        elif task == "instance":
            scores.append(average_precision(output, target, 0.5))
        else:
            scores.append(pearson(output, target))
    return float(np.mean(scores))


def _run(name: str, plan: Plan, data: Fingerprint, task: str, fold: int, folds: int, seconds: float,
         folder: Path) -> dict[str, Any]:
    """One (variant, fold) run, or its result from an earlier, interrupted search."""
    run = folder / name / f"fold{fold}"
    result_path = run / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(commented_yaml(plan.config, {}))
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    command = [sys.executable, "-m", "im2im_cli", "fit", "--config", str(run / "config.yaml"),
               "--data.fold", str(fold), "--data.folds", str(folds),
               "--trainer.max_time", f"00:{hours:02d}:{minutes:02d}:{secs:02d}",
               "--trainer.default_root_dir", str(run / "im2im_run"), "--trainer.enable_progress_bar", "false",
               "--trainer.check_val_every_n_epoch", "1000000"]
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode != 0:
        lines = [line for line in finished.stderr.splitlines() if line.strip()]
        raise ConfigError(f"search run {name} fold {fold} failed: {lines[-1] if lines else 'no message'} (see {run})")
    checkpoint = run / "im2im_run" / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        found = sorted(run.rglob("last.ckpt"))
        if not found:
            raise ConfigError(f"search run {name} fold {fold} wrote no checkpoint under {run}")
        checkpoint = found[0]
    seed = int(plan.config["data"].get("split_seed", 0))
    result = {"variant": name, "fold": fold, "score": _score(checkpoint, data, task, fold, folds, seed), "seconds": seconds}
    result_path.write_text(json.dumps(result))
    return result


def search(plan: Plan, data: Fingerprint, count: int, folds: int, seconds: float, folder: Path) -> tuple[Plan, str]:
    """Train the first ``count`` :func:`variants` on ``folds`` folds, each for an equal share of ``seconds``;
    return the best plan (highest mean score) and a table of every variant.
    """
    task = plan.measured.get("task")
    if task not in ("segmentation", "instance", "regression"):
        raise ConfigError(f"--search needs targets to score against (task {task}); plan without --search")
    if folds < 2 or folds > data.images:
        raise ConfigError(f"--folds {folds}: expected 2 to {data.images} (the number of images)")
    candidates = variants(plan)[:count]
    share = max(MIN_RUN_SECONDS, seconds / (len(candidates) * folds))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, candidate in candidates:
        results = [_run(name, candidate, data, task, fold, folds, share, folder) for fold in range(folds)]
        scores = [r["score"] for r in results]
        rows.append({"variant": name, "mean": float(np.mean(scores)), "std": float(np.std(scores)), "folds": scores})
    best = max(range(len(rows)), key=lambda i: rows[i]["mean"])
    (folder / "results.json").write_text(json.dumps({"runs_seconds": share, "variants": rows, "chosen": rows[best]["variant"]},
                                                   indent=2))
    metric = {"segmentation": "Dice", "instance": "AP50", "regression": "Pearson r"}[task]
    lines = [f"{'variant':<16} {metric} mean +- std over {folds} folds ({share:.0f} s per run)"]
    lines += [f"{r['variant']:<16} {r['mean']:.4f} +- {r['std']:.4f}{'  <- chosen' if i == best else ''}"
              for i, r in enumerate(rows)]
    chosen = candidates[best][1]
    gain = rows[best]["mean"] - rows[0]["mean"]
    chosen.reasons["model"] = (f"--search {count}: {rows[best]['variant']} scored {metric} {rows[best]['mean']:.4f} over "
                               f"{folds} folds, {gain:+.4f} against the plan as planned")
    return chosen, "\n".join(lines)
