"""``im2im plan`` against the ``semanticseg_2d`` preset on BBBC039, at the same wall-time budget.

BBBC039 (../shared/data/bbbc039, 50 fields of 520 x 696, instance masks used as foreground
masks) is split by sorted name: every fifth field (10) is held out and never trained on, the
other 40 train. Cases, one after the other on an otherwise idle machine, each ``--minutes`` of
training (``trainer.max_time``):

planned   ``im2im plan --task segmentation --time M`` then ``im2im fit --config`` its config;
preset    ``im2im fit --config semanticseg_2d`` with ``max_time`` M (and ``max_epochs -1``);
searched  ``im2im plan ... --search 4`` (3-fold cross-validation on the 40 training fields,
          about M minutes in all), then its chosen config trained for M minutes.

Each last checkpoint predicts the 10 held-out fields (``im2im_core.predict``, normalization
as trained) and is scored by Dice of foreground masks; mean and per-field figures are printed.

    python benchmarks/bench_plan_bbbc039.py --minutes 8          # about 40 minutes on 2 cores
    python benchmarks/bench_plan_bbbc039.py --minutes 1 --no-search   # a quick check

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbbc039"


def split(folder: Path) -> tuple[Path, list[Path]]:
    """40 training fields as IM/GT links under ``folder``; the 10 held-out images."""
    images = sorted((DATA / "images").glob("*.tif"))
    held_out = images[::5]
    for sub in ("IM", "GT"):
        (folder / sub).mkdir(parents=True)
    for image in images:
        if image in held_out:
            continue
        (folder / "IM" / image.name).symlink_to(image)
        (folder / "GT" / image.name).symlink_to(DATA / "masks" / image.name)
    return folder, held_out


def im2im(*args: str, cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "im2im_cli", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"im2im {' '.join(args[:3])} failed: {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - started


def score(checkpoint: Path, held_out: list[Path]) -> list[float]:
    from bioio import BioImage

    from im2im_core.inference import predict
    from im2im_core.metrics import dice

    scores = []
    for image in held_out:
        pixels = BioImage(image).get_image_data("YX")
        target = BioImage(DATA / "masks" / image.name).get_image_data("YX")
        scores.append(dice(predict(checkpoint, pixels, normalize="auto") > 0, target > 0))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8)
    parser.add_argument("--no-search", action="store_true")
    parser.add_argument("--cases", default="planned,preset,searched", help="comma-separated subset of the cases")
    args = parser.parse_args()
    budget = f"{int(args.minutes * 60)}"
    max_time = f"00:00:{int(args.minutes):02d}:{int(args.minutes * 60) % 60:02d}"
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        train, held_out = split(root / "train")
        common = ["--trainer.enable_progress_bar", "false"]
        cases = [("planned", ["plan", "--data.data_path", str(train), "--task", "segmentation", "--time", budget,
                              "--output", str(root / "planned" / "config.yaml")]),
                 ("preset", None)]
        if not args.no_search:
            cases.append(("searched", ["plan", "--data.data_path", str(train), "--task", "segmentation", "--time", budget,
                                       "--search", "4", "--output", str(root / "searched" / "config.yaml")]))
        for case, plan in [c for c in cases if c[0] in args.cases.split(",")]:
            run = root / f"run_{case}"
            plan_seconds = 0.0
            if plan is None:
                fit = ["fit", "--config", "semanticseg_2d", "--data.data_path", str(train), "--trainer.max_time", max_time,
                       "--trainer.max_epochs", "-1"]
            else:
                plan_seconds = im2im(*plan, cwd=root)
                fit = ["fit", "--config", plan[-1]]
            fit_seconds = im2im(*fit, "--trainer.default_root_dir", str(run), *common, cwd=root)
            checkpoint = next(run.rglob("last.ckpt"))
            import torch

            steps = torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]
            scores = score(checkpoint, held_out)
            import yaml

            config = yaml.safe_load(Path(plan[-1]).read_text()) if plan else {"data": {"batch_size": 8, "patch_size": [256, 256]}}
            results[case] = {"dice_mean": float(np.mean(scores)), "dice_std": float(np.std(scores)), "dice": scores,
                             "steps": int(steps), "fit_s": fit_seconds, "plan_s": plan_seconds,
                             "batch_size": config["data"]["batch_size"], "patch_size": config["data"]["patch_size"]}
            print(f"{case:>9}: held-out Dice {np.mean(scores):.4f} +- {np.std(scores):.4f} after {steps} steps of "
                  f"{results[case]['batch_size']} patches "
                  f"(fit {fit_seconds:.0f} s, plan {plan_seconds:.0f} s)", flush=True)
            if case == "searched":
                table = json.loads((root / "searched" / "search" / "results.json").read_text())
                results[case]["search"] = table
                print(json.dumps(table["variants"]), flush=True)
    print(json.dumps({"minutes": args.minutes, "held_out_fields": 10, "results": results}))


if __name__ == "__main__":
    main()
