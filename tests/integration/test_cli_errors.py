"""Bad input ends with one clear message naming the file, key or name, and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from im2im_cli.main import main


def _fit(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(["fit", "--config", "semanticseg_2d", "--trainer.max_epochs", "1", *args])
    return code, capsys.readouterr().err.strip().splitlines()[-1]


def test_missing_target_names_the_file(data_2d: Path, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    missing = sorted((data_2d / "GT").iterdir())[1]
    missing.unlink()
    code, message = _fit(["--data.data_path", str(data_2d)], capsys)
    assert code != 0
    assert message.startswith("im2im: error: no target for input") and missing.name in message
    assert not (tmp_path / "im2im_runs").exists() or not any((tmp_path / "im2im_runs").rglob("*.ckpt"))


def test_misspelled_config_key_names_the_key(data_2d: Path, capsys, tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text("data:\n  data_pth: somewhere\n")
    code = main(["fit", "--config", "semanticseg_2d", "--config", str(config)])
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert code != 0 and "data.data_pth" in message


def test_misspelled_override_names_the_key(data_2d: Path, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, message = _fit(["--data.data_path", str(data_2d), "--trainer.max_epohcs", "3"], capsys)
    assert code != 0 and "trainer.max_epohcs" in message


def test_misspelled_init_arg_names_key_and_class(capsys, tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text("model:\n  init_args:\n    thresold: 0.3\n")
    code = main(["fit", "--config", "semanticseg_2d", "--config", str(config)])
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert code != 0 and "'model'" in message and "thresold" in message and "FCN" in message


def test_unknown_backbone_names_the_name(data_2d: Path, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, message = _fit(["--data.data_path", str(data_2d), "--model.backbone", "unett"], capsys)
    assert code != 0 and "'unett'" in message and "registered backbones" in message


def test_unknown_preset(capsys):
    assert main(["fit", "--config", "semanticseg_9d"]) != 0
    assert "'semanticseg_9d' is neither a file nor a registered preset" in capsys.readouterr().err


def test_plugins_json_lists_fcn_and_backbones(capsys):
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    builtin = next(p for p in listing["plugins"] if p["name"] == "builtin")
    assert "FCN" in builtin["registered"]["frameworks"]
    assert {"fnet", "anisotropic_unet", "UNet"} <= set(builtin["registered"]["backbones"])


def test_presets_lists_names_plugins_and_descriptions(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    demo = next(line for line in lines if line.startswith("demo "))
    assert "[builtin]" in demo and "BBBC039" in demo
