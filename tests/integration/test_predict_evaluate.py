"""``im2im evaluate``: pairing by name, per-image rows, mean +- std, CSV, and one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

from im2im_cli.main import main
from im2im_core.metrics import pearson, psnr, ssim


def _folders(tmp_path: Path, preds: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> tuple[Path, Path]:
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    for folder, images in ((pred_dir, preds), (gt_dir, targets)):
        folder.mkdir()
        for name, array in images.items():
            tifffile.imwrite(folder / name, array)
    return pred_dir, gt_dir


def _intensity_pairs(tmp_path: Path) -> tuple[Path, Path, list[tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(0)
    targets = [rng.random((32, 40)).astype(np.float32) for _ in range(3)]
    preds = [(t + rng.normal(0, s, t.shape)).astype(np.float32) for t, s in zip(targets, (0.05, 0.1, 0.2))]
    pred_dir, gt_dir = _folders(tmp_path,
                                {f"cell{i}_pred.ome.tiff": p for i, p in enumerate(preds[:2])} | {"cell2.tif": preds[2]},
                                {f"cell{i}.tif": t for i, t in enumerate(targets)})
    return pred_dir, gt_dir, list(zip(preds, targets))


def test_intensity_rows_summary_and_csv(tmp_path: Path, capsys):
    pred_dir, gt_dir, pairs = _intensity_pairs(tmp_path)
    table = tmp_path / "scores.csv"
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--csv", str(table)]) == 0
    out = capsys.readouterr().out
    assert "intensity metrics on 3 image(s), mean +- std" in out and "cell2" in out
    rows = list(csv.DictReader(table.open()))
    assert [r["image"] for r in rows] == ["cell0", "cell1", "cell2"]
    for row, (pred, target) in zip(rows, pairs):
        assert float(row["pearson"]) == pytest.approx(pearson(pred, target))
        assert float(row["ssim"]) == pytest.approx(ssim(pred, target))
        assert float(row["psnr"]) == pytest.approx(psnr(pred, target))
    mean = np.mean([float(r["pearson"]) for r in rows])
    std = np.std([float(r["pearson"]) for r in rows], ddof=1)
    assert f"pearson: {mean:.4f} +- {std:.4f}" in out


def test_existing_csv_is_kept_without_overwrite(tmp_path: Path, capsys):
    pred_dir, gt_dir, _ = _intensity_pairs(tmp_path)
    table = tmp_path / "scores.csv"
    table.write_text("keep me\n")
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--csv", str(table)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert table.read_text() == "keep me\n"
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--csv", str(table), "--overwrite"]) == 0
    assert table.read_text().startswith("image,kind,pearson")


def test_masks_and_labels_are_detected(tmp_path: Path, capsys):
    labels = np.zeros((20, 20), np.uint16)
    labels[2:8, 2:8], labels[10:18, 10:18] = 1, 2
    mask = (labels > 0).astype(np.uint8)
    pred_dir, gt_dir = _folders(tmp_path, {"a_pred.tif": mask, "b_pred.tif": mask}, {"a.tif": labels, "b.tif": labels})
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir)]) == 0
    assert "mask metrics" in capsys.readouterr().out
    tifffile.imwrite(pred_dir / "a_pred.tif", labels)
    tifffile.imwrite(pred_dir / "b_pred.tif", labels)
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir)]) == 0
    assert "ap50: 1.0000 +- 0.0000" in capsys.readouterr().out


@pytest.mark.parametrize("problem, message", [
    ("unmatched prediction", "have no target"),
    ("unmatched target", "have no prediction"),
    ("shape", "shape mismatch"),
    ("empty", "no images in"),
])
def test_errors_are_one_line_and_exit_2(tmp_path: Path, capsys, problem: str, message: str):
    image = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    preds = {"a_pred.tif": image, "b_pred.tif": image}
    targets = {"a.tif": image, "b.tif": image}
    if problem == "unmatched prediction":
        preds["c_pred.tif"] = image
    elif problem == "unmatched target":
        targets["c.tif"] = image
    elif problem == "shape":
        targets["b.tif"] = np.zeros((16, 17), np.float32)
    elif problem == "empty":
        preds = {}
    pred_dir, gt_dir = _folders(tmp_path, preds, targets)
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("im2im: error: ") and message in err[0]
