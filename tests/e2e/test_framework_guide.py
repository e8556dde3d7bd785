"""The minimal framework of docs/plugins.md, copied out of the page, installed and run as a user would.

The files of the example are the page's code blocks whose info string names a file
(```` ```python file=im2im-l1/im2im_l1/framework.py ````). They are written to a folder,
installed as a separate distribution (``pip install --target``, so the test environment is
left as it is) and put on ``PYTHONPATH`` of the ``im2im`` commands run in subprocesses:
``fit``, ``validate``, ``predict`` to OME-TIFF and ``predict`` to OME-Zarr with TTA.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bioio import BioImage

from im2im_core.testing import copy_pairs

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
BLOCK = re.compile(r"^```\w+ file=(?P<name>\S+)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def guide_files() -> dict[str, str]:
    """``{relative path: text}`` of the example's files in the guide."""
    return {match["name"]: match["body"] for match in BLOCK.finditer(GUIDE.read_text())}


def test_guide_has_the_whole_example() -> None:
    assert set(guide_files()) == {"im2im-l1/pyproject.toml", "im2im-l1/im2im_l1/plugin.py",
                                  "im2im-l1/im2im_l1/framework.py", "l1.yaml"}


@pytest.fixture(scope="module")
def guide_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The example written out and installed into ``site/``; returns the folder and the environment."""
    root = tmp_path_factory.mktemp("guide")
    for name, text in guide_files().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "im2im-l1" / "im2im_l1" / "__init__.py").write_text('"""im2im-l1."""\n')
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(root / "site"), str(root / "im2im-l1")], check=True, capture_output=True)
    copy_pairs(root / "data", slice(0, 3))
    images = root / "images"
    copy_pairs(images, slice(0, 2), split="holdout")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "site"), os.environ.get("PYTHONPATH", "")]),
                   "OMP_NUM_THREADS": "1", "IM2IM_PLUGINS": "l1"}
    return root, environment


def im2im(root: Path, environment: dict[str, str], *args: str) -> str:
    """Run ``im2im ARGS`` in ``root``; fail with its output if it fails."""
    done = subprocess.run([sys.executable, "-m", "im2im_cli", *args], cwd=root, env=environment, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def test_the_guide_framework_fits_validates_and_predicts(guide_project: tuple[Path, dict[str, str]],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root, environment = guide_project
    listing = im2im(root, environment, "plugins")
    assert "L1Regression" in listing
    im2im(root, environment, "fit", "--config", "l1.yaml")
    checkpoint = "l1_run/checkpoints/last.ckpt"
    assert (root / checkpoint).is_file()
    validated = im2im(root, environment, "validate", "--ckpt_path", checkpoint)
    assert "val_pearson" in validated and "val_loss" in validated

    im2im(root, environment, "predict", "--ckpt_path", checkpoint, "--data.predict_path", "images",
          "--prediction.output_dir", "out")
    im2im(root, environment, "predict", "--ckpt_path", checkpoint, "--data.predict_path", "images",
          "--prediction.output_dir", "out_zarr", "--prediction.output_format", "ome-zarr",
          "--prediction.inference.tta", "flips")
    tiffs, zarrs = sorted((root / "out").glob("*.ome.tiff")), sorted((root / "out_zarr").glob("*.ome.zarr"))
    assert [p.name.split(".")[0] for p in tiffs] == [p.name.split(".")[0] for p in zarrs] and len(tiffs) == 2
    # the same model from the checkpoint alone, in this process: the CLI's outputs are the core's prediction
    monkeypatch.syspath_prepend(str(root / "site"))
    from im2im_core.inference import predict

    inputs = sorted((root / "images" / "IM").glob("*.tif"))
    for tiff, zarr, image in zip(tiffs, zarrs, inputs):
        plain, augmented = BioImage(tiff).get_image_data("YX"), BioImage(zarr).get_image_data("YX")
        assert plain.shape == augmented.shape == (256, 256) and plain.dtype == augmented.dtype == np.float32
        pixels = BioImage(image).get_image_data("YX")
        np.testing.assert_allclose(plain, predict(root / checkpoint, pixels, normalize=(0.5, 99.5)), atol=1e-5)
        np.testing.assert_allclose(augmented, predict(root / checkpoint, pixels, normalize=(0.5, 99.5), tta="flips"),
                                   atol=1e-5)
        assert not np.allclose(plain, augmented, atol=1e-4)  # the flips were predicted and averaged
