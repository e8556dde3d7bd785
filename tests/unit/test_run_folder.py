"""``--trainer.default_root_dir`` moves a preset's run folder: logs, checkpoints and predictions."""

from __future__ import annotations

from pathlib import Path

import yaml

from im2im_cli.run_folder import follow_root_dir

PRESET = yaml.safe_dump({
    "trainer": {"default_root_dir": "im2im_runs/demo",
                "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "im2im_runs/demo"}},
                "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                               "init_args": {"dirpath": "im2im_runs/demo/checkpoints"}},
                              {"class_path": "lightning.pytorch.callbacks.EarlyStopping",
                               "init_args": {"monitor": "val_loss"}}]},
    "prediction": {"output_dir": "im2im_runs/demo/predictions"},
})


def test_paths_inside_the_config_root_move_with_it() -> None:
    args = follow_root_dir(["fit", "--config", PRESET, "--trainer.default_root_dir", "/data/runs/a"])
    moved = yaml.safe_load(args[2])
    trainer = moved["trainer"]
    assert trainer["default_root_dir"] == "/data/runs/a"
    assert trainer["logger"]["init_args"]["save_dir"] == "/data/runs/a"
    assert trainer["callbacks"][0]["init_args"]["dirpath"] == "/data/runs/a/checkpoints"
    assert trainer["callbacks"][1]["init_args"] == {"monitor": "val_loss"}
    assert moved["prediction"]["output_dir"] == "/data/runs/a/predictions"
    assert args[3:] == ["--trainer.default_root_dir", "/data/runs/a"]


def test_paths_outside_the_root_and_later_configs_stay() -> None:
    config = yaml.safe_load(PRESET)
    config["prediction"]["output_dir"] = "/elsewhere/masks"
    args = follow_root_dir(["fit", "--config", yaml.safe_dump(config), "--trainer.default_root_dir=runs/b",
                            "--config", PRESET])
    assert yaml.safe_load(args[2])["prediction"]["output_dir"] == "/elsewhere/masks"
    assert args[5] == PRESET  # a config given after the option sets its own folders
    assert follow_root_dir(["fit", "--config", PRESET]) == ["fit", "--config", PRESET]


def test_a_demo_run_lands_in_the_root_dir_given(tmp_path: Path, monkeypatch) -> None:
    from im2im_cli.main import main
    from im2im_core.testing import copy_pairs

    monkeypatch.chdir(tmp_path)
    data = copy_pairs(tmp_path / "data", slice(0, 2))
    assert main(["fit", "--config", "demo", "--data.data_path", str(data), "--trainer.max_steps", "1",
                 "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", "runs/mine"]) == 0
    assert (tmp_path / "runs" / "mine" / "checkpoints" / "last.ckpt").is_file()
    assert list((tmp_path / "runs" / "mine").glob("lightning_logs/version_*/config.yaml"))
    assert not (tmp_path / "im2im_runs").exists()
