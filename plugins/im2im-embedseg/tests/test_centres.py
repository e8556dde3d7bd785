"""Instance centres: centroid, exact medoid, approximate medoid, anisotropic coordinates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from im2im_embedseg.centres import instance_centres
from im2im_embedseg.embedding import coordinate_grid


def brute_medoid(points: np.ndarray) -> np.ndarray:
    distances = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1)).sum(1)
    return points[np.argmin(distances)]


def random_objects(seed: int = 0, scale: tuple[float, ...] = (1.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    generator = np.random.default_rng(seed)
    sizes = [1, 2, 37, 180]
    points = [generator.integers(0, 40, size=(n, len(scale))) * np.array(scale) for n in sizes]
    coords = torch.tensor(np.concatenate(points), dtype=torch.float32)
    ids = torch.tensor(np.repeat(np.arange(len(sizes)), sizes))
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed))  # pixels interleaved
    return coords[order], ids[order], points


def test_centroid_and_exact_medoid_match_brute_force() -> None:
    coords, ids, points = random_objects(scale=(2.5, 1.0))
    centroids = instance_centres(coords, ids, 4, "centroid").numpy()
    medoids = instance_centres(coords, ids, 4, "medoid").numpy()
    for k, p in enumerate(points):
        np.testing.assert_allclose(centroids[k], p.mean(0), rtol=1e-5)
        expected = brute_medoid(p)
        distances = np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1)).sum(1)
        # ties: any point with the minimal summed distance is a medoid
        assert np.isclose(np.sqrt(((p - medoids[k]) ** 2).sum(-1)).sum(), distances.min(), rtol=1e-5), (k, medoids[k], expected)


@pytest.mark.parametrize("scale", [(1.0, 1.0), (2.5, 1.0), (3.0, 0.5, 0.5)])
def test_medoids_of_all_objects_at_once_on_a_grid_match_brute_force(scale: tuple[float, ...]) -> None:
    """The FFT form (coordinates on a pixel grid, duplicates counted twice) finds a least-sum point of each object."""
    coords, ids, points = random_objects(seed=1, scale=scale)
    medoids = instance_centres(coords, ids, 4, "medoid", spacing=scale).numpy()
    for k, p in enumerate(points):
        distances = np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1)).sum(1)
        assert any(np.allclose(medoids[k], q) for q in p)  # a point of the object
        assert np.isclose(np.sqrt(((p - medoids[k]) ** 2).sum(-1)).sum(), distances.min(), rtol=1e-9), (k, medoids[k])


def test_approximate_medoid_is_exact_for_small_objects_and_close_for_large_ones() -> None:
    coords, ids, points = random_objects(seed=3)
    exact = instance_centres(coords, ids, 4, "medoid")
    close = instance_centres(coords, ids, 4, "approximate_medoid", samples=64)
    np.testing.assert_allclose(close[:3].numpy(), exact[:3].numpy())  # objects of at most 64 points
    summed = lambda c: np.sqrt(((points[3] - c.numpy()) ** 2).sum(-1)).sum()  # noqa: E731
    assert summed(close[3]) <= 1.05 * summed(exact[3])


@pytest.mark.parametrize("mode", ["medoid", "approximate_medoid"])
def test_medoid_of_a_non_convex_object_lies_inside_it(mode: str) -> None:
    """A C-shaped object: its centroid is in the hole, its medoid on the object."""
    yy, xx = np.mgrid[:40, :40]
    radius = np.hypot(yy - 20, xx - 20)
    c_shape = (radius > 10) & (radius < 16) & (xx < 30)
    grid = coordinate_grid((40, 40), (1.0, 1.0)).reshape(2, -1)
    flat = torch.as_tensor(c_shape.reshape(-1)).nonzero().squeeze(1)
    ids = torch.zeros(len(flat), dtype=torch.long)
    centroid = instance_centres(grid[:, flat].T, ids, 1, "centroid")[0].round().long()
    medoid = instance_centres(grid[:, flat].T, ids, 1, mode, samples=128)[0].long()
    assert not c_shape[tuple(centroid)]
    assert c_shape[tuple(medoid)]


def test_anisotropic_voxels_move_the_medoid() -> None:
    """An L-shaped object in ZYX: the medoid in physical coordinates (Z voxels 3x larger) is
    another voxel than in index coordinates, and each is the brute-force one of its metric.
    """
    mask = np.zeros((10, 1, 13), bool)
    mask[:, 0, 0] = True
    mask[0, 0, :] = True
    flat = torch.as_tensor(mask.reshape(-1)).nonzero().squeeze(1)
    ids = torch.zeros(len(flat), dtype=torch.long)
    found = []
    for voxel_size in [(1.0, 1.0, 1.0), (3.0, 1.0, 1.0)]:
        points = coordinate_grid(mask.shape, voxel_size).reshape(3, -1)[:, flat].T
        medoid = instance_centres(points, ids, 1, "medoid")[0].numpy()
        np.testing.assert_allclose(medoid, brute_medoid(points.numpy()))
        found.append(tuple((medoid / np.array(voxel_size)).round().astype(int)))
    assert found[0] != found[1], found
