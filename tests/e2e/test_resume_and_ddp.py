"""Fault tolerance and distribution: SIGKILL mid-epoch then resume; DDP with two CPU processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return env


def _callbacks_config(path: Path, ckpt_dir: Path, record: Path, every: int) -> Path:
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
         "init_args": {"dirpath": str(ckpt_dir), "save_last": True, "every_n_train_steps": every}},
        {"class_path": "im2im_test_helpers.StartRecorder", "init_args": {"path": str(record)}},
    ]}, "model": {"init_args": {"lr_scheduler": {"class_path": "torch.optim.lr_scheduler.StepLR",
                                                 "init_args": {"step_size": 1, "gamma": 0.9}}}}}))
    return path


def _fit_args(data: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "im2im_cli", "fit", "--config", "demo", "--data.data_path", str(data),
            "--data.samples_per_image", "1", "--data.batch_size", "1", "--data.val_fraction", "0",
            "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false", *extra]


def test_sigkill_mid_epoch_then_resume_restores_step_optimizer_and_scheduler(data_2d, tmp_path):
    ckpt_dir, record = tmp_path / "ckpt", tmp_path / "start"
    config = _callbacks_config(tmp_path / "callbacks.yaml", ckpt_dir, record, every=3)
    # 4 images, 1 per batch: 4 steps an epoch; a checkpoint every 3 steps lands mid-epoch.
    run = subprocess.Popen(_fit_args(data_2d, ["--config", str(config), "--trainer.max_epochs", "1000"]),
                           cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = ckpt_dir / "last.ckpt"
    deadline = time.time() + 240
    while time.time() < deadline and run.poll() is None:
        try:
            torch.load(last, map_location="cpu", weights_only=False)
            break
        except (FileNotFoundError, RuntimeError, EOFError):
            time.sleep(0.1)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL, run.stderr.read().decode()[-2000:]
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    step = checkpoint["global_step"]
    assert step % 4 != 0, f"checkpoint at step {step} is at an epoch end; the test wants one mid-epoch"
    saved_scheduler = checkpoint["lr_schedulers"][0]["last_epoch"]
    assert step > 0
    resumed = subprocess.run(_fit_args(data_2d, ["--config", str(config), "--ckpt_path", str(last),
                                                 "--trainer.max_steps", str(step + 2), "--trainer.max_epochs", "1000"]),
                             cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    start = json.loads(Path(f"{record}.rank0.json").read_text())
    assert start["global_step"] == step
    assert start["optimizer_steps"] == [float(step)]  # Adam's step count came back with its moments
    assert start["scheduler_last_epoch"] == [saved_scheduler]
    final = torch.load(last, map_location="cpu", weights_only=False)
    assert final["global_step"] == step + 2


def test_ddp_two_cpu_processes_train(data_2d, tmp_path):
    ckpt_dir, record = tmp_path / "ckpt", tmp_path / "start"
    config = _callbacks_config(tmp_path / "callbacks.yaml", ckpt_dir, record, every=2)
    result = subprocess.run(_fit_args(data_2d, ["--config", str(config), "--trainer.max_steps", "2",
                                                "--trainer.strategy", "ddp", "--trainer.devices", "2",
                                                "--trainer.accelerator", "cpu"]),
                            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads(Path(f"{record}.rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]
    assert torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 2


def test_ddp_prediction_of_a_folder_writes_each_output_once_and_prints_every_score(data_2d, tmp_path):
    ckpt_dir, record = tmp_path / "ckpt", tmp_path / "start"
    config = _callbacks_config(tmp_path / "callbacks.yaml", ckpt_dir, record, every=2)
    fit = subprocess.run(_fit_args(data_2d, ["--config", str(config), "--trainer.max_steps", "2"]),
                         cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert fit.returncode == 0, fit.stderr[-3000:]
    # 3 files on 2 processes: a sampler that repeats a file to even the shares would write it twice
    folder = tmp_path / "to_predict"
    for sub in ("IM", "GT"):
        (folder / sub).mkdir(parents=True)
        for path in sorted((data_2d / sub).glob("*.tif"))[:3]:
            (folder / sub / path.name).write_bytes(path.read_bytes())
    output = tmp_path / "predictions"
    predict = subprocess.run([sys.executable, "-m", "im2im_cli", "predict", "--config", "demo",
                              "--ckpt_path", str(ckpt_dir / "last.ckpt"), "--data.predict_path", str(folder),
                              "--prediction.output_dir", str(output), "--trainer.enable_progress_bar", "false",
                              "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"],
                             cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert predict.returncode == 0, predict.stderr[-3000:]
    names = sorted(p.name for p in (folder / "IM").glob("*.tif"))
    assert sorted(p.name for p in output.iterdir()) == sorted(n.replace(".tif", "_pred.ome.tiff") for n in names)
    for name in names:  # every file scored once, all by the one report of rank 0
        assert predict.stdout.count(f"  {name}: Dice ") == 1, predict.stdout
    assert predict.stdout.count("Dice on 3 images with targets: mean") == 1, predict.stdout
    assert predict.stdout.count("predictions written to") == 1, predict.stdout
