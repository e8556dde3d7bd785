"""Lovasz hinge: a convex surrogate of the Jaccard (IoU) loss of a binary mask, many masks at once.

Berman, Rannen Triki and Blaschko, "The Lovasz-Softmax loss", CVPR 2018: the Jaccard loss of
the set of mispredicted pixels is a submodular set function; its Lovasz extension, evaluated
at the vector of hinge errors ``max(0, 1 - logit * sign)``, is a piecewise-linear convex loss
whose minimum is the best IoU. Sorting the errors in decreasing order, the extension is the
dot product of the sorted errors with the increments of the Jaccard loss of the growing sets
of the largest errors.

Each mask is one row (one instance of EmbedSeg). Only entries with a positive error are
sorted: an entry whose error is 0 or less adds nothing to the loss or its gradient, and it
sorts after every positive one, so it cannot change their increments (those depend only on
the entries sorted before them and on the mask's size, which counts every pixel of the
mask). The result is the full sort's up to float rounding. In EmbedSeg most pixels of a patch
are far from most of its instances, with a membership of 0 and so no error (``loss.py``): the
sort sees a fraction of the ``(K, N)`` matrix.
"""

from __future__ import annotations

import torch


def _segment_cumsum(values: torch.Tensor, starts: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Cumulative sums of ``values`` restarted at each row: ``starts`` are the rows' first positions."""
    total = values.cumsum(0)
    before = torch.cat([total.new_zeros(1), total])[starts]  # the sum up to each row's start
    return total - before[rows]


def _order(rows: torch.Tensor, errors: torch.Tensor) -> torch.Tensor:
    """The permutation that sorts entries by row, then by decreasing (positive) error within a row.

    Positive float32 numbers order as their bit patterns do, so row and error pack into one int64
    key and one integer sort (several times faster than sorting floats on the CPU); other float
    types take two stable sorts.
    """
    if errors.dtype == torch.float32:
        bits = errors.view(torch.int32).to(torch.int64)  # < 2**31, increasing with the error
        return torch.argsort(rows * 2**31 + (2**31 - 1 - bits))
    order = torch.argsort(errors, descending=True, stable=True)
    return order.index_select(0, torch.argsort(rows.index_select(0, order), stable=True))


def lovasz_hinge_entries(rows: torch.Tensor, errors: torch.Tensor, inside: torch.Tensor, mask_sizes: torch.Tensor,
                         count: int) -> torch.Tensor:
    """Lovasz hinge of ``count`` masks given as entries: every entry not listed has no error.

    Parameters
    ----------
    rows : torch.Tensor
        ``(M,)`` int64 mask (row) of each entry, in ``[0, count)``.
    errors : torch.Tensor
        ``(M,)`` hinge errors ``1 - logit * sign`` of the entries (differentiable).
    inside : torch.Tensor
        ``(M,)`` bool, whether the entry's pixel belongs to the mask.
    mask_sizes : torch.Tensor
        ``(count,)`` pixels of each mask, all of them (listed or not).
    count : int
        Number of masks.

    Returns
    -------
    torch.Tensor
        ``(count,)`` losses.
    """
    keep = ((errors > 0) | errors.isnan()).nonzero().squeeze(1)  # a NaN error makes the loss NaN, as it should
    if keep.numel() == 0:
        return errors.sum() * 0.0 + errors.new_zeros(count)  # every margin met: zero loss, zero gradient
    rows, positive = rows.index_select(0, keep), errors.index_select(0, keep)
    order = _order(rows, positive.detach())
    rows, positive = rows.index_select(0, order), positive.index_select(0, order)
    in_mask = inside.index_select(0, keep).index_select(0, order).to(torch.int64)
    sizes = torch.bincount(rows, minlength=count)
    starts = sizes.cumsum(0) - sizes
    totals = mask_sizes.to(torch.int64)[rows]
    intersection = (totals - _segment_cumsum(in_mask, starts, rows)).to(torch.float64)
    union = (totals + _segment_cumsum(1 - in_mask, starts, rows)).to(torch.float64)  # >= 1: no division by zero
    jaccard = 1.0 - intersection / union
    previous = torch.cat([jaccard.new_zeros(1), jaccard[:-1]])
    previous[starts[sizes > 0]] = 0.0  # a row's first entry: its increment is its Jaccard loss
    increments = (jaccard - previous).to(errors.dtype)
    return errors.new_zeros(count).index_add(0, rows, positive * increments)


def lovasz_hinge(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Lovasz hinge loss of each row: ``logits`` ``(K, N)`` real, ``truth`` ``(K, N)`` bool.

    A logit above 0 predicts "in the mask". Returns ``(K,)`` losses (0 for a perfect margin of
    1 on every pixel). Rows may be of any content, including masks without pixels.
    """
    errors = 1.0 - logits * (2.0 * truth.to(logits.dtype) - 1.0)
    rows = torch.arange(logits.shape[0], device=logits.device).repeat_interleave(logits.shape[1])
    return lovasz_hinge_entries(rows, errors.reshape(-1), truth.reshape(-1), truth.sum(dim=1), logits.shape[0])
