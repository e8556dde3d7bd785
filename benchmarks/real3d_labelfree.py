"""3D label-free prediction on the Allen hiPSC pair: train on one half along X, score the other.

    python benchmarks/real3d_labelfree.py --work /tmp/real3d_labelfree --minutes 10 [--cases a,b] [--parallel 2]

Data: ``../shared/data/allen_labelfree_3d`` (transmitted light and DNA, 32 x 128 x 128, one
volume; non-commercial license: read from there, never copied into the repository). The
training half is X < 64, the held-out half X >= 64; training never sees the held-out half.

Cases (each trains for ``--minutes`` of wall time on ``--threads`` CPU threads, no validation,
and predicts the held-out half with its last checkpoint):

- ``input``: the transmitted light itself, the floor every model must beat;
- ``fnet_percentile``, ``fnet_standard``, ``fnet_center``: the ``labelfree_3d`` preset with the
  three normalizations the paper compares (percentile 0.5-99.5, z-score of the whole stack,
  z-score of the central planes); CPU width: 16 channels at the first level (the preset has 32);
- ``fnet32_percentile``: the preset's own width (32), same budget;
- ``anisotropic_unet``: another backbone (im2im's anisotropic U-Net, 16-128 channels, Z pooled from
  the second level);
- ``slices_2d``: the 2D ``labelfree_2d`` fnet (16 channels) trained on the XY planes, applied
  plane by plane and stacked (the 2D baseline);
- ``pix2pix_scratch``, ``pix2pix_from_fcn``: ``labelfree_3d_pix2pix`` with the 16-channel fnet
  generator, from random weights and from the ``fnet_percentile`` checkpoint (run after it).

Scores on the held-out half: Pearson's r, SSIM and PSNR, prediction and target each mapped to
[0, 1] by their 0.5 and 99.5 percentiles. A figure (input, target, each prediction; the middle
XY plane and an XZ section) goes to ``--figure``. The last line is one JSON object.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real3d_common as shared  # noqa: E402

from im2im_core.metrics import pearson, psnr, ssim  # noqa: E402

HALF = 64  # X index of the split
FNET16 = ["--model.init_args.backbone.init_args.mult_chan", "16"]
NORMALIZE = {
    "standard": '[{"class_path": "StandardNormalized", "init_args": {"keys": ["IM", "GT"], "allow_missing_keys": true}}]',
    "center": '[{"class_path": "CenterNormalized", "init_args": {"keys": ["IM", "GT"], "z_chunk": 16}}]',
}
PATCH_3D = "[32,64,64]"
COMMON = ["--data.val_fraction", "0", "--trainer.limit_val_batches", "0", "--trainer.max_epochs", "-1",
          "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--data.samples_per_image", "4"]
CASES = ("input", "fnet_percentile", "fnet_standard", "fnet_center", "fnet32_percentile", "anisotropic_unet",
         "slices_2d", "pix2pix_scratch", "pix2pix_from_fcn")


def prepare(data: Path, work: Path) -> None:
    """Split the pair at X = 64 into ``work/train`` and ``work/test`` (IM/, GT/), and their XY planes for 2D."""
    light = tifffile.imread(data / "transmitted_light.tif").astype(np.float32)
    dna = tifffile.imread(data / "dna.tif").astype(np.float32)
    if light.shape != dna.shape or light.ndim != 3:
        raise ValueError(f"{data}: expected two ZYX volumes of one shape, got {light.shape} and {dna.shape}")
    for split, part in (("train", np.s_[..., :HALF]), ("test", np.s_[..., HALF:])):
        shared.write_volume(work / split / "IM" / "allen.tif", light[part], None)
        shared.write_volume(work / split / "GT" / "allen.tif", dna[part], None)
        for key, volume in (("IM", light), ("GT", dna)):  # XY planes for the 2D baseline
            folder = work / "planes" / split / key
            folder.mkdir(parents=True, exist_ok=True)
            for z, plane in enumerate(volume[part]):
                tifffile.imwrite(folder / f"z{z:02d}.tif", plane)


def fit_args(case: str, work: Path, minutes: float) -> tuple[str, str, list[str]]:
    """(preset, im2im_runs subfolder, fit arguments) of a trained case."""
    budget = ["--trainer.max_time", shared.max_time(minutes), "--trainer.max_steps", "-1"]
    train = ["--data.data_path", str(work / "train"), "--data.patch_size", PATCH_3D, "--data.batch_size", "4"]
    if case.startswith("fnet_"):
        norm = case.split("_")[1]
        extra = [] if norm == "percentile" else ["--data.normalize", NORMALIZE[norm]]
        return "labelfree_3d", "labelfree_3d", [*train, *FNET16, *extra, *budget]
    if case == "fnet32_percentile":
        return "labelfree_3d", "labelfree_3d", [*train, *budget]
    if case == "anisotropic_unet":
        backbone = ["--model.init_args.backbone", "anisotropic_unet"]
        for name, value in (("spatial_dims", "3"), ("in_channels", "1"), ("out_channels", "1"),
                            ("channels", "[16,32,64,128]"), ("xy_only_levels", "1")):
            backbone += [f"--model.init_args.backbone.init_args.{name}", value]
        return "labelfree_3d", "labelfree_3d", [*train, *backbone, *budget]
    if case == "slices_2d":
        return "labelfree_2d", "labelfree_2d", ["--data.data_path", str(work / "planes" / "train"),
                                                "--data.patch_size", "[64,64]", "--data.batch_size", "16",
                                                *FNET16, *budget]
    generator = ["--model.init_args.generator.init_args.mult_chan", "16"]
    if case == "pix2pix_from_fcn":
        ckpt = work / "runs" / "fnet_percentile" / "im2im_runs" / "labelfree_3d" / "checkpoints" / "last.ckpt"
        generator += ["--model.init_args.generator_checkpoint", str(ckpt)]
    return "labelfree_3d_pix2pix", "labelfree_3d_pix2pix", [*train, *generator, *budget]


def train_and_predict(case: str, work: Path, minutes: float, threads: int) -> dict:
    """Fit ``case``, predict the held-out half; return the prediction (ZYX) and the run's facts."""
    run = work / "runs" / case
    earlier = shared.finished_run(run)
    if earlier is not None:
        return {**earlier, "prediction": _prediction(case, run)}
    log = run / "log.txt"
    preset, root, args = fit_args(case, work, minutes)
    fit_s = shared.im2im(["fit", "--config", preset, *COMMON, *args], run, log, threads)
    ckpt = run / "im2im_runs" / root / "checkpoints" / "last.ckpt"
    predict_dir = "planes/test/IM" if case == "slices_2d" else "test/IM"
    shared.im2im(["predict", "--config", str(shared.run_config(run, root)), "--ckpt_path", str(ckpt),
           "--data.predict_path", str(work / predict_dir), "--prediction.output_dir", str(run / "pred"),
           "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false"], run, log, threads)
    facts = {"fit_s": round(fit_s, 1), "steps": shared.checkpoint_step(ckpt)}
    shared.mark_finished(run, facts)
    return {**facts, "prediction": _prediction(case, run)}


