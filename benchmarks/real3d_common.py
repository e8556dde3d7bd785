"""Shared steps of the "3D on real data" scripts (real3d_labelfree.py, real3d_instances.py).

Each case trains with ``im2im fit`` for a fixed CPU wall time in its own folder, predicts the
held-out part with ``im2im predict``, and is scored here. Nothing is downloaded: the volumes
come from ``../shared/data`` and are split into a work folder outside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def parse_options(description: str, data: Path, cases: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """The options every 3D script takes, and the cases asked for (checked against ``cases``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, default=data)
    parser.add_argument("--work", type=Path, required=True, help="work folder (splits, runs), outside the repository")
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall time per case")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once")
    parser.add_argument("--cases", default=",".join(cases))
    parser.add_argument("--figure", type=Path, help="PNG of the held-out predictions")
    options = parser.parse_args()
    asked = options.cases.split(",")
    unknown = sorted(set(asked) - set(cases))
    if unknown:
        parser.error(f"unknown cases {unknown}: expected some of {', '.join(cases)}")
    return options, asked


def finished_run(run: Path) -> dict | None:
    """The facts (``done.json``) of a case that finished in an earlier call; otherwise an empty ``run`` folder and None.

    Delete a case's folder to train it again.
    """
    done = run / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    return None


def mark_finished(run: Path, facts: dict) -> None:
    """Record a finished case's facts, for :func:`finished_run`."""
    (run / "done.json").write_text(json.dumps(facts))


def max_time(minutes: float) -> str:
    """Lightning's ``max_time`` string ``DD:HH:MM:SS`` for ``minutes``."""
    seconds = int(round(minutes * 60))
    return f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def write_volume(path: Path, array: np.ndarray, voxel_size: Sequence[float] | None) -> None:
    """Write a ZYX volume as an ImageJ TIFF, with its physical voxel size (Z, Y, X in um) when known."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if voxel_size is None:
        tifffile.imwrite(path, array, imagej=True, metadata={"axes": "ZYX"})
        return
    z, y, x = voxel_size
    tifffile.imwrite(path, array, imagej=True, resolution=(1 / x, 1 / y),
                     metadata={"axes": "ZYX", "spacing": z, "unit": "um"})


def im2im(args: Sequence[str], cwd: Path, log: Path, threads: int) -> float:
    """Run ``im2im ARGS`` in ``cwd`` with ``threads`` torch threads; return its wall time (s).

    Output goes to ``log``; a failure raises with the log's last lines.
    """
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    with open(log, "a") as out:
        out.write("$ im2im " + " ".join(args) + "\n")
        out.flush()
        done = subprocess.run(["im2im", *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"im2im {args[0]} failed in {cwd} (log {log}):\n{tail}")
    return time.perf_counter() - start


def run_config(run_dir: Path, preset_root: str) -> Path:
    """The config.yaml that ``im2im fit`` saved for its newest run under ``run_dir/im2im_runs/<preset_root>``."""
    configs = sorted((run_dir / "im2im_runs" / preset_root).glob("**/config.yaml"), key=lambda p: p.stat().st_mtime)
    if not configs:
        raise FileNotFoundError(f"no config.yaml under {run_dir / 'im2im_runs' / preset_root}")
    return configs[-1]


def checkpoint_step(path: Path) -> int:
    """The optimizer step count stored in a Lightning checkpoint."""
    from im2im_core.inference import read_checkpoint  # weights_only loading: a checkpoint runs no code

    return int(read_checkpoint(path)["global_step"])


def read_prediction(folder: Path) -> np.ndarray:
    """The one prediction (``*_pred.ome.tiff``) in ``folder`` as a ZYX array."""
    files = sorted(folder.glob("*_pred.ome.tif*"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one *_pred.ome.tif(f) in {folder}, found {[f.name for f in files]}")
    return np.squeeze(tifffile.imread(files[0]))


def finish(report: dict) -> None:
    """Print the closing JSON line of a benchmark."""
    import json

    print(json.dumps(report), flush=True)
    sys.stdout.flush()
