"""Pytest helpers for plugins' tests that run the ``im2im`` command (the core's are in ``im2im_core.testing``)."""

from __future__ import annotations

from typing import Any

import pytest


def printed_config(preset: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The full config ``im2im fit --config PRESET --print_config`` prints, every class path resolved."""
    import yaml

    from im2im_cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", preset, "--print_config"])
    assert exit_info.value.code in (0, None), f"--print_config of {preset} exited with {exit_info.value.code}"
    return yaml.safe_load(capsys.readouterr().out)
