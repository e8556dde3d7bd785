"""3D nuclei on real crops (PlantSeg, anisotropic voxels): the voxel size goes from the files
through ``im2im plan`` into EmbedSeg and into the predicted labels' metadata.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from bioio import BioImage

from im2im_cli.main import main
from im2im_core.testing import DEMO_DATA_NUCLEI_3D

VOXEL_UM = (0.2837, 0.1268, 0.1268)  # Z, Y, X in the crops' TIFF metadata


def test_plan_keeps_the_voxel_size_into_training_and_the_predicted_labels(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    data = Path(shutil.copytree(DEMO_DATA_NUCLEI_3D, tmp_path / "nuclei", ignore=shutil.ignore_patterns("*.txt")))
    assert main(["plan", "--data.data_path", str(data), "--task", "instance", "--device", "cpu", "--time", "2m",
                 "--output", "plan.yaml"]) == 0
    config = yaml.safe_load(Path("plan.yaml").read_text())
    model = config["model"]["init_args"]
    assert model["voxel_size"] == pytest.approx(VOXEL_UM, abs=1e-4)
    assert "voxel size" in Path("plan.yaml").read_text()  # the reason is written next to the value
    z, y, x = config["data"]["patch_size"]
    assert z < y and z < x  # about as many micrometres along Z as along Y and X: fewer planes
    assert model["backbone"]["init_args"]["strides"][0] == [1, 2, 2]  # the first level keeps the coarse Z

    code = main(["fit", "--config", "plan.yaml", "--trainer.max_steps", "2", "--trainer.max_time", "null",
                 "--data.val_fraction", "0", "--trainer.limit_val_batches", "0", "--data.samples_per_image", "1",
                 "--data.batch_size", "1", "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false"])
    assert code == 0, capsys.readouterr().err
    run = Path("im2im_runs/planned")
    config_file = sorted(run.glob("lightning_logs/version_*/config.yaml"))[-1]
    code = main(["predict", "--config", str(config_file), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
                 "--data.predict_path", str(data / "IM"), "--prediction.output_dir", "pred",
                 "--trainer.enable_progress_bar", "false"])
    assert code == 0, capsys.readouterr().err
    written = sorted(Path("pred").glob("*_pred.ome.tif*"))
    assert [p.name.split("_pred")[0] for p in written] == ["nuclei_0", "nuclei_1"]
    for path in written:
        image = BioImage(path)
        labels = np.squeeze(image.data)
        assert labels.shape == (32, 64, 64) and np.issubdtype(labels.dtype, np.integer)
        sizes = image.physical_pixel_sizes
        assert (sizes.Z, sizes.Y, sizes.X) == pytest.approx(VOXEL_UM, abs=1e-4)
