"""3D nuclei instance segmentation on the PlantSeg volume: train on one half along X, score the other.

    python benchmarks/real3d_instances.py --work /tmp/real3d_instances --minutes 10 [--cases a,b] [--parallel 2]

Data: ``../shared/data/plantseg_nuclei_3d/nuclei_1135_{raw,labels}.tif`` (100 x 100 x 100 ZYX,
voxel 0.284 x 0.127 x 0.127 um, 54 labelled nuclei; MIT repository). Training half X < 50,
held-out half X >= 50 (nuclei cut by the plane are scored as the cut parts they are in the
held-out half). The voxel size is read from the files, kept in the split volumes, passed to
EmbedSeg (``voxel_size``) and written into the predictions.

Cases (each trains for ``--minutes`` of wall time on ``--threads`` CPU threads, no validation,
and predicts the held-out half with its last checkpoint):

- ``embedseg``: the ``instanceseg_3d`` preset (branched 3D ERFNet, first level keeps Z) with
  the file's voxel size and patches of about 9 um along every axis (32 x 64 x 48 voxels);
- ``embedseg_planned``: the config ``im2im plan --task instance --device cpu`` writes for the
  training half and the same budget;
- ``semantic_cc``: the baseline, ``semanticseg_3d`` (anisotropic U-Net) on masks (labels > 0),
  its foreground split into connected components.

Sparse labels: some visible nuclei have no label. Training treats them as background (no loss
ignores them), which can only lower the figures. Scoring gives two figures: ``all`` matches every
predicted instance; ``labelled`` first drops the predicted instances with less than half of
their voxels on labelled nuclei (an unlabelled nucleus, or background) and reports how many it
dropped: an upper bound, as a real false positive in the background is dropped too.
A figure (raw, labels, each prediction; XY planes and an XZ section) goes to ``--figure``; the
last line is one JSON object.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tifffile
from skimage.measure import label as connected_components

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real3d_common as shared  # noqa: E402

from im2im_core.metrics import IOU_THRESHOLDS, average_precision, iou_matrix  # noqa: E402

HALF = 50  # X index of the split
PATCH = "[32,64,48]"  # about 9 x 8 x 6 um: Z % 4 and Y, X % 8 as the preset's strides need
COMMON = ["--data.val_fraction", "0", "--trainer.limit_val_batches", "0", "--trainer.max_epochs", "-1",
          "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false"]
CASES = ("embedseg", "embedseg_planned", "semantic_cc")


def voxel_size(path: Path) -> list[float]:
    """The physical voxel size (Z, Y, X, um) that bioio reads from ``path``; an error when it is missing."""
    from bioio import BioImage

    sizes = BioImage(path).physical_pixel_sizes
    if None in (sizes.Z, sizes.Y, sizes.X):
        raise ValueError(f"{path}: no physical voxel size (Z, Y, X) in the file's metadata, got {sizes}")
    return [float(sizes.Z), float(sizes.Y), float(sizes.X)]


def prepare(data: Path, work: Path) -> list[float]:
    """Split raw and labels at X = 50 into ``work/{train,test}/{IM,GT}``; return the voxel size."""
    raw_path = data / "nuclei_1135_raw.tif"
    raw, labels = tifffile.imread(raw_path), tifffile.imread(data / "nuclei_1135_labels.tif")
    if raw.shape != labels.shape or raw.ndim != 3:
        raise ValueError(f"{data}: expected raw and labels of one ZYX shape, got {raw.shape} and {labels.shape}")
    spacing = voxel_size(raw_path)
    for split, part in (("train", np.s_[..., :HALF]), ("test", np.s_[..., HALF:])):
        shared.write_volume(work / split / "IM" / "nuclei.tif", raw[part], spacing)
        shared.write_volume(work / split / "GT" / "nuclei.tif", labels[part], spacing)
    return spacing


def fit_args(case: str, work: Path, minutes: float, spacing: list[float]) -> tuple[str, str, list[str]]:
    """(config, im2im_runs subfolder, fit arguments) of a case."""
    budget = ["--trainer.max_time", shared.max_time(minutes), "--trainer.max_steps", "-1", "--trainer.max_epochs", "-1"]
    train = ["--data.data_path", str(work / "train")]
    if case == "embedseg":
        return "instanceseg_3d", "instanceseg_3d", [*train, "--data.patch_size", PATCH, "--data.batch_size", "2",
                                                    "--data.samples_per_image", "2",
                                                    "--model.init_args.voxel_size", str(spacing), *budget]
    if case == "semantic_cc":
        return "semanticseg_3d", "semanticseg_3d", [*train, "--data.patch_size", PATCH, "--data.batch_size", "2",
                                                    "--data.samples_per_image", "2", *budget]
    planned = work / "planned.yaml"
    if not planned.exists():
        shared.im2im(["plan", "--data.data_path", str(work / "train"), "--task", "instance", "--device", "cpu",
               "--time", f"{max(1, round(minutes))}m", "--output", str(planned)], work, work / "plan_log.txt", 1)
    return str(planned), "planned", [*train, *budget]


def train_and_predict(case: str, work: Path, minutes: float, threads: int, spacing: list[float]) -> dict:
    """Fit ``case``, predict the held-out half; return instance labels (ZYX) and the run's facts."""
    run = work / "runs" / case
    earlier = shared.finished_run(run)
    if earlier is not None:
        return {**earlier, "prediction": _prediction(case, run)}
    log = run / "log.txt"
    config, root, args = fit_args(case, work, minutes, spacing)
    fit_s = shared.im2im(["fit", "--config", config, *COMMON, *args], run, log, threads)
    ckpt = run / "im2im_runs" / root / "checkpoints" / "last.ckpt"
    shared.im2im(["predict", "--config", str(shared.run_config(run, root)), "--ckpt_path", str(ckpt),
           "--data.predict_path", str(work / "test" / "IM"), "--prediction.output_dir", str(run / "pred"),
           "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false"], run, log, threads)
    written = sorted((run / "pred").glob("*_pred.ome.tif*"))[0]
    facts = {"fit_s": round(fit_s, 1), "steps": shared.checkpoint_step(ckpt), "written_voxel_size": voxel_size(written)}
    shared.mark_finished(run, facts)
    return {**facts, "prediction": _prediction(case, run)}


