"""The napari manifest, its sample data, and how layers' axes are read for a model."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from npe2 import PluginManifest

from im2im_core.errors import DataError
from im2im_napari.layer_axes import layer_axes, layer_result
from im2im_napari.sample_data import demo_holdout, demo_training


def test_manifest_is_valid_and_every_command_imports() -> None:
    manifest = PluginManifest.from_distribution("im2im-napari")
    manifest.validate_imports()
    assert {w.display_name for w in manifest.contributions.widgets} == {"Train", "Predict", "Evaluate"}
    for command in manifest.contributions.commands:
        module, name = command.python_name.split(":")
        assert callable(getattr(importlib.import_module(module), name))


def test_sample_data_are_the_demo_crops_with_their_labels() -> None:
    (images, image_meta, image_kind), (labels, _, label_kind) = demo_training()
    assert (image_kind, label_kind) == ("image", "labels")
    assert images.shape == labels.shape == (10, 256, 256) and labels.max() > 1  # instance labels
    assert demo_holdout()[0][0].shape == (4, 256, 256)
    assert "training" in image_meta["name"]


@pytest.mark.parametrize(("shape", "rgb", "spatial", "dims", "by_slice"), [
    ((256, 256), False, 2, "YX", False),
    ((4, 256, 256), False, 2, "TYX", False),
    ((3, 8, 64, 64), False, 2, "TZYX", True),
    ((256, 256, 3), True, 2, "CYX", False),
    ((8, 64, 64), False, 3, "ZYX", False),
    ((2, 8, 64, 64), False, 3, "TZYX", False),
])
def test_layer_axes(shape: tuple[int, ...], rgb: bool, spatial: int, dims: str, by_slice: bool) -> None:
    axes = layer_axes("x", shape, rgb, spatial)
    assert (axes.dims, axes.slice_by_slice, axes.channels_last) == (dims, by_slice, rgb)


@pytest.mark.parametrize(("shape", "spatial", "message"), [
    ((256, 256), 3, "has 2 spatial axes; the model is 3D"),
    ((1, 2, 3, 64, 64), 2, "has 5 axes besides colour; a 2D model takes 2 or 3 or 4"),
])
def test_layer_axes_errors(shape: tuple[int, ...], spatial: int, message: str) -> None:
    with pytest.raises(DataError, match=message):
        layer_axes("x", shape, False, spatial)


def test_layer_result_drops_a_single_channel_and_keeps_the_scale() -> None:
    data, scale = layer_result(np.zeros((1, 4, 4)), "CYX", (0.5, 0.25))
    assert data.shape == (4, 4) and scale == (0.5, 0.25)
    data, scale = layer_result(np.zeros((2, 3, 4, 4)), "TCYX", (1.0, 0.5, 0.25))
    assert data.shape == (2, 3, 4, 4) and scale == (1.0, 1.0, 0.5, 0.25)


def test_write_layers_replaces_only_its_own_folder(tmp_path) -> None:
    from im2im_napari.training import write_layers

    (images, _, _), (labels, _, _) = demo_training()
    data = write_layers(tmp_path, "demo", ("nuclei", images[:3], False), ("labels", labels[:3]))
    assert sorted(p.name for p in (data / "GT").iterdir()) == ["image_0000.tif", "image_0001.tif", "image_0002.tif"]
    write_layers(tmp_path, "demo", ("nuclei", images[:2], False), ("labels", labels[:2]))  # its own files: replaced
    assert len(list((data / "IM").iterdir())) == 2
    (data / "IM" / "mine.tif").write_bytes(b"user data")
    with pytest.raises(DataError, match="holds files the train widget did not write"):
        write_layers(tmp_path, "demo", ("nuclei", images[:2], False), ("labels", labels[:2]))
    assert (data / "IM" / "mine.tif").read_bytes() == b"user data"
