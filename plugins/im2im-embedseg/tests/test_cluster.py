"""Clustering of decoded outputs into instance labels: hand-made labels, thresholds, 3D, boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from im2im_core.metrics import average_precision
from im2im_embedseg.cluster import cluster
from im2im_embedseg.embedding import ideal_output


def test_ideal_output_gives_the_labels_back(hand_labels: np.ndarray) -> None:
    labels = cluster(ideal_output(hand_labels), min_size=5).numpy()
    assert labels.dtype == np.int32 and labels.shape == hand_labels.shape
    assert labels.max() == 4
    assert average_precision(labels, hand_labels, 0.99) == 1.0  # the same objects, pixel for pixel


def test_touching_objects_are_split_where_a_mask_would_merge_them(hand_labels: np.ndarray) -> None:
    from skimage.measure import label

    assert label(hand_labels > 0)[20, 16] == label(hand_labels > 0)[20, 34]  # one connected component
    labels = cluster(ideal_output(hand_labels), min_size=5).numpy()
    assert labels[20, 16] != labels[20, 34]
    assert set(np.unique(labels[hand_labels == 1])) == {labels[20, 16]}


def test_centroid_of_a_two_part_object_still_gathers_both_parts(hand_labels: np.ndarray) -> None:
    """The centroid of object 3 lies between its squares, on background: the seeds are still on
    the object (the seed map is), and both parts point at the same centre.
    """
    labels = cluster(ideal_output(hand_labels, centre="centroid"), min_size=5).numpy()
    assert average_precision(labels, hand_labels, 0.99) == 1.0


def test_thresholds_and_min_size(hand_labels: np.ndarray) -> None:
    decoded = ideal_output(hand_labels)
    assert cluster(decoded, min_size=80).max() == 3  # object 4 has 69 pixels
    assert cluster(decoded, seed_threshold=1.0).max() == 0  # no seed above 1
    decoded[-1][torch.as_tensor(hand_labels == 2)] = 0.6  # object 2: foreground but no seed
    labels = cluster(decoded, min_size=5).numpy()
    assert labels.max() == 3 and (labels[hand_labels == 2] == 0).all()
    labels = cluster(decoded, foreground_threshold=0.7, min_size=5).numpy()
    assert (labels[hand_labels == 2] == 0).all()


def test_a_duplicate_seed_does_not_make_a_second_object() -> None:
    """Pixels whose embeddings stray a little (noise) still join their object; leftovers that
    are mostly inside an object already found are not a new object.
    """
    labels = np.zeros((40, 40), np.int64)
    labels[5:20, 5:20], labels[22:36, 8:30] = 1, 2
    decoded = ideal_output(labels, sigma=2.0)
    decoded[:2] += 0.7 * torch.randn(decoded[:2].shape, generator=torch.Generator().manual_seed(0))
    found = cluster(decoded, min_size=5).numpy()
    assert found.max() == 2 and average_precision(found, labels, 0.8) == 1.0  # centre noisy too: ~6% strays


@pytest.mark.parametrize("voxel_size", [None, [4.0, 1.0, 1.0]])
def test_3d_anisotropic(voxel_size: list[float] | None) -> None:
    labels = np.zeros((6, 30, 30), np.int64)
    labels[1:5, 2:14, 2:14] = 1
    labels[1:5, 2:14, 14:27] = 2  # touching
    labels[0:6, 17:28, 5:20] = 3
    labels[3:6, 17:28, 20:28] = 3
    found = cluster(ideal_output(labels, voxel_size=voxel_size), voxel_size, min_size=5).numpy()
    assert average_precision(found, labels, 0.99) == 1.0


@pytest.mark.parametrize("shape", [(48, 64), (6, 24, 32)])
def test_the_box_around_each_centre_changes_nothing(shape: tuple[int, ...]) -> None:
    """Noisy outputs: clustering with the box bound equals clustering every pixel for every seed."""
    generator = torch.Generator().manual_seed(0)
    dims = len(shape)
    decoded = torch.cat([8.0 * torch.randn((dims, *shape), generator=generator),
                         math.log(3.0) + 0.3 * torch.randn((dims, *shape), generator=generator),
                         torch.rand((1, *shape), generator=generator)])
    sizes = [2.0] + [1.0] * (dims - 1)
    boxed = cluster(decoded, sizes, 40.0, seed_threshold=0.6, min_size=2)
    assert boxed.max() > 3
    assert torch.equal(boxed, cluster(decoded, sizes, math.inf, seed_threshold=0.6, min_size=2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_gives_the_cpu_labels(hand_labels: np.ndarray) -> None:
    decoded = ideal_output(hand_labels)
    assert torch.equal(cluster(decoded.cuda(), min_size=5).cpu(), cluster(decoded, min_size=5))
