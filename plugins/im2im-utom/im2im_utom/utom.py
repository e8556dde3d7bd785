"""UTOM: CycleGAN with a saliency constraint (Li et al., Light: Science & Applications, 2021).

The constraint keeps the content (foreground) of each image where it is in its translation, so
that the generators neither move nor invent structures; it guides the early training and fades.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from im2im_core.errors import ConfigError
from im2im_utom.cyclegan import CycleGAN
from im2im_utom.saliency import Polarity, otsu_threshold, rho, saliency_loss

__all__ = ["UTOM"]


class UTOM(CycleGAN):
    """CycleGAN whose generators also minimize ``rho * saliency_loss`` (see :mod:`im2im_utom.saliency`).

    Per domain a soft threshold ``T(x) = sigmoid(k (x - t))`` (content 1, background 0; for
    ``dark`` content ``sigmoid(k (t - x))``), on the mean over channels, marks content; the
    loss is ``L1(T_A(a), T_B(G_AB(a))) + L1(T_B(b), T_A(G_BA(b)))``, weighted by
    ``rho = rho0 * exp(-rho_decay * progress)`` with progress going from 0 to 1 over the run.

    Parameters
    ----------
    threshold_a, threshold_b : float, optional
        Thresholds ``t`` of domains A and B, in the units of the images the networks see: after
        the data module's ``normalize`` (for example in [-1, 1] with ``PercentileNormalized``
        ``out_range: "-1,1"``; 0 for masks scaled to -1/1). Default: Otsu's threshold
        (``skimage.filters.threshold_otsu``; the midpoint for two-valued masks) of
        ``auto_threshold_samples`` training images of the domain, drawn when training starts
        and kept in the checkpoint (as the buffers ``threshold_a``, ``threshold_b``).
    polarity_a, polarity_b : {"bright", "dark"}
        ``bright``: content brighter than the background (fluorescence, masks); ``dark``:
        darker (brightfield, H&E, IHC).
    steepness : float
        ``k`` of the soft threshold (100 in UTOM): the mask goes from 0.12 to 0.88 within
        ``4 / k`` intensity units around ``t``.
    rho0 : float
        Weight of the saliency loss at the start (10 in UTOM's code).
    rho_decay : float
        Decay rate: ``rho`` reaches ``rho0 * exp(-rho_decay)`` at the end of the run (UTOM's
        code decays by ``exp(-2)`` per epoch of its data).
    rho_progress : {"step", "epoch"}
        Progress as finished batches over the run's batches, or finished epochs over its epochs
        (the run's length from ``trainer.max_steps`` or ``trainer.max_epochs``).
    auto_threshold_samples : int
        Training images per domain whose patches give the Otsu thresholds.
    **kwargs
        Everything else is :class:`~im2im_utom.cyclegan.CycleGAN`'s.
    """

    def __init__(
        self,
        threshold_a: float | None = None,
        threshold_b: float | None = None,
        polarity_a: Polarity = "bright",
        polarity_b: Polarity = "bright",
        steepness: float = 100.0,
        rho0: float = 10.0,
        rho_decay: float = 5.0,
        rho_progress: Literal["step", "epoch"] = "step",
        auto_threshold_samples: int = 16,
        **kwargs: Any,
    ) -> None:
        for name, value in (("polarity_a", polarity_a), ("polarity_b", polarity_b)):
            if value not in ("bright", "dark"):
                raise ConfigError(f"UTOM: {name} {value!r} is not 'bright' or 'dark'")
        if rho_progress not in ("step", "epoch"):
            raise ConfigError(f"UTOM: rho_progress {rho_progress!r} is not 'step' or 'epoch'")
        if auto_threshold_samples < 1:
            raise ConfigError(f"UTOM: auto_threshold_samples must be at least 1, got {auto_threshold_samples}")
        super().__init__(**kwargs)
        # NaN: chosen by Otsu when training starts; saved in checkpoints, so resumed runs and
        # prediction use the same values
        nan = float("nan")
        self.register_buffer("threshold_a", torch.tensor(nan if threshold_a is None else float(threshold_a)))
        self.register_buffer("threshold_b", torch.tensor(nan if threshold_b is None else float(threshold_b)))
        self.polarities: tuple[Polarity, Polarity] = (polarity_a, polarity_b)
        self.steepness, self.rho0, self.rho_decay, self.rho_progress = steepness, rho0, rho_decay, rho_progress
        self.auto_threshold_samples = auto_threshold_samples
        self._length: tuple[int, int] | None = None

    @classmethod
    def citations(cls) -> list[dict[str, str]]:
        """UTOM (Li et al. 2021), and CycleGAN it builds on."""
        return [{"text": "Li et al. Unsupervised content-preserving transformation for optical microscopy. Light: Science "
                         "& Applications 2021", "doi": "10.1038/s41377-021-00484-y"}, *CycleGAN.citations()]

    # ----------------------------------------------------------------- the weight rho
    def progress(self) -> float:
        """Fraction of the run done, 0 to 1, by batches or epochs (``rho_progress``)."""
        if self._length is None:
            self._length = self.run_length()
        batches, epochs = self._length
        done, total = (self.batches_done, batches) if self.rho_progress == "step" else (self.current_epoch, epochs)
        return min(1.0, done / max(total, 1))

    def rho(self) -> float:
        """The saliency weight now: ``rho0 * exp(-rho_decay * progress)``."""
        return rho(self.progress(), self.rho0, self.rho_decay)

    # ----------------------------------------------------------------- thresholds
    def on_train_start(self) -> None:
        """Choose the thresholds not given (Otsu on sampled training patches), once per run."""
        self._length = None
        missing = [d for d, t in (("a", self.threshold_a), ("b", self.threshold_b)) if math.isnan(float(t))]
        if not missing:
            return
        values = self._sample_domains(missing)
        for domain in missing:
            # every process of a distributed run takes rank 0's threshold
            threshold = self.trainer.strategy.broadcast(otsu_threshold(values[domain]), src=0)
            getattr(self, f"threshold_{domain}").fill_(threshold)
        rank_zero_info("UTOM: Otsu thresholds of sampled training patches: "
                       + ", ".join(f"{d.upper()} {float(getattr(self, f'threshold_{d}')):.4g}" for d in missing))

    def _sample_domains(self, domains: list[str]) -> dict[str, np.ndarray]:
        """Grey values (mean over channels) of training patches of each domain in ``domains``."""
        dataset = self.trainer.train_dataloader.dataset
        # the unpaired data set keeps its domains apart: sample them without drawing pairs
        sources = {"a": (getattr(dataset, "domain_a", dataset), "IM"), "b": (getattr(dataset, "domain_b", dataset), "GT")}
        values: dict[str, np.ndarray] = {}
        for domain in domains:
            source, key = sources[domain]
            count = min(self.auto_threshold_samples, len(source))
            indices = np.linspace(0, len(source) - 1, count).round().astype(int)
            grey = []
            for index in dict.fromkeys(indices.tolist()):
                item = source[index]
                for patch in item if isinstance(item, list) else [item]:
                    grey.append(torch.as_tensor(patch[key]).float().mean(dim=0).ravel())
            values[domain] = torch.cat(grey).numpy()
        return values

    # ----------------------------------------------------------------- training
    def generator_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fake_a: torch.Tensor,
                         fake_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """CycleGAN's terms and ``saliency``: ``rho`` times the saliency loss."""
        losses = super().generator_losses(real_a, real_b, fake_a, fake_b)
        if math.isnan(float(self.threshold_a)) or math.isnan(float(self.threshold_b)):
            raise ConfigError("UTOM: thresholds not chosen yet (training started without on_train_start)")
        weight = self.rho()
        loss = saliency_loss(real_a, fake_b, real_b, fake_a, (self.threshold_a, self.threshold_b), self.polarities,
                             self.steepness)
        self.log("train_rho", weight, batch_size=real_a.shape[0])
        self.log("train_saliency_unweighted", loss, batch_size=real_a.shape[0])
        losses["saliency"] = weight * loss
        return losses
