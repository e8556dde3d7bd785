"""Whole-image prediction: windows stitched without cutting objects, test-time augmentation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from im2im_core.inference import Inference
from im2im_core.inference.tta import apply_symmetry, symmetries, undo_symmetry, with_tta
from im2im_core.metrics import average_precision
from im2im_embedseg.cluster import cluster
from im2im_embedseg.embedding import ideal_output
from im2im_embedseg.framework import EmbedSeg
from im2im_embedseg.tta import inverse

OFFSET_RANGE, SIGMA_INIT = 64.0, 8.0


class Passthrough(nn.Module):
    """A "network" whose input already holds its raw output: every window sees exactly the
    whole image's values, so any difference after stitching comes from the stitching.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def raw_of(decoded: torch.Tensor) -> torch.Tensor:
    """The raw network output that ``embedding.decode`` turns into ``decoded``."""
    dims = (decoded.shape[0] - 1) // 2
    offsets = torch.atanh(decoded[:dims] / OFFSET_RANGE)
    seed = torch.logit(decoded[2 * dims:].clamp(0.01, 0.99))
    return torch.cat([offsets, decoded[dims:2 * dims] - math.log(SIGMA_INIT), seed])


@pytest.fixture
def long_objects() -> np.ndarray:
    """64x96 labels: a bar across four 32-pixel windows, a C-shaped object, and a small disc."""
    labels = np.zeros((64, 96), np.int64)
    labels[20:28, 6:90] = 1
    yy, xx = np.mgrid[:64, :96]
    radius = np.hypot(yy - 46, xx - 40)
    labels[(radius > 8) & (radius < 14) & (xx < 48)] = 2
    labels[np.hypot(yy - 46, xx - 75) < 7] = 3
    return labels


def test_objects_crossing_window_borders_stay_whole(long_objects: np.ndarray) -> None:
    decoded = ideal_output(long_objects, sigma=2.0)
    model = EmbedSeg(Passthrough(), offset_range=OFFSET_RANGE, sigma_init=SIGMA_INIT, min_size=5, spatial_dims=2)
    image = raw_of(decoded)  # (5, 64, 96)
    labels = model.segment(image, Inference(roi_size=[32, 32], overlap=0.25))
    assert labels.shape == (1, 64, 96) and labels.dtype == np.uint16
    assert average_precision(labels[0], long_objects, 0.95) == 1.0
    # the same image clustered window by window cuts the bar: the windows do cross it
    tiles = [cluster(decoded[:, :, x:x + 32], offset_range=OFFSET_RANGE, min_size=5).numpy() for x in range(0, 96, 32)]
    assert sum(len(np.unique(t[long_objects[:, x:x + 32] == 1])) for t, x in zip(tiles, range(0, 96, 32))) >= 3


def centre_seeking(x: torch.Tensor) -> torch.Tensor:
    """An equivariant stand-in for a trained network: offsets from each pixel to the window's
    intensity-weighted centroid, sigma per axis from the weighted spread, seed = intensity.
    """
    dims = x.ndim - 2
    spatial = x.shape[2:]
    grid = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in spatial], indexing="ij"))
    weight = x[:, 0] / x[:, 0].sum(dim=tuple(range(1, dims + 1)), keepdim=True)
    centre = (weight[:, None] * grid[None]).sum(dim=tuple(range(2, dims + 2)), keepdim=True)  # (B, D, 1..)
    spread = (weight[:, None] * (grid[None] - centre) ** 2).sum(dim=tuple(range(2, dims + 2)), keepdim=True)
    log_sigma = 0.5 * torch.log(spread).expand(-1, -1, *spatial)
    return torch.cat([centre - grid[None], log_sigma, x], dim=1)


@pytest.mark.parametrize("shape", [(1, 1, 12, 12), (1, 1, 6, 10, 10)])
@pytest.mark.parametrize("mode", ["flips", "rot90", "flips_rot90"])
def test_tta_inverse_maps_vectors_back(shape: tuple[int, ...], mode: str) -> None:
    """For an equivariant predictor every symmetry, undone, gives the plain prediction back:
    offsets are negated by flips and turned with the image, Y and X sigmas swapped.
    """
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)) ** 4
    plain = centre_seeking(x)
    dims = len(shape) - 2
    for symmetry in symmetries(dims, mode):
        transformed = centre_seeking(apply_symmetry(x, symmetry))
        torch.testing.assert_close(inverse(transformed, symmetry), plain, rtol=1e-4, atol=1e-4, msg=str(symmetry))
    torch.testing.assert_close(with_tta(centre_seeking, dims, mode, inverse=inverse)(x), plain, rtol=1e-4, atol=1e-4)
    if mode == "flips":  # the core's scalar inverse would be wrong for the offsets
        symmetry = ((-1,), 0)
        assert not torch.allclose(undo_symmetry(centre_seeking(apply_symmetry(x, symmetry)), symmetry), plain, atol=1e-2)


def test_segment_with_tta_maps_outputs_back_with_the_vector_inverse(long_objects: np.ndarray,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The core's TTA undoes each symmetry with EmbedSeg's ``tta_inverse`` (offsets as vectors)."""
    model = EmbedSeg(Passthrough(), offset_range=OFFSET_RANGE, sigma_init=SIGMA_INIT, min_size=5, spatial_dims=2)
    seen = []
    monkeypatch.setattr(model, "tta_inverse", lambda output, symmetry: seen.append(symmetry) or inverse(output, symmetry))
    image = raw_of(ideal_output(long_objects))
    model.segment(image, Inference(roi_size=[32, 32]))
    assert not seen
    model.segment(image, Inference(roi_size=[32, 32], tta="flips"))  # (the pass-through "network" is not equivariant:
    assert set(seen) == set(symmetries(2, "flips")[1:])              # test_tta_inverse_maps_vectors_back checks values)


@pytest.fixture
def two_bars() -> np.ndarray:
    """256x96 labels: two bars 100 pixels long, one above the other."""
    labels = np.zeros((256, 96), np.int64)
    labels[10:110, 40:50] = 1
    labels[130:230, 40:50] = 2
    return labels


def test_core_predict_with_the_clustering_postprocess(two_bars: np.ndarray) -> None:
    """The core's engine streams the output in bands; the clustering step gets the whole image."""
    from im2im_core.inference import predict

    model = EmbedSeg(Passthrough(), offset_range=OFFSET_RANGE, sigma_init=SIGMA_INIT, min_size=5, spatial_dims=2)
    labels = predict(model, raw_of(ideal_output(two_bars)), dims="CYX", inference=Inference(roi_size=[32, 32]),
                     postprocess=model.whole_image_postprocess())
    assert labels.shape == (1, 256, 96) and labels.dtype == np.uint16
    assert average_precision(labels[0], two_bars, 0.95) == 1.0


def test_core_predict_auto_postprocess_clusters_the_whole_image(two_bars: np.ndarray) -> None:
    from im2im_core.inference import predict

    model = EmbedSeg(Passthrough(), offset_range=OFFSET_RANGE, sigma_init=SIGMA_INIT, min_size=5, spatial_dims=2)
    labels = predict(model, raw_of(ideal_output(two_bars)), dims="CYX", inference=Inference(roi_size=[32, 32]))
    assert average_precision(np.asarray(labels)[0], two_bars, 0.95) == 1.0
