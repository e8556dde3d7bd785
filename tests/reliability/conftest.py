"""Fixtures of the bad-input and fault tests: one small trained run whose checkpoint the cases use."""

from __future__ import annotations

from pathlib import Path

import pytest

from im2im_cli.main import main
from im2im_core.testing import copy_pairs


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint of a two-step run of the demo preset (a small U-Net), written by ``im2im fit``."""
    root = tmp_path_factory.mktemp("run")
    data = copy_pairs(root / "data", slice(0, 3))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        code = main(["fit", "--config", "demo", "--data.data_path", str(data), "--trainer.max_steps", "2",
                     "--trainer.enable_progress_bar", "false", "--data.batch_size", "4", "--data.patch_size", "[64, 64]",
                     "--model.init_args.backbone.init_args.channels", "[8, 16]",
                     "--model.init_args.backbone.init_args.strides", "[2]"])
    assert code == 0
    return root / "im2im_runs" / "demo" / "checkpoints" / "last.ckpt"
