"""N2V on real noise with no clean image: the 200-frame telomere time-lapse, trained and predicted as a time series.

``../shared/data/telomeres_noisy_timelapse/timelapse.tif`` (TYX, 200 x 133 x 162, uint16, very
noisy camera frames of telomere spots) trains each preset with ``--data.dims TYX`` (each
timepoint a sample), then ``im2im predict`` writes the denoised time-lapse with its T axis.
No PSNR is possible; three figures a reader can check without a clean image, for the input, a
Gaussian filter (sigma 1), N2V and N2V2:

- ``residual_neighbour_r``: Pearson's r between the residual (input - output) at a pixel and the
  input at its four neighbours, averaged. Removing only pixel-independent noise leaves a
  residual uncorrelated with the neighbours (about 0); removing signal (blur) leaves structure
  that correlates with them.
- ``spot_cnr``: contrast-to-noise of the spots, (the 99.9th percentile - the median) over the
  background's noise, the robust std (1.4826 x MAD) of the pixels below the median.
- ``grid``: the power at the frequencies of a 2- and 4-pixel grid over the power around them
  (about 1: no periodic pattern; N2V's checkerboard raises it). A ratio: an output that removes
  the noise around such a frequency more than at it scores high with a weaker pattern;
- ``grid_power``: the output's power at those 15 frequencies over the input's at the same ones
  (mean over frequencies, median over frames): below 1, the periodic part is weaker than in
  the raw frames (which have a column pattern of their own); above 1, the network added one.

Both ``denoise_n2v_2d`` and ``denoise_n2v2_2d`` are trained. Also docs/images/n2v_telomeres.png:
frame 100, input | Gaussian | N2V | N2V2, 3x enlarged.
Not part of CI. Usage: ``python benchmarks/bench_n2v_telomeres.py [--steps 1000] [--rescore]``
(``--rescore``: score the predictions already in ``--workdir`` again, without training); ends
with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "telomeres_noisy_timelapse" / "timelapse.tif"
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_n2v_fmd import grid_peaks  # noqa: E402  (the same grid figure as the FMD benchmark)


def grid_power(images: np.ndarray, reference: np.ndarray) -> float:
    """Median over frames of the mean, over the 15 frequencies of a 2- and 4-pixel grid, of the
    power of ``images`` over the power of ``reference`` (the raw frames) at the same frequency.
    """
    ratios = []
    for image, raw in zip(images, reference):
        power, raw_power = (np.abs(np.fft.fft2(a - a.mean())) ** 2 for a in (image, raw))
        at = [(i * power.shape[0] // 4, j * power.shape[1] // 4) for i in range(4) for j in range(4) if (i, j) != (0, 0)]
        ratios.append(float(np.mean([power[y, x] / raw_power[y, x] for y, x in at])))
    return float(np.median(ratios))


def residual_neighbour_r(noisy: np.ndarray, output: np.ndarray) -> float:
    """Mean Pearson's r of the residual at a pixel with the input at each of its 4 neighbours, over all frames."""
    residual = noisy - output
    inner = residual[:, 1:-1, 1:-1].ravel()
    values = []
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        neighbour = noisy[:, 1 + dy:noisy.shape[1] - 1 + dy, 1 + dx:noisy.shape[2] - 1 + dx].ravel()
        values.append(np.corrcoef(inner, neighbour)[0, 1])
    return float(np.mean(values))


