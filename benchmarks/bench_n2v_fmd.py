"""Denoising with real noise (FMD confocal BPAE nuclei): N2V and N2V2 of im2im against CAREamics and baselines.

Fields 1-7 of ``../shared/data/fmd_confocal_bpae_noisy_clean`` train (their 56 noisy frames;
the clean means only for the supervised upper bound and for choosing the filters' sizes);
the 24 noisy frames of fields 8-10, which no training saw, are scored with PSNR and SSIM
(data range 255) against their field's clean mean (the mean of 50 frames). Cases:

- the noisy input; a Gaussian and a median filter, sizes chosen on the training fields;
- im2im ``denoise_n2v_2d`` and ``denoise_n2v2_2d`` (the presets as they ship, patch, batch and
  steps set as below);
- CAREamics 0.3.5 N2V and N2V2 (its defaults: the same U-Net, 333,729 parameters, window 11,
  0.2 % masked) with the same patch size, batch and steps, run by ``careamics_n2v_fmd.py`` in
  an environment of its own (``--careamics-python``; CAREamics needs torch < 2.14);
- Noise2Noise (frame i -> frame i+1 of a field) and the supervised FCN (noisy -> clean), im2im
  FCN configs with the same U-Net, patch, batch, steps, optimizer (Adam, lr 1e-3, as the N2V
  presets and CAREamics' default), weight average (decay 0.99) and content sampling (0.9) as the N2V presets.

Every im2im case draws 2 patches from each of 8 frames per batch of 16.

The N2V cases run with seeds 0 .. ``--seeds`` - 1 and interleave, im2im then CAREamics, N2V then
N2V2, seed after seed (a, b, a, b); a case reports the mean of its seeds, and each run reports
training patches per second (steps x batch / wall time of the training call, data preparation
included). Also reported: ``grid`` (:func:`grid_peaks` of the residual output - clean; about 1:
no periodic pattern, N2V's checkerboard raises it), ``slope`` (of a line fitted from clean to
output: contrast kept at 1), the noise's correlation between neighbours on the training
fields, and docs/images/n2v_fmd.png with crops of noisy, N2V, N2V2, CAREamics N2V and clean.

Not part of CI (minutes of training per case). Usage::

    python benchmarks/bench_n2v_fmd.py --careamics-python ~/venvs/careamics/bin/python [--steps 1000] [--seeds 2]

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import yaml
from PIL import Image
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fmd_confocal_bpae_noisy_clean"
TRAIN_FIELDS, TEST_FIELDS = range(1, 8), range(8, 11)
HERE = Path(__file__).resolve().parent


def load(fields: range) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Noisy frames (N, 512, 512), the clean mean of each frame's field, and the field of each frame."""
    noisy, clean, owner = [], [], []
    for field in fields:
        target = np.asarray(Image.open(DATA / "gt" / f"fov{field}.png"), dtype=np.float32)
        for path in sorted((DATA / "raw" / str(field)).glob("*.png")):
            noisy.append(np.asarray(Image.open(path), dtype=np.float32))
            clean.append(target)
            owner.append(field)
    return np.stack(noisy), np.stack(clean), owner


def scores(outputs: np.ndarray, clean: np.ndarray) -> dict[str, list[float]]:
    """PSNR and SSIM of each output against its clean image (data range 255)."""
    return {"psnr": [peak_signal_noise_ratio(c, np.clip(o, 0, 255), data_range=255) for o, c in zip(outputs, clean)],
            "ssim": [structural_similarity(c, np.clip(o, 0, 255), data_range=255) for o, c in zip(outputs, clean)]}


