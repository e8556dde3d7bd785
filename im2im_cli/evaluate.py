"""``im2im evaluate --pred DIR --gt DIR``: score a folder of predictions against their targets.

Files are paired by name: a prediction ``<stem>_pred.ome.tiff`` (any image suffix) goes with a
target ``<stem>.<ext>``; a prediction named exactly like its target matches too. Every
prediction needs a target and every target a prediction.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import math
import os
import statistics
from pathlib import Path

import numpy as np

from im2im_core.data.layouts import _stem, list_images
from im2im_core.errors import DataError
from im2im_core.metrics import METRICS, detect_kind, score

KINDS = ("auto", *METRICS)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="im2im evaluate",
        description="Score predictions against targets: Pearson, SSIM, PSNR (intensity); Dice/F1, IoU "
                    "(mask); average precision at IoU 0.5 and mean over IoU 0.5:0.95 (instance labels).")
    parser.add_argument("--pred", required=True, help="folder of predictions")
    parser.add_argument("--gt", required=True, help="folder of targets (or a folder with a GT subfolder)")
    parser.add_argument("--csv", help="write one row per image to this CSV file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing CSV file")
    parser.add_argument("--kind", choices=KINDS, default="auto",
                        help="auto: float predictions are intensities, integer ones masks (0/1) or labels")
    parser.add_argument("--suffix", default="_pred", help="suffix of prediction names (default: _pred)")
    parser.add_argument("--reader", default="bioio", help="registered reader of the targets (default: bioio; "
                                                          "predictions are im2im's OME files, read with bioio)")
    parser.add_argument("--normalize", choices=("none", "percentile"), default="none",
                        help="intensity only: map the 0.5 and 99.5 percentiles of each prediction and "
                             "target to 0 and 1 before scoring (as training normalizes targets)")
    return parser


def _target_folder(gt_dir: Path) -> Path:
    """``gt_dir``, or its ``GT`` subfolder for a folder in the training layout."""
    if gt_dir.is_dir() and (gt_dir / "GT").is_dir() and not any(p.is_file() for p in gt_dir.iterdir()):
        return gt_dir / "GT"
    return gt_dir


def pair_files(pred_dir: Path, gt_dir: Path, suffix: str = "_pred") -> list[tuple[Path, Path]]:
    """Return ``(prediction, target)`` pairs, sorted by prediction name.

    Raises
    ------
    DataError
        For an empty or missing folder, two targets with one name, or a file without partner.
    """
    preds, targets = list_images(pred_dir), list_images(_target_folder(gt_dir))
    by_stem: dict[str, Path] = {}
    for target in targets:
        if _stem(target) in by_stem:
            raise DataError(f"two targets share the name {_stem(target)!r}: {by_stem[_stem(target)]} and {target}")
        by_stem[_stem(target)] = target
    pairs, unmatched = [], []
    for pred in preds:
        stem = _stem(pred)
        names = [stem.removesuffix(suffix), stem] if suffix and stem.endswith(suffix) else [stem]
        match = next((by_stem[n] for n in names if n in by_stem), None)
        if match is None:
            unmatched.append(pred.name)
        else:
            pairs.append((pred, match))
    if unmatched:
        raise DataError(f"{len(unmatched)} prediction(s) in {pred_dir} have no target in {_target_folder(gt_dir)}: "
                        f"{', '.join(unmatched[:5])}{' ...' if len(unmatched) > 5 else ''} "
                        f"(expected a target named <stem>.<ext> for <stem>{suffix}.<ext>)")
    missing = sorted(set(by_stem.values()) - {t for _, t in pairs})
    if missing:
        raise DataError(f"{len(missing)} target(s) in {_target_folder(gt_dir)} have no prediction in {pred_dir}: "
                        f"{', '.join(p.name for p in missing[:5])}{' ...' if len(missing) > 5 else ''}")
    by_target: dict[Path, list[Path]] = {}
    for pred, target in pairs:
        by_target.setdefault(target, []).append(pred)
    for target, matched in by_target.items():
        if len(matched) > 1:
            raise DataError(f"{len(matched)} predictions match the target {target}: {', '.join(p.name for p in matched)}; "
                            f"keep one per target in {pred_dir}")
    return pairs


def _read(path: Path, reader: str = "bioio") -> np.ndarray:
    """The image at ``path`` as a TCZYX numpy array, read by the registered reader ``reader``."""
    from im2im_core.plugins import get_registry

    reader_class = get_registry().get("readers", reader)
    lenient = {"strict": False} if "strict" in inspect.signature(reader_class).parameters else {}
    return reader_class(dims="TCZYX", **lenient).read(str(path)).numpy()


def _percentile_normalized(array: np.ndarray) -> np.ndarray:
    low, high = np.percentile(array, (0.5, 99.5))
    return (array.astype(np.float64) - low) / (high - low if high > low else 1.0)


def score_pair(pred_path: Path, gt_path: Path, kind: str, normalize: str = "none",
               reader: str = "bioio") -> tuple[str, dict[str, float]]:
    """Read one pair (the target with ``reader``), check shapes, and return its kind (``auto`` resolved) and metrics."""
    pred, target = _read(pred_path), _read(gt_path, reader)
    if pred.shape != target.shape:
        if pred.squeeze().shape != target.squeeze().shape:
            raise DataError(f"shape mismatch: prediction {pred_path} has shape {pred.squeeze().shape}, "
                            f"target {gt_path} has {target.squeeze().shape} (singleton axes dropped)")
        target = target.reshape(pred.shape)
    kind = detect_kind(pred) if kind == "auto" else kind
    if kind == "intensity" and normalize == "percentile":
        pred, target = _percentile_normalized(pred), _percentile_normalized(target)
    flat = (pred.reshape(-1, *pred.shape[2:]), target.reshape(-1, *target.shape[2:]))  # (T*C, Z, Y, X)
    return kind, score(*flat, kind=kind, spatial_dims=3)


def _summary(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < len(values):
        return float("inf"), float("nan")
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _cell(name: str, value: float) -> str:
    return f"{value:9.0f}" if name.startswith("n_") else f"{value:9.4f}"


def _write_csv(path: Path, rows: list[dict[str, str | float]]) -> None:
    """Write ``rows`` to ``path`` through a temporary file and a rename."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def evaluate_command(argv: list[str]) -> int:
    """Run ``im2im evaluate``; user errors raise :class:`~im2im_core.errors.DataError`."""
    args = _parser().parse_args(argv)
    csv_path = Path(args.csv) if args.csv else None
    if csv_path is not None and csv_path.exists() and not args.overwrite:
        raise DataError(f"CSV file exists: {csv_path}; pass --overwrite to replace it")
    if csv_path is not None and not csv_path.parent.is_dir():
        raise DataError(f"folder of the CSV file not found: {csv_path.parent}")
    pairs = pair_files(Path(args.pred), Path(args.gt), args.suffix)
    rows: list[dict[str, str | float]] = []
    kinds: dict[str, str] = {}
    for pred_path, gt_path in pairs:
        kind, metrics = score_pair(pred_path, gt_path, args.kind, args.normalize, args.reader)
        kinds[pred_path.name] = kind
        if len(set(kinds.values())) > 1:
            listing = ", ".join(f"{name}: {k}" for name, k in kinds.items())
            raise DataError(f"predictions are of different kinds ({listing}); choose one with --kind mask|labels|intensity")
        rows.append({"image": _stem(gt_path), "kind": kind, **metrics, "prediction": str(pred_path), "target": str(gt_path)})
    kind = rows[0]["kind"]
    names = METRICS[str(kind)]
    width = max(len("image"), *(len(str(r["image"])) for r in rows))
    print(f"{'image':<{width}}  " + "  ".join(f"{n:>9}" for n in names))
    for row in rows:
        print(f"{row['image']:<{width}}  " + "  ".join(_cell(n, float(row[n])) for n in names))
    summaries = [_summary([float(r[n]) for r in rows]) for n in names]
    print(f"{kind} metrics on {len(rows)} image(s), mean +- std:")
    for name, (mean, std) in zip(names, summaries):
        print(f"  {name}: {mean:.4f} +- {std:.4f}")
    if csv_path is not None:
        _write_csv(csv_path, rows)
        print(f"per-image metrics written to {csv_path}")
    return 0