def spot_cnr(image: np.ndarray) -> float:
    """Median over frames of (99.9th percentile - median) / robust std of the pixels below the median."""
    ratios = []
    for frame in image:
        median = np.median(frame)
        background = frame[frame < median]
        noise = 1.4826 * np.median(np.abs(background - np.median(background)))
        ratios.append((np.percentile(frame, 99.9) - median) / max(noise, 1e-6))
    return float(np.median(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description="N2V on the telomere time-lapse")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_n2v_telomeres"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image", type=Path, default=HERE.parent / "docs" / "images" / "n2v_telomeres.png")
    parser.add_argument("--rescore", action="store_true", help="score the predictions in --workdir again, without training")
    args = parser.parse_args()
    import torch

    from im2im_cli.main import main as im2im

    torch.set_num_threads(args.threads)
    work = args.workdir
    if work.exists() and not args.rescore:
        shutil.rmtree(work)
    (work / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA, work / "data" / DATA.name)
    noisy = tifffile.imread(DATA).astype(np.float32)
    cases = {"input": noisy, "gaussian_sigma1": ndimage.gaussian_filter(noisy, (0, 1, 1))}
    train_seconds = {}
    for preset in ("denoise_n2v_2d", "denoise_n2v2_2d"):
        run, out = work / f"run_{preset}", work / f"out_{preset}"
        if args.rescore:
            if not out.is_dir():
                raise SystemExit(f"--rescore: no predictions in {out}; run without --rescore first")
            cases["im2im_n2v2" if "n2v2" in preset else "im2im_n2v"] = tifffile.imread(next(out.iterdir())).astype(np.float32)
            continue
        start = time.perf_counter()
        code = im2im(["fit", "--config", preset, "--data.data_path", str(work / "data"), "--data.dims", "TYX",
                      "--data.batch_size", "16", "--data.val_fraction", "0", "--trainer.limit_val_batches", "0",
                      "--trainer.max_steps", str(args.steps), "--trainer.max_epochs", "-1", "--trainer.accelerator", "cpu",
                      "--trainer.logger", "false",
                      "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(run)])
        train_seconds[preset] = round(time.perf_counter() - start, 1)
        if code:
            raise SystemExit(f"im2im fit {preset} failed")
        code = im2im(["predict", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--data.predict_path",
                      str(work / "data"), "--prediction.output_dir", str(out), "--trainer.accelerator", "cpu",
                      "--trainer.enable_progress_bar", "false"])
        if code:
            raise SystemExit(f"im2im predict {preset} failed")
        denoised = tifffile.imread(next(out.iterdir())).astype(np.float32)
        assert denoised.shape == noisy.shape, (denoised.shape, noisy.shape)
        cases["im2im_n2v2" if "n2v2" in preset else "im2im_n2v"] = denoised
    results = {}
    print(f"{'case':18s} {'residual_neighbour_r':>21s} {'spot_cnr':>9s} {'grid':>6s} {'grid_power':>11s}")
    for name, image in cases.items():
        r = 0.0 if name == "input" else residual_neighbour_r(noisy, image)
        results[name] = {"residual_neighbour_r": round(r, 4), "spot_cnr": round(spot_cnr(image), 2),
                         "grid": round(grid_peaks(image[:, :128, :160]), 2),
                         "grid_power": round(grid_power(image[:, :128, :160], noisy[:, :128, :160]), 3)}
        print(f"{name:18s} {r:21.4f} {results[name]['spot_cnr']:9.2f} {results[name]['grid']:6.2f} "
              f"{results[name]['grid_power']:11.3f}")
    frame = 100
    low, high = np.percentile(noisy[frame], (0.5, 99.9))
    tiles = [Image.fromarray((np.clip((image[frame] - low) / (high - low), 0, 1) * 255).astype(np.uint8)).resize(
        (image.shape[2] * 3, image.shape[1] * 3), Image.NEAREST) for image in cases.values()]
    canvas = Image.new("L", (sum(t.width + 8 for t in tiles), tiles[0].height), 255)
    for i, tile in enumerate(tiles):
        canvas.paste(tile, (i * (tile.width + 8), 0))
    args.image.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.image)
    print(f"frame {frame}: {' | '.join(cases)} written to {args.image}")
    print(json.dumps({"bench": "n2v_telomeres", "steps": None if args.rescore else args.steps, "train_seconds": train_seconds,
                      "output_shape": list(cases["im2im_n2v"].shape), "results": results}))


if __name__ == "__main__":
    sys.exit(main())