def grid_peaks(images: np.ndarray) -> float:
    """How much a grid of period 2 or 4 pixels (a depth-2 U-Net's checkerboard) stands out in ``images`` (N, Y, X).

    At each of the 15 frequencies of such a grid, the power over the median power of the 7 x 7
    frequencies around it (a local background); the mean of these peak ratios, median over
    images. About 1: no periodic pattern; a checkerboard raises it. Also used by
    bench_n2v_telomeres.py.
    """
    ratios = []
    for image in images:
        power = np.abs(np.fft.fft2(image - image.mean())) ** 2
        peaks = []
        for i in range(4):
            for j in range(4):
                if (i, j) == (0, 0):
                    continue
                y, x = i * power.shape[0] // 4, j * power.shape[1] // 4
                around = np.roll(np.roll(power, 3 - y, axis=0), 3 - x, axis=1)[:7, :7].copy()
                around[3, 3] = np.nan
                peaks.append(power[y, x] / np.nanmedian(around))
        ratios.append(float(np.mean(peaks)))
    return float(np.median(ratios))


def slope(outputs: np.ndarray, clean: np.ndarray) -> float:
    """Median over images of the slope of a line fitted from clean to output (1: contrast kept, < 1: compressed)."""
    return float(np.median([np.polyfit(c.ravel(), o.ravel(), 1)[0] for o, c in zip(outputs, clean)]))


