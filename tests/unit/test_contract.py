"""What the core takes for a framework, and Lightning's checkpoint names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from im2im_cli.cli import is_lightning_name
from im2im_core.errors import ConfigError
from im2im_core.frameworks import FCN
from im2im_core.inference import predict
from im2im_core.protocols import is_framework


class HalfAFramework(nn.Module):
    """Has some members of the contract, not all."""

    spatial_dims = 2

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def window_network(self) -> nn.Module:
        return self.conv

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        return (output > 0).to(torch.uint8)


def test_a_framework_is_recognised_by_its_members_without_evaluating_them() -> None:
    fcn = FCN(backbone=nn.Conv2d(1, 1, 3, padding=1))  # spatial_dims unknown until a data module is attached
    assert is_framework(fcn) and not is_framework(nn.Conv2d(1, 1, 3))


def test_part_of_the_contract_is_an_error_that_names_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="not window_defaults, whole_image_postprocess, tta_inverse, output_in_input_units"):
        predict(HalfAFramework(), np.zeros((16, 16), np.float32))


def test_a_network_with_a_spatial_dims_attribute_is_still_a_bare_network() -> None:
    network = nn.Conv2d(1, 1, 3, padding=1)
    network.spatial_dims = 2  # as many networks have (fnet)
    assert predict(network, np.ones((16, 16), np.float32)).dtype == np.float32


@pytest.mark.parametrize(("name", "expected"), [("last", True), ("best", True), ("hpc", True),
                                                ("runs/last.ckpt", False), ("model.ckpt", False)])
def test_lightning_checkpoint_names_are_not_files(name: str, expected: bool) -> None:
    assert is_lightning_name(name) is expected


class Identity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Restoring(FCN):
    """A regression framework whose outputs are in the input's units (as denoisers are)."""

    def output_in_input_units(self) -> bool:
        return True


def test_outputs_in_input_units_are_mapped_back_through_the_normalization() -> None:
    image = np.linspace(100, 200, 32 * 32, dtype=np.float32).reshape(32, 32)
    plain = predict(FCN(Identity(), task="regression", spatial_dims=2), image, normalize=(0, 100))
    restored = predict(Restoring(Identity(), task="regression", spatial_dims=2), image, normalize=(0, 100))
    np.testing.assert_allclose(plain, (image - 100) / 100, atol=1e-6)     # the normalized scale, as FCN trains
    np.testing.assert_allclose(restored, image, rtol=1e-6)                # the input's own units
    unnormalized = predict(Restoring(Identity(), task="regression", spatial_dims=2), image)
    np.testing.assert_allclose(unnormalized, image, rtol=1e-6)            # nothing to undo


def test_prediction_says_when_it_cannot_undo_the_normalization() -> None:
    from im2im_core import keys
    from im2im_core.inference import predict_batch

    batch = {keys.IMAGE: [np.ones((1, 16, 16), np.float32)], keys.IMAGE_DIMS: ["CYX"], keys.IMAGE_NORMALIZE: [None]}
    with pytest.warns(UserWarning, match="outputs are in the units the input had after data.normalize"):
        predict_batch(Restoring(Identity(), task="regression", spatial_dims=2), batch)