def _prediction(case: str, run: Path) -> np.ndarray:
    """The held-out instance labels (ZYX) of a finished run; the baseline's mask split into connected components."""
    prediction = shared.read_prediction(run / "pred")
    if case == "semantic_cc":
        prediction = connected_components(prediction > 0)
    return prediction.astype(np.int32)


def on_labelled(prediction: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """``prediction`` without the instances that have less than half of their voxels on labelled
    nuclei, and how many were dropped.
    """
    ids, sizes = np.unique(prediction[prediction > 0], return_counts=True)
    on = np.bincount(prediction[(prediction > 0) & (labels > 0)], minlength=int(prediction.max()) + 1)[ids]
    dropped = ids[on < 0.5 * sizes]
    return np.where(np.isin(prediction, dropped), 0, prediction), len(dropped)


def scores(prediction: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """AP50 and AP50:95 against the labels, over all predictions and over those on labelled nuclei."""
    kept, dropped = on_labelled(prediction, labels)
    result: dict[str, float] = {"n_gt": int(len(np.unique(labels)) - 1)}
    for name, pred in (("all", prediction), ("labelled", kept)):
        ious = iou_matrix(pred, labels)
        result[f"ap50_{name}"] = round(average_precision(None, None, 0.5, ious=ious), 4)
        result[f"ap50_95_{name}"] = round(float(np.mean([average_precision(None, None, t, ious=ious)
                                                         for t in IOU_THRESHOLDS])), 4)
        result[f"n_pred_{name}"] = int(ious.shape[0])
    result["dropped_unlabelled"] = dropped
    return result


def figure(path: Path, raw: np.ndarray, labels: np.ndarray, predictions: dict[str, np.ndarray]) -> None:
    """XY planes at a quarter and half of Z and the middle XZ section of raw, labels and predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.color import label2rgb

    panels = {"raw (held-out half)": None, "labels (sparse)": labels, **predictions}
    planes = [("XY, Z=25", np.s_[25]), ("XY, Z=60", np.s_[60]), ("XZ, Y=50", np.s_[:, 50, :])]
    fig, axes = plt.subplots(len(planes), len(panels), figsize=(2.3 * len(panels), 2.3 * len(planes) + 0.4),
                             squeeze=False)
    gray = raw.astype(np.float32) / max(float(np.percentile(raw, 99.8)), 1.0)
    for column, (name, volume) in enumerate(panels.items()):
        for row, (title, where) in enumerate(planes):
            ax = axes[row, column]
            image = np.clip(gray[where], 0, 1)
            shown = image if volume is None else label2rgb(volume[where], image=image, alpha=0.35, bg_label=0)
            ax.imshow(shown, cmap="gray" if volume is None else None, aspect=0.284 / 0.127 if row == 2 else 1.0)
            ax.set_xticks([]), ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(title, fontsize=8)
        axes[0, column].set_title(name.replace("_", " "), fontsize=8)
    fig.suptitle("PlantSeg nuclei 1135, held-out half (X >= 50)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    options, cases = shared.parse_options(__doc__.splitlines()[0], shared.SHARED_DATA / "plantseg_nuclei_3d", CASES)
    spacing = prepare(options.data, options.work)
    raw = tifffile.imread(options.work / "test" / "IM" / "nuclei.tif")
    labels = tifffile.imread(options.work / "test" / "GT" / "nuclei.tif")
    if "embedseg_planned" in cases:  # plan before the runs start, so that its trial steps are timed alone
        fit_args("embedseg_planned", options.work, options.minutes, spacing)
    with ThreadPoolExecutor(options.parallel) as pool:
        jobs = {c: pool.submit(train_and_predict, c, options.work, options.minutes, options.threads, spacing)
                for c in cases}
        results = {case: job.result() for case, job in jobs.items()}
    report = {"data": "plantseg nuclei_1135, train X<50, test X>=50", "voxel_size_um": spacing,
              "minutes": options.minutes, "threads": options.threads, "cases": {}}
    for case in cases:
        entry = results[case]
        report["cases"][case] = {**scores(entry["prediction"], labels), "steps": entry["steps"], "fit_s": entry["fit_s"],
                                 "written_voxel_size": [round(v, 4) for v in entry["written_voxel_size"]]}
        print(f"{case:18s} " + "  ".join(f"{k} {v}" for k, v in report["cases"][case].items()), flush=True)
    if options.figure:
        figure(options.figure, raw, labels, {c: results[c]["prediction"] for c in cases})
    shared.finish(report)


if __name__ == "__main__":
    main()
