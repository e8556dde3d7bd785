"""Faults for real: a prediction killed half-way and continued, a full file system, two writers at once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bioio import BioImage

from im2im_core.testing import DEMO_DATA

COPIES = 12  # inputs per folder: enough that a kill lands between the first and the last output


def _inputs(folder: Path, copies: int = COPIES) -> Path:
    """``copies`` 256 x 256 BBBC039 crops (the 4 holdout crops, repeated under other names)."""
    folder.mkdir(parents=True)
    sources = sorted((DEMO_DATA / "holdout" / "IM").glob("*.tif"))
    for i in range(copies):
        shutil.copy(sources[i % len(sources)], folder / f"crop_{i:02d}.tif")
    return folder


def _command(run: Path, inputs: Path, out: Path, output_format: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "im2im_cli", "predict", "--ckpt_path", str(run), "--data.predict_path", str(inputs),
            "--prediction.output_dir", str(out), "--prediction.output_format", output_format,
            "--trainer.enable_progress_bar", "false", "--trainer.logger", "false", *extra]


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "IM2IM_DISABLE_PLUGINS": "1"}


def _outputs(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*_pred.ome.*") if not p.name.startswith("."))


def _readable(path: Path) -> bool:
    return BioImage(path).get_image_data("YX").shape == (256, 256)


@pytest.mark.parametrize("output_format", ["ome-tiff", "ome-zarr"])
def test_sigkill_mid_predict_then_skip_existing_finishes_without_recomputing(run: Path, tmp_path: Path,
                                                                             output_format: str) -> None:
    inputs, out = _inputs(tmp_path / "inputs"), tmp_path / "out"
    process = subprocess.Popen(_command(run, inputs, out, output_format), env=_environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(_outputs(out)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = _outputs(out)
    assert 0 < len(done) < COPIES, f"the kill came at {len(done)} of {COPIES} outputs"
    assert all(_readable(p) for p in done)  # whatever has an output's name is whole
    before = {p.name: p.stat().st_mtime_ns for p in done}

    finish = subprocess.run(_command(run, inputs, out, output_format, "--prediction.skip_existing", "true"),
                            env=_environment(), capture_output=True, text=True, timeout=600)
    assert finish.returncode == 0, finish.stderr[-3000:]
    assert f"{len(done)} of {COPIES} outputs exist already" in finish.stdout
    outputs = _outputs(out)
    assert len(outputs) == COPIES and all(_readable(p) for p in outputs)
    assert {p.name: p.stat().st_mtime_ns for p in outputs if p.name in before} == before  # not recomputed
    assert not list(out.glob(".*.partial"))  # the killed run's temporary output was cleaned up


@pytest.fixture
def small_file_system(tmp_path: Path):
    """A 12 kB tmpfs: room for two or three outputs (a few kB each), not for all."""
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (CI and the project's machines run tests as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("output_format", ["ome-tiff", "ome-zarr"])
def test_a_full_file_system_gets_one_message_and_leaves_no_partial_output(run: Path, tmp_path: Path,
                                                                          small_file_system: Path, output_format: str) -> None:
    inputs, out = _inputs(tmp_path / "inputs", copies=8), small_file_system / "out"
    done = subprocess.run(_command(run, inputs, out, output_format, "--prediction.evaluate", "false"),
                          env=_environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    message = [line for line in done.stderr.splitlines() if line.startswith("im2im: error:")]
    assert len(message) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "cannot write" in message[0] and str(out) in message[0] and "No space left" in message[0], message[0]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary output left behind
    assert all(_readable(p) for p in _outputs(out))


def test_two_ome_zarr_predicts_into_one_folder_never_leave_an_unreadable_store(run: Path, tmp_path: Path) -> None:
    inputs, out = _inputs(tmp_path / "inputs", copies=6), tmp_path / "out"
    command = _command(run, inputs, out, "ome-zarr", "--prediction.overwrite", "true", "--prediction.evaluate", "false")
    processes = [subprocess.Popen(command, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in processes]
    for code, err in results:
        assert code == 0 or (code == 2 and "written by another process" in err), err[-3000:]
    outputs = _outputs(out)
    assert len(outputs) == 6 and all(_readable(p) for p in outputs)
    assert not list(out.glob(".*.partial"))
