"""``im2im plan`` against the ``semanticseg_2d`` preset on BBBC039, at the same wall-time budget.

BBBC039 (../shared/data/bbbc039, 50 fields of 520 x 696, instance masks used as foreground
masks) is split by sorted name: every fifth field (10) is held out and never trained on, the
other 40 train. Cases, one after the other on an otherwise idle machine (alternating within each of ``--seeds``),
each ``--minutes`` of training (``trainer.max_time``):

planned   ``im2im plan --task segmentation --time M`` then ``im2im fit --config`` its config;
preset    ``im2im fit --config semanticseg_2d`` with ``max_time`` M (and ``max_epochs -1``);
searched  ``im2im plan ... --search 4`` (3-fold cross-validation on the 40 training fields,
          about M minutes in all), then its chosen config trained for M minutes.

Each last checkpoint predicts the 10 held-out fields (``im2im_core.predict``, normalization
as trained) and is scored by Dice of foreground masks; mean and per-field figures are printed.

    python benchmarks/bench_plan_bbbc039.py --minutes 8          # about 40 minutes on 2 cores
    python benchmarks/bench_plan_bbbc039.py --minutes 1 --no-search   # a quick check
    python benchmarks/bench_plan_bbbc039.py --cases planned,preset --seeds 0,1   # a, b, a, b

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
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds; cases alternate within each seed")
    args = parser.parse_args()
    budget = f"{int(args.minutes * 60)}"
    max_time = f"00:00:{int(args.minutes):02d}:{int(args.minutes * 60) % 60:02d}"
    seeds = [int(s) for s in args.seeds.split(",")]
    runs: dict[str, list[dict]] = {}
    plans: dict[str, tuple[list[str], float]] = {}
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
        cases = [c for c in cases if c[0] in args.cases.split(",")]
        for case, plan in cases:  # plans (and the search) once, before any timed training
            if plan is None:
                plans[case] = (["fit", "--config", "semanticseg_2d", "--data.data_path", str(train),
                                "--trainer.max_time", max_time, "--trainer.max_epochs", "-1"], 0.0)
            else:
                plans[case] = (["fit", "--config", plan[-1]], im2im(*plan, cwd=root))
                print(f"{case:>9}: planned in {plans[case][1]:.0f} s", flush=True)
        import torch
        import yaml

        for seed in seeds:
            for case, plan in cases:  # interleaved: a, b, a, b across seeds
                fit, plan_seconds = plans[case]
                run = root / f"run_{case}_{seed}"
                fit_seconds = im2im(*fit, "--seed_everything", str(seed), "--trainer.default_root_dir", str(run),
                                    *common, cwd=root)
                checkpoint = next(run.rglob("last.ckpt"))
                steps = torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]
                scores = score(checkpoint, held_out)
                config = (yaml.safe_load(Path(plan[-1]).read_text()) if plan else
                          {"data": {"batch_size": 8, "patch_size": [256, 256]}})
                runs.setdefault(case, []).append(
                    {"seed": seed, "dice_mean": float(np.mean(scores)), "dice_std": float(np.std(scores)),
                     "dice": scores, "steps": int(steps), "fit_s": fit_seconds, "plan_s": plan_seconds,
                     "batch_size": config["data"]["batch_size"], "patch_size": config["data"]["patch_size"]})
                print(f"{case:>9} seed {seed}: held-out Dice {np.mean(scores):.4f} +- {np.std(scores):.4f} after {steps} "
                      f"steps of {config['data']['batch_size']} patches (fit {fit_seconds:.0f} s)", flush=True)
        results: dict[str, dict] = {}
        for case, case_runs in runs.items():
            per_field = np.mean([r["dice"] for r in case_runs], axis=0)  # each field averaged over the seeds
            results[case] = {"dice_mean": float(per_field.mean()), "dice_std_fields": float(per_field.std()),
                             "dice_seeds": [r["dice_mean"] for r in case_runs], "runs": case_runs}
            if case == "searched":
                results[case]["search"] = json.loads((root / "searched" / "search" / "results.json").read_text())
                print(json.dumps(results[case]["search"]["variants"]), flush=True)
        for case, result in results.items():
            print(f"{case:>9}: held-out Dice {result['dice_mean']:.4f} +- {result['dice_std_fields']:.4f} over fields, "
                  f"seeds {', '.join(f'{d:.4f}' for d in result['dice_seeds'])}", flush=True)
        if "planned" in results and "preset" in results:
            difference = (np.mean([r["dice"] for r in runs["planned"]], axis=0)
                          - np.mean([r["dice"] for r in runs["preset"]], axis=0))
            results["planned_minus_preset"] = {"mean": float(difference.mean()), "fields_higher": int((difference > 0).sum()),
                                               "per_field": difference.tolist()}
            print(f"planned - preset, per field over seeds: mean {difference.mean():+.4f}, "
                  f"{int((difference > 0).sum())} of {difference.size} fields higher", flush=True)
    print(json.dumps({"minutes": args.minutes, "seeds": seeds, "held_out_fields": 10, "results": results}))


if __name__ == "__main__":
    main()