def _prediction(case: str, run: Path) -> np.ndarray:
    """The held-out prediction (ZYX) of a finished run; the 2D baseline's planes stacked along Z."""
    if case == "slices_2d":
        planes = sorted((run / "pred").glob("z*_pred.ome.tif*"))
        return np.stack([np.squeeze(tifffile.imread(p)) for p in planes]).astype(np.float32)
    return shared.read_prediction(run / "pred").astype(np.float32)


def percentile_normalized(array: np.ndarray) -> np.ndarray:
    """``array`` with its 0.5 and 99.5 percentiles mapped to 0 and 1."""
    low, high = np.percentile(array, (0.5, 99.5))
    return (array - low) / max(high - low, 1e-12)


def scores(prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Pearson, SSIM, PSNR of percentile-normalized prediction and target."""
    p, t = percentile_normalized(prediction), percentile_normalized(target)
    return {"pearson": round(pearson(p, t), 4), "ssim": round(ssim(p, t), 4), "psnr": round(psnr(p, t), 2)}


def figure(path: Path, light: np.ndarray, target: np.ndarray, predictions: dict[str, np.ndarray]) -> None:
    """Middle XY plane and middle XZ section of input, target and each prediction, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"input (transmitted light)": light, "target (DNA)": target, **predictions}
    fig, axes = plt.subplots(2, len(panels), figsize=(2.2 * len(panels), 4.6), squeeze=False,
                             gridspec_kw={"height_ratios": [128, 64]})
    for column, (name, volume) in enumerate(panels.items()):
        v = np.clip(percentile_normalized(volume), 0, 1)
        axes[0, column].imshow(v[v.shape[0] // 2], cmap="gray", vmin=0, vmax=1)
        axes[1, column].imshow(v[:, v.shape[1] // 2, :], cmap="gray", vmin=0, vmax=1, aspect=2.0)
        axes[0, column].set_title(name.replace("_", " "), fontsize=8)
        for row in (0, 1):
            axes[row, column].set_xticks([]), axes[row, column].set_yticks([])
    axes[0, 0].set_ylabel("XY, middle Z", fontsize=8)
    axes[1, 0].set_ylabel("XZ, middle Y", fontsize=8)
    fig.suptitle("Allen hiPSC, held-out half (X >= 64): transmitted light -> DNA", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    options, cases = shared.parse_options(__doc__.splitlines()[0], shared.SHARED_DATA / "allen_labelfree_3d", CASES)
    prepare(options.data, options.work)
    light = tifffile.imread(options.work / "test" / "IM" / "allen.tif")
    target = tifffile.imread(options.work / "test" / "GT" / "allen.tif")
    results: dict[str, dict] = {}
    if "input" in cases:
        results["input"] = {"prediction": light, "fit_s": 0, "steps": 0}
    trained = [c for c in cases if c not in ("input", "pix2pix_from_fcn")]
    with ThreadPoolExecutor(options.parallel) as pool:
        jobs = {c: pool.submit(train_and_predict, c, options.work, options.minutes, options.threads) for c in trained}
        if "pix2pix_from_fcn" in cases:  # starts from fnet_percentile's checkpoint: submitted last, waits for it
            first = jobs.get("fnet_percentile")
            jobs["pix2pix_from_fcn"] = pool.submit(
                lambda: (first.result() if first else None,
                         train_and_predict("pix2pix_from_fcn", options.work, options.minutes, options.threads))[1])
        for case, job in jobs.items():
            results[case] = job.result()
    report = {"data": "allen_labelfree_3d, train X<64, test X>=64", "minutes": options.minutes,
              "threads": options.threads, "cases": {}}
    for case in cases:
        entry = results[case]
        report["cases"][case] = {**scores(entry["prediction"], target), "steps": entry["steps"], "fit_s": entry["fit_s"]}
        print(f"{case:20s} " + "  ".join(f"{k} {v}" for k, v in report["cases"][case].items()), flush=True)
    if options.figure:
        figure(options.figure, light, target, {c: results[c]["prediction"] for c in cases if c != "input"})
    shared.finish(report)


if __name__ == "__main__":
    main()
