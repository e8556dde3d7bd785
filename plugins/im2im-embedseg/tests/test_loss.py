"""The Lovasz hinge and the EmbedSeg loss on small hand-made label images."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from im2im_core.metrics import average_precision
from im2im_embedseg.cluster import cluster
from im2im_embedseg.embedding import decode, ideal_output
from im2im_embedseg.loss import EmbedSegLoss
from im2im_embedseg.lovasz import lovasz_hinge


def jaccard_loss(wrong: set[int], truth: np.ndarray) -> float:
    """1 - IoU of the mask predicted when exactly the pixels in ``wrong`` are mispredicted."""
    predicted = {i for i in range(len(truth)) if bool(truth[i]) != (i in wrong)}
    positive = set(np.flatnonzero(truth).tolist())
    union = predicted | positive
    return 1.0 - len(predicted & positive) / len(union) if union else 0.0


def lovasz_by_definition(logits: np.ndarray, truth: np.ndarray) -> float:
    """The Lovasz extension of the Jaccard loss at the hinge errors, from its definition."""
    errors = 1.0 - logits * (2.0 * truth - 1.0)
    order = np.argsort(-errors, kind="stable")
    total, previous = 0.0, 0.0
    for i in range(len(order)):
        current = jaccard_loss(set(order[: i + 1].tolist()), truth)
        total += max(errors[order[i]], 0.0) * (current - previous)
        previous = current
    return total


def test_lovasz_hinge_matches_its_definition() -> None:
    generator = np.random.default_rng(0)
    logits = generator.normal(size=(5, 12))
    truth = generator.random((5, 12)) < 0.4
    truth[3] = False  # a mask without pixels
    ours = lovasz_hinge(torch.tensor(logits), torch.tensor(truth)).numpy()
    expected = [lovasz_by_definition(l, t.astype(float)) for l, t in zip(logits, truth)]
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)


def lovasz_by_full_sort(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Every entry of every row sorted (the textbook form), differentiable: the reference for the sparse sort."""
    truth_f = truth.to(logits.dtype)
    errors = 1.0 - logits * (2.0 * truth_f - 1.0)
    errors_sorted, order = torch.sort(errors, dim=1, descending=True)
    truth_sorted = torch.gather(truth_f, 1, order)
    total = truth_sorted.sum(dim=1, keepdim=True)
    jaccard = 1.0 - (total - truth_sorted.cumsum(dim=1)) / (total + (1.0 - truth_sorted).cumsum(dim=1))
    increments = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)
    return (torch.relu(errors_sorted) * increments).sum(dim=1)