def neighbour_noise_r(noisy: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """Pearson's r of the noise (noisy - clean) between horizontal and between vertical neighbours."""
    noise = noisy - clean
    pairs = {"horizontal": (noise[:, :, :-1], noise[:, :, 1:]), "vertical": (noise[:, :-1], noise[:, 1:])}
    return {name: round(float(np.corrcoef(a.ravel(), b.ravel())[0, 1]), 3) for name, (a, b) in pairs.items()}


def write_frames(folder: Path, frames: np.ndarray, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for frame, name in zip(frames, names):
        tifffile.imwrite(folder / f"{name}.tif", frame.astype(np.uint8))


def fit(arguments: list[str]) -> float:
    """``im2im fit`` in this process; the seconds it took."""
    from im2im_cli.main import main

    start = time.perf_counter()
    code = main(["fit", *arguments])
    if code != 0:
        raise SystemExit(f"im2im fit failed ({code}): {arguments}")
    return time.perf_counter() - start


def common(steps: int, batch: int, patch: int, root: Path) -> list[str]:
    return ["--data.patch_size", f"[{patch},{patch}]", "--data.batch_size", str(batch), "--data.samples_per_image", "2",
            "--data.val_fraction", "0", "--trainer.max_steps", str(steps), "--trainer.max_epochs", "-1",  # steps decide
            "--trainer.limit_val_batches", "0",
            "--trainer.accelerator", "cpu", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(root)]


def fcn_config(path: Path) -> Path:
    """An im2im FCN config (regression, MSE) with the N2V U-Net and the N2V presets' weight average and sampling;
    intensities 0..255 mapped to 0..1, as are the targets.
    """
    config = {
        "seed_everything": 0,
        # the weight average of the N2V presets: without it the last step's weights (and batch-norm statistics)
        # of this U-Net at lr 1e-3 vary from run to run by several dB (docs/results.md)
        "trainer": {"callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"save_last": True}},
                                  {"class_path": "lightning.pytorch.callbacks.EMAWeightAveraging",
                                   "init_args": {"decay": 0.99}}]},
        "model": {"class_path": "FCN", "init_args": {
            "task": "regression", "backbone": {"class_path": "n2v_unet", "init_args": {"features": [32, 64, 128]}},
            "loss": {"class_path": "torch.nn.MSELoss"},
            "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.001}}}},
        # the N2V presets' sampling too: 9 of 10 patches centred on the input's content
        "data": {"dims": "YX", "target": "intensity", "sampling": "content", "foreground_fraction": 0.9, "normalize": [
            {"class_path": "monai.transforms.ScaleIntensityRanged",
             "init_args": {"keys": ["IM", "GT"], "a_min": 0, "a_max": 255, "b_min": 0, "b_max": 1}}]},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def last_checkpoint(root: Path) -> Path:
    found = sorted(root.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"no last.ckpt under {root}")
    return found[-1]


def stored_normalization(checkpoint: Path) -> Any:
    """What ``predict(checkpoint, ..., normalize="auto")`` uses: the training frames' mean and std
    that the N2V presets (``TrainingSetNormalized``) store in the checkpoint.
    """
    from im2im_core.inference.predict_array import resolve_normalize

    return resolve_normalize("auto", checkpoint)


def predict_all(checkpoint: Path, noisy: np.ndarray, fixed_range: bool) -> np.ndarray:
    """Whole test frames through im2im's prediction: the N2V presets normalize by the training set's
    mean and std and give the input's units back; the FCN configs see intensities / 255 and their
    outputs are scaled back here.
    """
    from im2im_core.inference import load_model, predict

    model = load_model(checkpoint)
    if fixed_range:
        return np.stack([predict(model, frame / 255.0) * 255.0 for frame in noisy])
    normalize = stored_normalization(checkpoint)
    return np.stack([predict(model, frame, normalize=normalize) for frame in noisy])


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": round(float(np.mean(values)), 3), "std": round(float(np.std(values)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description="N2V on FMD: im2im against CAREamics and baselines")
    parser.add_argument("--careamics-python", type=Path, help="python of an environment with careamics 0.3.5")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_n2v_fmd"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3, help="runs of each N2V case, seeds 0 .. seeds - 1")
    parser.add_argument("--image", type=Path, default=HERE.parent / "docs" / "images" / "n2v_fmd.png")
    parser.add_argument("--rescore", action="store_true",
                        help="score the outputs.npz of an earlier run in --workdir again, without training")
    args = parser.parse_args()
    if args.rescore:
        report(dict(np.load(args.workdir / "outputs.npz")), load(TEST_FIELDS)[1], {}, args)
        return
    import torch

    torch.set_num_threads(args.threads)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    train_noisy, train_clean, train_owner = load(TRAIN_FIELDS)
    test_noisy, test_clean, _ = load(TEST_FIELDS)
    names = [f"field{f}_frame{i % 8}" for i, f in enumerate(train_owner)]
    write_frames(work / "n2v_train", train_noisy, names)
    partner = [i - i % 8 + (i % 8 + 1) % 8 for i in range(len(train_noisy))]  # the next frame of the same field
    write_frames(work / "n2n" / "IM", train_noisy, names)
    write_frames(work / "n2n" / "GT", train_noisy[partner], names)
    write_frames(work / "supervised" / "IM", train_noisy, names)
    write_frames(work / "supervised" / "GT", train_clean, names)
    np.save(work / "train.npy", train_noisy.astype(np.uint8))
    np.save(work / "test.npy", test_noisy.astype(np.uint8))

    outputs: dict[str, np.ndarray] = {"noisy": test_noisy}
    sigma = max([0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5], key=lambda s: np.mean(scores(
        np.stack([ndimage.gaussian_filter(f, s) for f in train_noisy[::4]]), train_clean[::4])["psnr"]))
    size = max([3, 5, 7], key=lambda s: np.mean(scores(
        np.stack([ndimage.median_filter(f, s) for f in train_noisy[::4]]), train_clean[::4])["psnr"]))
    outputs[f"gaussian_sigma{sigma}"] = np.stack([ndimage.gaussian_filter(f, sigma) for f in test_noisy])
    outputs[f"median_{size}"] = np.stack([ndimage.median_filter(f, size) for f in test_noisy])

    throughput: dict[str, list[float]] = {}
    runs: dict[str, list[np.ndarray]] = {}
    for seed in range(args.seeds):  # interleaved: im2im, CAREamics, N2V then N2V2, seed after seed
        for variant, preset in (("n2v", "denoise_n2v_2d"), ("n2v2", "denoise_n2v2_2d")):
            root = work / "runs" / f"im2im_{variant}_seed{seed}"
            seconds = fit(["--config", preset, "--data.data_path", str(work / "n2v_train"), "--seed_everything", str(seed),
                           *common(args.steps, args.batch, args.patch, root)])
            throughput.setdefault(f"im2im_{variant}", []).append(args.steps * args.batch / seconds)
            runs.setdefault(f"im2im_{variant}", []).append(predict_all(last_checkpoint(root), test_noisy, fixed_range=False))
            print(f"im2im {variant} seed {seed}: {seconds:.1f} s, {args.steps * args.batch / seconds:.1f} patches/s",
                  flush=True)
            if args.careamics_python is not None:
                command = [str(args.careamics_python), str(HERE / "careamics_n2v_fmd.py"), "--workdir", str(work),
                           "--steps", str(args.steps), "--batch", str(args.batch), "--patch", str(args.patch),
                           "--threads", str(args.threads), "--seed", str(seed), *(["--n2v2"] if variant == "n2v2" else [])]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"careamics failed:\n{done.stderr[-3000:]}")
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                throughput.setdefault(f"careamics_{variant}", []).append(figures["patches_per_s"])
                runs.setdefault(f"careamics_{variant}", []).append(np.load(work / f"careamics_{variant}.npy"))
                print(f"careamics {variant} seed {seed}: {figures}", flush=True)
    for name, outputs_of_seeds in runs.items():  # seed 0 as the case, the others as name_seedK
        outputs[name] = outputs_of_seeds[0]
        outputs.update({f"{name}_seed{k}": o for k, o in enumerate(outputs_of_seeds) if k})

    config = fcn_config(work / "fcn.yaml")
    for case, folder in (("noise2noise", "n2n"), ("supervised", "supervised")):
        root = work / "runs" / case
        seconds = fit(["--config", str(config), "--data.data_path", str(work / folder),
                       *common(args.steps, args.batch, args.patch, root)])
        throughput[case] = [args.steps * args.batch / seconds]
        outputs[case] = predict_all(last_checkpoint(root), test_noisy, fixed_range=True)
        print(f"{case}: {seconds:.1f} s", flush=True)

    np.savez_compressed(work / "outputs.npz", **outputs)
    (work / "throughput.json").write_text(json.dumps(throughput))
    report(outputs, test_clean, throughput, args, {"sigma": sigma, "median_size": size})


def seeds_of(outputs: dict[str, np.ndarray]) -> dict[str, list[str]]:
    """Each case and the names of its runs: ``case`` (seed 0) and ``case_seedK``."""
    cases: dict[str, list[str]] = {}
    for name in outputs:
        cases.setdefault(name.split("_seed")[0], []).append(name)
    return cases


def report(outputs: dict[str, np.ndarray], test_clean: np.ndarray, throughput: dict[str, list[float]],
           args: argparse.Namespace, chosen: dict | None = None) -> None:
    """Print the table, the im2im - CAREamics comparison, the crops, and the JSON line.

    A case run with several seeds reports the mean over its seeds of each figure (PSNR and SSIM:
    the mean over the 24 frames of each seed, then over seeds, with the std over seeds).
    """
    if not throughput and (args.workdir / "throughput.json").is_file():
        throughput = json.loads((args.workdir / "throughput.json").read_text())
    results: dict[str, dict] = {}
    per_image = {name: scores(output, test_clean) for name, output in outputs.items()}
    print(f"\n{'case':28s} {'seeds':>5s} {'PSNR dB':>15s} {'SSIM':>8s} {'grid':>6s} {'slope':>6s} {'patches/s':>10s}")
    for case, names in seeds_of(outputs).items():
        psnr = [float(np.mean(per_image[n]["psnr"])) for n in names]
        figures = {"psnr": summary(psnr), "ssim": round(float(np.mean([np.mean(per_image[n]["ssim"]) for n in names])), 4),
                   "psnr_over_frames_std": round(float(np.mean([np.std(per_image[n]["psnr"]) for n in names])), 3),
                   "grid_artefact": round(float(np.mean([grid_peaks(outputs[n] - test_clean) for n in names])), 2),
                   "slope": round(float(np.mean([slope(outputs[n], test_clean) for n in names])), 3), "seeds": len(names)}
        if case in throughput:
            figures["patches_per_s"] = [round(r, 2) for r in throughput[case]]
        results[case] = figures
        rate = f"{np.median(throughput[case]):10.1f}" if case in throughput else ""
        print(f"{case:28s} {len(names):5d} {figures['psnr']['mean']:7.2f} ± {figures['psnr']['std']:5.2f} "
              f"{figures['ssim']:8.4f} {figures['grid_artefact']:6.2f} {figures['slope']:6.3f} {rate}")
    noise_r = neighbour_noise_r(*load(TRAIN_FIELDS)[:2])
    print(f"noise correlation between neighbours on the training fields: {noise_r}")
    chosen = {**(chosen or {}), "train_noise_neighbour_r": noise_r}
    comparison = {}
    cases = seeds_of(outputs)
    for variant in ("n2v", "n2v2"):
        ours, theirs = cases.get(f"im2im_{variant}", []), cases.get(f"careamics_{variant}", [])
        pairs = list(zip(ours, theirs))  # the same seed, run one after the other
        if not pairs:
            continue
        diffs = np.array([np.subtract(per_image[a]["psnr"], per_image[b]["psnr"]) for a, b in pairs])  # (seeds, frames)
        comparison[f"{variant}_psnr_im2im_minus_careamics"] = {
            "mean": round(float(diffs.mean()), 3), "std_over_frames": round(float(diffs.mean(axis=0).std()), 3),
            "per_seed": [round(float(d.mean()), 3) for d in diffs]}
        comparison[f"{variant}_frames_im2im_better"] = int((diffs.mean(axis=0) > 0).sum())
        if f"im2im_{variant}" in throughput and f"careamics_{variant}" in throughput:
            ratios = np.divide(throughput[f"im2im_{variant}"], throughput[f"careamics_{variant}"])
            comparison[f"{variant}_throughput_im2im_over_careamics"] = {
                "median": round(float(np.median(ratios)), 3), "per_seed": [round(float(r), 3) for r in ratios]}
    print(json.dumps(comparison))
    save_crops(args.image, outputs, test_clean)
    print(json.dumps({"bench": "n2v_fmd", "steps": args.steps, "batch": args.batch, "patch": args.patch,
                      "train_fields": list(TRAIN_FIELDS), "test_fields": list(TEST_FIELDS), **chosen,
                      "results": results, **comparison}))


def save_crops(path: Path, outputs: dict[str, np.ndarray], clean: np.ndarray) -> None:
    """Noisy, im2im N2V and N2V2, CAREamics N2V and clean: the 128 x 128 crop of the first test frame with the
    most signal, 3x enlarged, one contrast for all (the clean crop's 0.5 and 99.5 percentiles), labelled.
    """
    from PIL import ImageDraw

    names = [n for n in ("noisy", "im2im_n2v", "im2im_n2v2", "careamics_n2v") if n in outputs]
    starts = range(0, clean.shape[1] - 127, 32)
    y, x = max(((y, x) for y in starts for x in starts), key=lambda yx: clean[0, yx[0]:yx[0] + 128, yx[1]:yx[1] + 128].mean())
    crops = [outputs[n][0, y:y + 128, x:x + 128] for n in names] + [clean[0, y:y + 128, x:x + 128]]
    low, high = np.percentile(crops[-1], (0.5, 99.5))
    tiles = [Image.fromarray((np.clip((c - low) / (high - low), 0, 1) * 255).astype(np.uint8)).resize((384, 384),
             Image.NEAREST) for c in crops]
    canvas = Image.new("L", (len(tiles) * 392, 404), 255)
    draw = ImageDraw.Draw(canvas)
    for i, (tile, name) in enumerate(zip(tiles, [*names, "clean (mean of 50)"])):
        canvas.paste(tile, (i * 392, 20))
        draw.text((i * 392 + 4, 4), name, fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    print(f"crops at y {y}, x {x} ({', '.join(names)}, clean) written to {path}")


if __name__ == "__main__":
    sys.exit(main())
