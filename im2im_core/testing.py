"""Pytest helpers for the tests of im2im plugins: one registry, one torch thread, real crops.

A plugin's ``tests/conftest.py`` starts with::

    from im2im_core.testing import one_torch_thread, plugin_registry  # noqa: F401  (fixtures)

    registry = plugin_registry("embedseg")  # the built-ins and this plugin only

and its tests get ``one_torch_thread`` (applied to every test) and ``registry``. Data:
:data:`DEMO_DATA` holds the BBBC039 crops bundled with the core (CC0), and :func:`copy_pairs`
copies some of them into a test's folder. This module imports pytest: tests only.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

#: BBBC039 nuclei crops, 256 x 256, with instance labels: ``train/{IM,GT}`` and ``holdout/{IM,GT}``.
DEMO_DATA = Path(__file__).parent / "demo_data"
#: NEUBIAS widefield (``IM``) / confocal (``GT``) z-stack crops, two 16 x 64 x 64 uint16 pairs
#: ``nucleus_0.tif`` and ``nucleus_1.tif`` (CC BY 4.0, credit NEUBIAS / EMBL CBA; see demo_data/README.txt).
DEMO_DATA_3D = DEMO_DATA / "widefield_confocal_3d"
#: PlantSeg nuclei z-stack crops with instance labels, two 32 x 64 x 64 pairs ``nuclei_0.tif`` and
#: ``nuclei_1.tif`` (uint8 ``IM``, uint16 ``GT``), voxel 0.284 x 0.127 x 0.127 um in the files
#: (MIT, PlantSeg; see demo_data/README.txt).
DEMO_DATA_NUCLEI_3D = DEMO_DATA / "plantseg_nuclei_3d"


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run each test on one torch thread, then restore the setting.

    Test networks are tiny, and on a busy 2-core machine OpenMP threads that wait for each
    other made small fits 10 to 20 times slower than one thread.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def plugin_registry(name: str) -> Callable[..., Any]:
    """A ``registry`` fixture: the registry with the built-ins and plugin ``name`` only.

    Sets ``IM2IM_PLUGINS=name`` for the test, so other installed plugins cannot change what
    it sees, and rebuilds the registry before and after.
    """

    @pytest.fixture
    def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
        from im2im_core.plugins import get_registry, reset_registry

        monkeypatch.setenv("IM2IM_PLUGINS", name)
        monkeypatch.delenv("IM2IM_DISABLE_PLUGINS", raising=False)
        reset_registry()
        yield get_registry()
        reset_registry()

    return registry


def copy_pairs(target: Path, names: slice = slice(None), split: str = "train", swap: bool = False) -> Path:
    """Copy the demo crops ``names`` of ``split`` into ``target/IM`` and ``target/GT``.

    ``swap`` puts the labels in ``IM`` and the images in ``GT`` (mask-to-image synthesis).
    Returns ``target``.
    """
    images = sorted((DEMO_DATA / split / "IM").glob("*.tif"))[names]
    source_dirs = ("GT", "IM") if swap else ("IM", "GT")
    for sub in ("IM", "GT"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    for path in images:
        for source, sub in zip(source_dirs, ("IM", "GT")):
            shutil.copy(DEMO_DATA / split / source / path.name, target / sub / path.name)
    return target


def assert_registers(registry: Any, plugin: str, version: str, names: dict[str, Sequence[str]]) -> None:
    """Check that ``plugin`` (its ``version``) loaded and registered exactly ``names``.

    ``names`` maps a kind (``frameworks``, ``backbones``, ``transforms``, ``readers``,
    ``presets``) to the names the plugin adds; each must be owned by ``plugin``.
    """
    info = {p.name: p for p in registry.plugins}[plugin]
    assert info.version == version
    assert not [f for f in registry.failed if f.name == plugin], f"plugin {plugin} failed to load"
    for kind, expected in names.items():
        assert sorted(info.registered[kind]) == sorted(expected), kind
        for name in expected:
            assert registry.owners[kind][name] == plugin, (kind, name)


def assert_gone_when_plugins_disabled(monkeypatch: pytest.MonkeyPatch, names: dict[str, Sequence[str]]) -> None:
    """Check that none of ``names`` (kind -> names) is registered with ``IM2IM_DISABLE_PLUGINS=1``."""
    from im2im_core.plugins import make_plugin_manager

    monkeypatch.setenv("IM2IM_DISABLE_PLUGINS", "1")
    _, registry = make_plugin_manager()
    for kind, expected in names.items():
        assert not set(expected) & set(registry.entries[kind]), kind


def read_preset(path: Path) -> dict[str, Any]:
    """The config of the preset file ``path``, checked for what every preset has.

    Its first line is ``# <one-line description>`` (``im2im presets`` shows it), and it has
    ``trainer``, ``model`` and ``data`` sections.
    """
    import yaml

    text = Path(path).read_text()
    first_line = text.splitlines()[0]
    assert first_line.startswith("# ") and len(first_line) > 20, f"{path}: first line must be '# one-line description'"
    config = yaml.safe_load(text)
    assert {"trainer", "model", "data"} <= set(config), f"{path}: needs trainer, model and data sections"
    return config


def assert_exports_and_round_trips(checkpoint: Path, images: Path, folder: Path,
                                   formats: Sequence[str] = ("pytorch_state_dict", "torchscript", "onnx")) -> Path:
    """Export ``checkpoint`` offline, pass bioimageio.core's test for each of ``formats``, and predict ``images``
    from the package (each format) with ``im2im predict --model``: the outputs equal those of ``--ckpt_path``.

    Float outputs may differ by 1e-4 of their range (ONNX and TorchScript round differently);
    masks and labels must be equal. Returns the package.
    """
    import socket

    import numpy as np
    from bioimageio.core import test_model
    from bioio import BioImage

    from im2im_cli.main import main

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network access during a test")

    package = folder / "model.zip"
    common = ["--data.predict_path", str(images), "--trainer.accelerator", "cpu", "--trainer.logger", "false",
              "--trainer.enable_progress_bar", "false"]

    def outputs(out: Path) -> list[np.ndarray]:
        return [BioImage(p).get_image_data(BioImage(p).dims.order) for p in sorted(out.glob("*.ome.tiff"))]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        assert main(["export", "--ckpt_path", str(checkpoint), "--output", str(package), "--weights", ",".join(formats)]) == 0
        for weight_format in formats:
            summary = test_model(package, weight_format=weight_format)
            assert summary.status == "passed", [(d.name, [e.msg[:200] for e in d.errors]) for d in summary.details
                                                if d.status != "passed"]
    assert main(["predict", "--ckpt_path", str(checkpoint), "--prediction.output_dir", str(folder / "ckpt"), *common]) == 0
    reference = outputs(folder / "ckpt")
    assert reference
    for weight_format in formats:
        out = folder / weight_format
        assert main(["predict", "--model", str(package), "--model.init_args.weight_format", weight_format,
                     "--prediction.output_dir", str(out), *common]) == 0
        for expected, got in zip(reference, outputs(out), strict=True):
            assert expected.dtype == got.dtype and expected.shape == got.shape, weight_format
            if np.issubdtype(expected.dtype, np.integer):
                assert np.array_equal(expected, got), weight_format
            else:
                scale = float(np.ptp(expected)) or 1.0
                assert float(np.abs(expected - got).max()) <= 1e-4 * scale, weight_format
    return package


def train_demo(root: Path, steps: int = 2, images: int = 3, channels: Sequence[int] = (8, 16),
               strides: Sequence[int] = (2,)) -> Path:
    """Train the demo preset for ``steps`` steps on ``images`` demo crops in ``root`` (a small U-Net of
    ``channels`` and ``strides``); return its last checkpoint.
    """
    from im2im_cli.main import main

    data = copy_pairs(root / "data", slice(0, images))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        code = main(["fit", "--config", "demo", "--data.data_path", str(data), "--trainer.max_steps", str(steps),
                     "--trainer.enable_progress_bar", "false", "--data.batch_size", "4", "--data.patch_size", "[64, 64]",
                     "--model.init_args.backbone.init_args.channels", str(list(channels)),
                     "--model.init_args.backbone.init_args.strides", str(list(strides))])
    assert code == 0
    return root / "im2im_runs" / "demo" / "checkpoints" / "last.ckpt"


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``im2im argv`` in-process; assert exit code 2 and a single ``im2im: error:`` line, no traceback; return it."""
    from im2im_cli.main import main

    assert main(argv) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("im2im: error:") and "\n" not in message and "Traceback" not in message
    return message
