"""Lovasz hinge: a convex surrogate of the Jaccard (IoU) loss of a binary mask, many masks at once.

Berman, Rannen Triki and Blaschko, "The Lovasz-Softmax loss", CVPR 2018: the Jaccard loss of
the set of mispredicted pixels is a submodular set function; its Lovasz extension, evaluated
at the vector of hinge errors ``max(0, 1 - logit * sign)``, is a piecewise-linear convex loss
whose minimum is the best IoU. Sorting the errors in decreasing order, the extension is the
dot product of the sorted errors with the increments of the Jaccard loss of the growing sets
of the largest errors.

Here each row of a ``(K, N)`` matrix is one mask (one instance of EmbedSeg); all rows are
sorted and reduced together, so K instances cost one sort.
"""

from __future__ import annotations

import torch


def jaccard_increments(truth_sorted: torch.Tensor) -> torch.Tensor:
    """Increments of the Jaccard loss along rows of ground truth sorted by decreasing error.

    Parameters
    ----------
    truth_sorted : torch.Tensor
        ``(K, N)`` float, 1 where the pixel belongs to the mask, in the order of decreasing
        hinge error.

    Returns
    -------
    torch.Tensor
        ``(K, N)``: entry ``i`` is ``J(first i+1 pixels wrong) - J(first i pixels wrong)``,
        where ``J(M) = 1 - |truth minus M| / |truth union M|``.
    """
    total = truth_sorted.sum(dim=1, keepdim=True)
    intersection = total - truth_sorted.cumsum(dim=1)
    union = total + (1.0 - truth_sorted).cumsum(dim=1)  # >= 1 everywhere: no division by zero
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)


def lovasz_hinge(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Lovasz hinge loss of each row: ``logits`` ``(K, N)`` real, ``truth`` ``(K, N)`` bool.

    A logit above 0 predicts "in the mask". Returns ``(K,)`` losses (0 for a perfect margin of
    1 on every pixel). Rows may be of any content, including masks without pixels.
    """
    truth_f = truth.to(logits.dtype)
    errors = 1.0 - logits * (2.0 * truth_f - 1.0)
    errors_sorted, order = torch.sort(errors, dim=1, descending=True)
    increments = jaccard_increments(torch.gather(truth_f, 1, order))
    return (torch.relu(errors_sorted) * increments).sum(dim=1)
