"""What holds im2im's N2V back on FMD: one training variant of ``denoise_n2v_2d`` per call, scored on the test fields.

The split, steps, batch and patch of ``bench_n2v_fmd.py`` (fields 1-7 train, the 24 frames of
fields 8-10 are scored against their clean means; 1000 steps of 16 patches of 64 x 64, two
patches from each of 8 frames per batch). Variants (combinable):

- ``--ema DECAY``: Lightning's ``EMAWeightAveraging`` (the average of the weights is what the
  checkpoint holds and prediction uses);
- ``--normalize preset|percentiles|zscore|meanstd``: the preset's ``TrainingSetNormalized``
  (the training frames' mean and std, learned at fit and read back from the checkpoint), the
  core's per-image percentiles (0.5, 99.5) to 0..1 (the presets' normalization before it), a
  per-image z-score (MONAI ``NormalizeIntensityd``), or the mean and std of all training frames
  computed here and given as a fixed ``ScaleIntensityRanged`` (how the first variant runs
  emulated CAREamics' normalization); prediction applies the same and maps the outputs back
  into 0..255;
- ``--samples-per-image 1``: 16 frames per batch instead of 8;
- ``--off-axis``: replacement pixels only off the masked pixel's row and column (N2V's
  ``off_axis``; CAREamics' uniform replacement moves along every axis);
- ``--sampling content --foreground-fraction 0.9``: patches centred on the frames' content
  (above Otsu's threshold) in that share, the rest anywhere (CAREamics' default draws them
  stratified over each frame, content or not: its patch filters apply only when asked for);
- ``--careamics-python PY``: instead of im2im, CAREamics' N2V under the same conditions
  (``careamics_n2v_fmd.py`` in its own environment, with this seed, steps and threads).

Prints one JSON line: PSNR (mean and std over the 24 frames), SSIM, the slope of a line from
clean to output (1: contrast kept), ``grid`` (:func:`bench_n2v_fmd.grid_peaks`), training
seconds and patches/s. Not part of CI. Usage::

    python benchmarks/bench_n2v_fmd_variants.py --name ema --ema 0.99 [--normalize meanstd] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_n2v_fmd as fmd  # noqa: E402


def normalization(kind: str, train: np.ndarray) -> tuple[list[dict] | None, Callable]:
    """The ``data.normalize`` of a variant (None: the preset's) and ``predict_frame(model, checkpoint, frame)`` in 0..255."""
    from im2im_core.inference import predict

    if kind == "preset":
        return None, lambda model, checkpoint, frame: predict(model, frame, normalize=fmd.stored_normalization(checkpoint))
    if kind == "percentiles":
        steps = [{"class_path": "PercentileNormalized", "init_args": {"keys": ["IM"]}}]
        return steps, lambda model, checkpoint, frame: predict(model, frame, normalize=(0.5, 99.5))
    if kind == "zscore":
        steps = [{"class_path": "monai.transforms.NormalizeIntensityd", "init_args": {"keys": ["IM"]}}]
        return steps, lambda model, checkpoint, frame: (predict(model, (frame - frame.mean()) / frame.std()) * frame.std()
                                                        + frame.mean())
    mean, std = float(train.mean()), float(train.std())
    steps = [{"class_path": "monai.transforms.ScaleIntensityRanged",
              "init_args": {"keys": ["IM"], "a_min": mean, "a_max": mean + std, "b_min": 0, "b_max": 1}}]
    return steps, lambda model, checkpoint, frame: predict(model, (frame - mean) / std) * std + mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="run folder name under --workdir/runs")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_n2v_fmd_variants"))
    parser.add_argument("--preset", default="denoise_n2v_2d")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--ema", type=float, default=0.0, help="EMA decay; 0: no weight average")
    parser.add_argument("--normalize", choices=["preset", "percentiles", "zscore", "meanstd"], default="preset")
    parser.add_argument("--samples-per-image", type=int, default=2)
    parser.add_argument("--off-axis", action="store_true")
    parser.add_argument("--sampling", choices=["auto", "uniform", "content"], default="auto")
    parser.add_argument("--foreground-fraction", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--careamics-python", type=Path, help="score CAREamics' N2V (its own environment) instead")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    train_noisy, _, train_owner = fmd.load(fmd.TRAIN_FIELDS)
    test_noisy, test_clean, _ = fmd.load(fmd.TEST_FIELDS)
    frames = args.workdir / "n2v_train"
    if not frames.is_dir():
        fmd.write_frames(frames, train_noisy, [f"field{f}_frame{i % 8}" for i, f in enumerate(train_owner)])
    root = args.workdir / "runs" / args.name
    root.mkdir(parents=True, exist_ok=True)
    if args.careamics_python is not None:
        np.save(args.workdir / "train.npy", train_noisy.astype(np.uint8))
        np.save(args.workdir / "test.npy", test_noisy.astype(np.uint8))
        command = [str(args.careamics_python), str(Path(__file__).resolve().parent / "careamics_n2v_fmd.py"),
                   "--workdir", str(args.workdir), "--steps", str(args.steps), "--threads", str(args.threads),
                   "--seed", str(args.seed)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"careamics failed:\n{done.stderr[-3000:]}")
        seconds = json.loads(done.stdout.strip().splitlines()[-1])["train_seconds"]
        report(args, "careamics", np.load(args.workdir / "careamics_n2v.npy"), test_clean, seconds)
        return
    callbacks = [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                  "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True}}]
    if args.ema:
        callbacks.append({"class_path": "lightning.pytorch.callbacks.EMAWeightAveraging", "init_args": {"decay": args.ema}})
    steps, predict_frame = normalization(args.normalize, train_noisy)
    config = {"seed_everything": args.seed, "trainer": {"callbacks": callbacks}}  # replaces the preset's callbacks
    if steps:
        config["data"] = {"normalize": steps}
    (root / "variant.yaml").write_text(yaml.safe_dump(config))
    options = fmd.common(args.steps, 16, 64, root)
    options[options.index("--data.samples_per_image") + 1] = str(args.samples_per_image)
    options += ["--data.sampling", args.sampling, "--data.foreground_fraction", str(args.foreground_fraction),
                "--model.init_args.off_axis", str(args.off_axis).lower()]
    seconds = fmd.fit(["--config", args.preset, "--config", str(root / "variant.yaml"), "--data.data_path", str(frames),
                       *options])
    from im2im_core.inference import load_model

    checkpoint = root / "checkpoints" / "last.ckpt"
    model = load_model(checkpoint)
    report(args, "im2im", np.stack([predict_frame(model, checkpoint, frame) for frame in test_noisy]), test_clean, seconds)


def report(args: argparse.Namespace, tool: str, outputs: np.ndarray, test_clean: np.ndarray, seconds: float) -> None:
    """The JSON line of one run."""
    figures = fmd.scores(outputs, test_clean)
    variant = ({"ema": args.ema, "normalize": args.normalize, "samples_per_image": args.samples_per_image,
                "sampling": args.sampling, "foreground_fraction": args.foreground_fraction, "off_axis": args.off_axis}
               if tool == "im2im" else {"defaults": "careamics_n2v_fmd.py"})
    print(json.dumps({"bench": "n2v_fmd_variants", "tool": tool, "name": args.name, "seed": args.seed, **variant,
                      "steps": args.steps,
                      "psnr": round(float(np.mean(figures["psnr"])), 3), "psnr_std": round(float(np.std(figures["psnr"])), 3),
                      "ssim": round(float(np.mean(figures["ssim"])), 4), "slope": round(fmd.slope(outputs, test_clean), 3),
                      "grid": round(fmd.grid_peaks(outputs - test_clean), 2), "train_seconds": round(seconds, 1),
                      "patches_per_s": round(args.steps * 16 / seconds, 1)}))


if __name__ == "__main__":
    main()
