"""The commands that only list things import neither Lightning, MONAI nor torch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("lightning", "monai", "torch")
#: the plugins of this repository (those installed here), as ``im2im plugins`` would load them
REPO_PLUGINS = "pix2pix,stain,embedseg,utom"


@pytest.mark.parametrize("argv", [["plugins"], ["plugins", "--json"], ["presets"], ["--help"]], ids=" ".join)
def test_listing_commands_import_nothing_heavy(argv: list[str]) -> None:
    code = ("import sys; from im2im_cli.main import main; rc = main(%r); "
            "heavy = [m for m in %r if m in sys.modules]; assert rc == 0 and not heavy, heavy") % (argv, HEAVY)
    env = {k: v for k, v in os.environ.items() if k != "IM2IM_DISABLE_PLUGINS"}
    env["IM2IM_PLUGINS"] = REPO_PLUGINS
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip()
