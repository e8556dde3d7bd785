"""The EmbedSeg loss: Lovasz hinge on each instance's soft mask, seed regression, sigma smoothness.

For each instance ``k`` of a patch (centre ``C_k`` from the label patch, see ``centres.py``):

- its bandwidth is the mean of the predicted ``log(sigma)`` over its pixels, ``s_k`` (one per axis);
- every pixel ``i`` of the patch gets a soft membership
  ``phi_k(i) = exp(-sum_d (e_d(i) - C_kd)**2 / (2 exp(2 s_kd)))``, with ``e(i)`` the pixel's
  embedding (position + offset); the Lovasz hinge on logits ``2 phi_k - 1`` against the
  instance's mask optimizes its IoU directly (``lovasz.py``);
- variance: the mean squared deviation of each pixel's ``log(sigma)`` from ``s_k`` (held
  fixed), so that one sigma read at any pixel (the seed, at prediction) is that of the object;
- seed: on the object's pixels the seed map regresses ``phi_k`` of the pixel (held fixed),
  weighted by ``foreground_weight``; on the background it regresses 0.

Total: ``instance_weight * mean Lovasz + variance_weight * mean variance + seed_weight * seed``;
Lovasz and variance are averaged over all instances of the batch, the seed term over pixels.
Instances are processed together per patch, images of a batch in turn. A membership below
1e-7 (``exp(-x)``, ``x > 16.1``) counts as exactly 0. Such a pair, a pixel far from the
instance's centre, changes that instance's Lovasz term by less than ``2e-7`` (its error times
an increment, and the increments of a row sum to at most 1), below the float32 resolution of a
loss near 1, and its gradient by as little. Most pixels of a patch are that far from most of
its instances, so the ``(K, N)`` matrix of every instance against every pixel is computed once
without gradients, to find the pairs that count; the loss and its gradient are computed on
those pairs and on each instance's own pixels alone (the Lovasz hinge takes them as entries,
``lovasz.py``): a fraction of the work, and no exponentials that underflow (ten times slower
on the CPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from im2im_embedseg.centres import CENTRE_MODES, CentreMode, instance_centres
from im2im_embedseg.embedding import coordinate_grid, relative_voxel_size, split
from im2im_embedseg.lovasz import lovasz_hinge_entries

#: Memberships ``exp(-x)`` of larger ``x`` (below 1e-7) count as 0: see the module docstring.
NEGLIGIBLE_EXPONENT = 16.1


class EmbedSegLoss(nn.Module):
    """Loss of decoded EmbedSeg outputs against instance label patches.

    Parameters
    ----------
    voxel_size : list of float, optional
        Physical voxel size per axis ``(Z,) Y, X`` (only ratios matter); ``None``: isotropic.
    centre : {"centroid", "approximate_medoid", "medoid"}
        How instance centres are found (``centres.py``).
    medoid_samples : int
        Subsample size of ``approximate_medoid``.
    foreground_weight : float
        Weight of object pixels in the seed regression (background pixels weigh 1).
    instance_weight, variance_weight, seed_weight : float
        Weights of the three terms.
    """

    def __init__(self, voxel_size: Sequence[float] | None = None, centre: CentreMode = "approximate_medoid",
                 medoid_samples: int = 256, foreground_weight: float = 1.0, instance_weight: float = 1.0,
                 variance_weight: float = 10.0, seed_weight: float = 1.0) -> None:
        super().__init__()
        if centre not in CENTRE_MODES:
            raise ValueError(f"centre {centre!r} is not one of {', '.join(CENTRE_MODES)}")
        self.voxel_size = None if voxel_size is None else list(voxel_size)
        self.centre, self.medoid_samples = centre, medoid_samples
        self.foreground_weight = foreground_weight
        self.weights = (instance_weight, variance_weight, seed_weight)

    def forward(self, decoded: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss terms of ``decoded`` ``(B, 2D+1, *spatial)`` against ``labels`` ``(B, *spatial)``.

        Returns a dict with ``loss`` (the weighted total) and the terms ``instance``,
        ``variance`` and ``seed``.
        """
        offsets, log_sigma, seed = split(decoded)
        dims, spatial = offsets.shape[1], offsets.shape[2:]
        if labels.shape != seed.shape:
            raise ValueError(f"labels of shape {tuple(labels.shape)} do not match the output's {tuple(seed.shape)} (B, *spatial)")
        spacing = relative_voxel_size(self.voxel_size, dims)
        grid = coordinate_grid(spatial, spacing, decoded.device).reshape(dims, -1)
        lovasz_sum = variance_sum = decoded.new_zeros(())
        seed_terms, instances = [], 0
        for b in range(decoded.shape[0]):
            lab = labels[b].reshape(-1)
            target = torch.zeros_like(seed[b].reshape(-1))
            foreground = (lab > 0).nonzero().squeeze(1)
            if len(foreground):
                terms = self._instances(grid, spacing, offsets[b].reshape(dims, -1), log_sigma[b].reshape(dims, -1), lab,
                                        foreground)
                lovasz_sum = lovasz_sum + terms[0].sum()
                variance_sum = variance_sum + terms[1].sum()
                target[foreground] = terms[2]
                instances += len(terms[0])
            weight = torch.where(lab > 0, self.foreground_weight, 1.0)
            seed_terms.append((weight * (seed[b].reshape(-1) - target) ** 2).mean())
        count = max(instances, 1)
        parts = {"instance": lovasz_sum / count, "variance": variance_sum / count, "seed": torch.stack(seed_terms).mean()}
        parts["loss"] = sum(w * parts[k] for w, k in zip(self.weights, ("instance", "variance", "seed")))
        return parts

    def _instances(self, grid: torch.Tensor, spacing: Sequence[float], offsets: torch.Tensor, log_sigma: torch.Tensor,
                   lab: torch.Tensor, foreground: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-instance Lovasz hinge ``(K,)``, sigma variance ``(K,)``, and the seed targets of the foreground."""
        _, ids = torch.unique(lab[foreground], return_inverse=True)
        count = int(ids.max()) + 1
        sizes = torch.bincount(ids, minlength=count).to(offsets.dtype)
        with torch.no_grad():
            centres = instance_centres(grid[:, foreground].T, ids, count, self.centre, self.medoid_samples, spacing)
        sigma_fg = log_sigma[:, foreground].T  # (M, D)
        mean_log_sigma = sigma_fg.new_zeros(count, sigma_fg.shape[1]).index_add(0, ids, sigma_fg) / sizes[:, None]
        deviation = ((sigma_fg - mean_log_sigma.detach()[ids]) ** 2).mean(dim=1)
        variance = deviation.new_zeros(count).index_add(0, ids, deviation) / sizes
        embedding = grid + offsets  # (D, N)
        precision = 0.5 * torch.exp(-2.0 * mean_log_sigma)  # 1 / (2 sigma^2), (K, D)
        with torch.no_grad():  # the (instance, pixel) pairs with a membership that counts, and each instance's pixels
            near = _exponent(embedding[:, None, :], centres.T[:, :, None], precision.T[:, :, None]) <= NEGLIGIBLE_EXPONENT
            near[ids, foreground] = False  # listed below with the instance's own pixels, near or not
            near_rows, near_pixels = near.nonzero(as_tuple=True)
        rows, pixels = torch.cat([near_rows, ids]), torch.cat([near_pixels, foreground])
        inside = torch.cat([torch.zeros_like(near_rows, dtype=torch.bool), torch.ones_like(ids, dtype=torch.bool)])
        exponent = _exponent(embedding.index_select(1, pixels), centres.index_select(0, rows).T,
                             precision.index_select(0, rows).T)  # (M,): pair by pair, the same float operations
        phi = torch.exp(-exponent.clamp(max=NEGLIGIBLE_EXPONENT)).masked_fill(exponent > NEGLIGIBLE_EXPONENT, 0.0)
        errors = torch.where(inside, 2.0 - 2.0 * phi, 2.0 * phi)  # hinge errors of the logits 2 phi - 1
        lovasz = lovasz_hinge_entries(rows, errors, inside, sizes, count)
        return lovasz, variance, phi[len(near_rows):].detach()


def _exponent(embedding: torch.Tensor, centres: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """``sum_d precision[d] * (embedding[d] - centres[d])**2`` over the first axis, the rest broadcast.

    The same float operations whether given as every instance against every pixel (``(D, 1, N)``
    with ``(D, K, 1)``) or as listed pairs (``(D, M)`` with ``(D, M)``), so both agree bit for bit.
    """
    total = (embedding[0] - centres[0]) ** 2 * precision[0]
    for d in range(1, embedding.shape[0]):
        total = total + (embedding[d] - centres[d]) ** 2 * precision[d]
    return total
