"""Every registered preset trains two steps on tiny real data, so no preset can rot."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from im2im_cli.config import load_config
from im2im_cli.main import main
from im2im_core.plugins import get_registry

CORE_PRESETS = ["demo", "semanticseg_2d", "semanticseg_3d", "labelfree_2d", "labelfree_3d", "denoise_3d", "modality_3d"]


def test_every_core_preset_is_registered():
    assert set(CORE_PRESETS) <= set(get_registry().entries["presets"])


@pytest.mark.parametrize("preset", CORE_PRESETS)
def test_preset_trains_two_steps(preset: str, data_2d: Path, data_3d: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # No CUDA call anywhere on a machine without a GPU: initialising CUDA would raise here.
    import torch

    def no_cuda(*args, **kwargs):
        raise AssertionError("CUDA was initialised during CPU training")

    monkeypatch.setattr(torch.cuda, "_lazy_init", no_cuda)
    monkeypatch.setattr(torch.Tensor, "cuda", no_cuda)
    config = yaml.safe_load(load_config(preset, get_registry()))
    data = data_3d if config["data"]["dims"] == "ZYX" else data_2d
    code = main(["fit", "--config", preset, "--data.data_path", str(data), "--trainer.max_steps", "2",
                 "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "1", "--trainer.check_val_every_n_epoch", "1",
                 "--trainer.enable_progress_bar", "false", "--data.samples_per_image", "1", "--data.batch_size", "2"])
    assert code == 0
    assert (tmp_path / "im2im_runs" / preset / "checkpoints" / "last.ckpt").is_file()
