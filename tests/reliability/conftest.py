"""Fixtures of the bad-input and fault tests: one small trained run whose checkpoint the cases use."""

from __future__ import annotations

from pathlib import Path

import pytest

from im2im_core.testing import train_demo


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint of a two-step run of the demo preset (a small U-Net), written by ``im2im fit``."""
    return train_demo(tmp_path_factory.mktemp("run"))
