"""A real plugin distribution, built and installed in a temporary folder, is found by im2im."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from im2im_cli.config import load_config
from im2im_core.plugins import get_registry

PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.0.1"

[project.entry-points.im2im]
{entry} = "{package}"
"""

GOOD_PLUGIN = '''\
import torch
from im2im_core.hookspecs import hookimpl


class TinyNet(torch.nn.Module):
    """Two convolutions: enough to train a step."""

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 1, width: int = 4):
        super().__init__()
        conv = torch.nn.Conv2d if spatial_dims == 2 else torch.nn.Conv3d
        self.body = torch.nn.Sequential(conv(in_channels, width, 3, padding=1), torch.nn.ReLU(),
                                        conv(width, out_channels, 3, padding=1))

    def forward(self, x):
        return self.body(x)


@hookimpl
def im2im_register_backbones():
    return {"tinynet": TinyNet}
'''

BROKEN_PLUGIN = 'raise RuntimeError("broken on purpose")\n'


def _make_distribution(root: Path, dist: str, entry: str, package: str, code: str) -> Path:
    folder = root / dist
    (folder / package).mkdir(parents=True)
    (folder / "pyproject.toml").write_text(PYPROJECT.format(dist=dist, entry=entry, package=package))
    (folder / package / "__init__.py").write_text(code)
    return folder


@pytest.fixture
def installed_plugins(tmp_path: Path) -> dict[str, str]:
    """Build and install a working and a broken plugin into a target folder; return an env."""
    good = _make_distribution(tmp_path / "src", "im2im-throwaway", "throwaway", "im2im_throwaway", GOOD_PLUGIN)
    broken = _make_distribution(tmp_path / "src", "im2im-broken", "broken", "im2im_broken", BROKEN_PLUGIN)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(good), str(broken)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("IM2IM_DISABLE_PLUGINS", "IM2IM_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["IM2IM_PLUGINS"] = "throwaway,broken"  # only ours, whatever else is installed here
    return env


def _im2im(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "im2im_cli", *args], env=env, cwd=cwd, capture_output=True, text=True)


def test_installed_plugin_is_listed_and_broken_one_reported(installed_plugins, tmp_path):
    result = _im2im(["plugins", "--json"], installed_plugins, tmp_path)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    throwaway = next(p for p in listing["plugins"] if p["name"] == "throwaway")
    assert throwaway["version"] == "0.0.1" and throwaway["registered"] == {"backbones": ["tinynet"]}
    broken = next(p for p in listing["failed"] if p["name"] == "broken")
    assert "RuntimeError: broken on purpose" in broken["error"]
    text = _im2im(["plugins"], installed_plugins, tmp_path).stdout
    assert "broken FAILED to load: RuntimeError: broken on purpose" in text


def test_plugin_backbone_trains_by_short_name(installed_plugins, data_2d, tmp_path):
    config = yaml.safe_load(load_config("demo", get_registry()))
    config["model"]["init_args"]["backbone"] = {"class_path": "tinynet", "init_args": {"spatial_dims": 2, "width": 3}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _im2im(["fit", "--config", str(path), "--data.data_path", str(data_2d), "--trainer.max_steps", "2",
                     "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false"], installed_plugins, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    saved = yaml.safe_load((tmp_path / "im2im_runs/demo/lightning_logs/version_0/config.yaml").read_text())
    assert saved["model"]["init_args"]["backbone"]["class_path"] == "im2im_throwaway.TinyNet"
