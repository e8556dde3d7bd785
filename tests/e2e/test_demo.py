"""The README's demo as a user runs it: fit, predict, Dice on held-out crops of at least 0.80."""

from __future__ import annotations

import re
import subprocess
import sys

import tifffile


def test_demo_fit_predict_dice(tmp_path):
    fit = subprocess.run([sys.executable, "-m", "im2im_cli", "fit", "--config", "demo", "--trainer.enable_progress_bar", "false"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert fit.returncode == 0, fit.stderr[-3000:]
    checkpoint = tmp_path / "im2im_runs/demo/checkpoints/last.ckpt"
    predict = subprocess.run([sys.executable, "-m", "im2im_cli", "predict", "--config", "demo", "--ckpt_path", str(checkpoint),
                              "--trainer.enable_progress_bar", "false"], cwd=tmp_path, capture_output=True, text=True)
    assert predict.returncode == 0, predict.stderr[-3000:]
    outputs = sorted((tmp_path / "im2im_runs/demo/predictions").glob("*_pred.ome.tiff"))
    assert len(outputs) == 4
    mask = tifffile.imread(outputs[0])
    assert mask.dtype.kind == "u" and set(map(int, mask.ravel()[::97])) <= {0, 1}
    mean_dice = float(re.search(r"Dice on 4 images with targets: mean ([0-9.]+)", predict.stdout).group(1))
    assert mean_dice >= 0.80, predict.stdout