def test_lovasz_hinge_sorting_only_positive_errors_keeps_the_loss_and_its_gradient() -> None:
    """Rows where most entries have no error (EmbedSeg's far pixels, membership 0): same loss and gradient."""
    generator = torch.Generator().manual_seed(0)
    phi = torch.rand(6, 400, generator=generator, dtype=torch.float64)  # no ties among positive errors
    truth = torch.rand(6, 400, generator=generator) < 0.2
    truth[4] = False
    phi[:, 150:] = torch.where(truth[:, 150:], phi[:, 150:], 0.0)  # far background: membership exactly 0, error 0
    phi[:, :30] = torch.where(truth[:, :30], 1.0, phi[:, :30])  # mask pixels at the centre: membership 1, error 0
    for reference in (lovasz_by_full_sort, lovasz_hinge):
        logits = (2.0 * phi - 1.0).requires_grad_()
        loss = reference(logits, truth)
        loss.sum().backward()
        if reference is lovasz_by_full_sort:
            expected_loss, expected_grad = loss.detach(), logits.grad
    torch.testing.assert_close(loss.detach(), expected_loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(logits.grad, expected_grad, rtol=1e-12, atol=1e-12)


def test_lovasz_hinge_in_float32_sorts_like_the_full_sort() -> None:
    """The float32 path packs row and error bits into one integer sort key."""
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(7, 300, generator=generator)
    truth = torch.rand(7, 300, generator=generator) < 0.3
    torch.testing.assert_close(lovasz_hinge(logits, truth), lovasz_by_full_sort(logits, truth), rtol=1e-5, atol=1e-6)
    assert torch.isnan(lovasz_hinge(logits.index_fill(1, torch.tensor([5]), float("nan")), truth)).all()


def test_lovasz_hinge_is_zero_at_a_margin_of_one_and_positive_otherwise() -> None:
    truth = torch.tensor([[True, True, False, False]])
    assert lovasz_hinge(torch.tensor([[1.0, 2.0, -1.0, -3.0]]), truth).item() == 0.0
    assert lovasz_hinge(torch.tensor([[1.0, 2.0, 0.5, -3.0]]), truth).item() > 0.0


@pytest.mark.parametrize("voxel_size", [None, [3.0, 1.0, 1.0]])
def test_ideal_output_has_almost_no_loss(voxel_size: list[float] | None) -> None:
    """Offsets to the centres and a tight sigma: loss ~0; a blank output scores far worse."""
    labels = np.zeros((8, 24, 24), np.int64)
    labels[2:6, 3:10, 3:10] = 1
    labels[2:6, 3:10, 10:18] = 2  # touching 1
    labels[1:7, 14:22, 4:12] = 3
    ideal = ideal_output(labels, sigma=0.5, voxel_size=voxel_size)[None]
    criterion = EmbedSegLoss(voxel_size=voxel_size, centre="medoid")
    parts = criterion(ideal, torch.as_tensor(labels)[None])
    assert parts["loss"].item() < 1e-3
    blank = torch.zeros_like(ideal)
    blank[:, 3:6] = math.log(8.0)
    assert criterion(blank, torch.as_tensor(labels)[None])["loss"].item() > 0.5


def test_background_patch_trains_the_seed_only() -> None:
    raw = torch.zeros(2, 5, 16, 16, requires_grad=True)
    parts = EmbedSegLoss()(decode(raw, 32.0, 8.0), torch.zeros(2, 16, 16, dtype=torch.long))
    assert parts["instance"].item() == parts["variance"].item() == 0.0
    assert parts["seed"].item() == pytest.approx(0.25)  # sigmoid(0)**2
    parts["loss"].backward()
    assert raw.grad[:, 4].abs().sum() > 0 and raw.grad[:, :4].abs().sum() == 0


def test_touching_objects_split_and_a_two_part_object_stays_one(hand_labels: np.ndarray) -> None:
    """Train the output map itself (a free parameter per pixel) on the loss, then cluster.

    The two touching discs come out as two objects, the two squares of object 3 (21 pixels
    apart) as one: their pixels learned to point at one medoid.
    """
    torch.manual_seed(0)
    raw = torch.zeros(1, 5, *hand_labels.shape, requires_grad=True)
    optimizer = torch.optim.Adam([raw], lr=0.05)
    criterion = EmbedSegLoss(centre="medoid")
    target = torch.as_tensor(hand_labels)[None]
    for _ in range(150):
        loss = criterion(decode(raw, 32.0, 8.0), target)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        labels = cluster(decode(raw, 32.0, 8.0)[0], offset_range=32.0, min_size=5).numpy()
    assert labels.max() == 4
    assert average_precision(labels, hand_labels, 0.9) == 1.0
    assert len(np.unique(labels[hand_labels == 3])) == 1  # both squares, one label
    assert labels[20, 16] != labels[20, 34]  # the touching discs apart


def test_instances_are_independent_of_their_ids_and_of_other_images(hand_labels: np.ndarray) -> None:
    """Relabelling the objects or batching two images changes nothing (per-image instance sets)."""
    raw = torch.randn(1, 5, *hand_labels.shape, generator=torch.Generator().manual_seed(1))
    decoded = decode(raw, 32.0, 8.0)
    criterion = EmbedSegLoss(centre="approximate_medoid")
    one = criterion(decoded, torch.as_tensor(hand_labels)[None])
    permuted = np.select([hand_labels == k for k in (1, 2, 3, 4)], [40, 7, 1000, 3], 0)
    two = criterion(decoded.repeat(2, 1, 1, 1), torch.as_tensor(np.stack([hand_labels, permuted])))
    for name, a, b in itertools.product(("instance", "variance", "seed"), [one], [two]):
        assert a[name].item() == pytest.approx(b[name].item(), rel=1e-5)
