"""The aicsimageio reader, in an environment of its own (aicsimageio 4.x pins older zarr).

The test makes a virtual environment with aicsimageio alone, reads real images there through
``im2im_core.data.readers.AicsImageIOReader`` (which needs neither torch nor bioio), and checks
the pixels and pixel sizes against the default bioio reader in this environment.
"""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest

from im2im_core.data.readers import BioioReader

REPO = Path(__file__).resolve().parents[2]
IMAGE_2D = REPO / "im2im_core" / "demo_data" / "train" / "IM" / "IXMtest_A02_s1.tif"

READ_SCRIPT = """
import json, sys
import numpy as np
from im2im_core.data.readers import AicsImageIOReader
out = {}
for path, dims in json.loads(sys.argv[1]):
    image = AicsImageIOReader(dims=dims).read(path)
    data = image.numpy()
    out[path] = {"shape": list(data.shape), "sum": float(data.astype(np.float64).sum()), "sizes": image.physical_pixel_sizes}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def aicsimageio_python(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("aicsimageio_env")
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "aicsimageio>=4.9,<5",
                    "numcodecs<0.16"], check=True)
    return python


def test_aicsimageio_reader_matches_bioio(aicsimageio_python, tmp_path):
    from bioio_base.types import PhysicalPixelSizes
    from bioio_ome_tiff.writers import OmeTiffWriter

    stack = np.random.default_rng(0).integers(0, 4000, (2, 6, 32, 40)).astype(np.uint16)
    ome = tmp_path / "stack.ome.tiff"
    OmeTiffWriter.save(stack, str(ome), dim_order="CZYX", physical_pixel_sizes=PhysicalPixelSizes(1.5, 0.4, 0.4))
    cases = [(str(IMAGE_2D), "YX"), (str(ome), "CZYX")]
    result = subprocess.run([str(aicsimageio_python), "-c", READ_SCRIPT, json.dumps(cases)], capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    for path, dims in cases:
        expected = BioioReader(dims=dims).read(path)
        data = expected.numpy()
        assert seen[path]["shape"] == list(data.shape)
        assert seen[path]["sum"] == float(data.astype(np.float64).sum())
    assert seen[str(ome)]["sizes"] == {"Z": 1.5, "Y": 0.4, "X": 0.4}
