"""Datasets over sample dicts: cached in memory, on disk or not at all; unpaired; partial."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from monai.data import CacheDataset, Dataset, PersistentDataset
from monai.data.utils import pickle_hashing
from torch.utils.data import Dataset as TorchDataset

from im2im_core.errors import Im2ImError
from im2im_core.keys import IMAGE, TARGET

CacheMode = Literal["memory", "disk", "none"]


def build_dataset(samples: Sequence[dict[str, Any]], transform: Callable, cache: CacheMode,
                  cache_dir: str | Path | None = None, num_workers: int = 0) -> Dataset:
    """Wrap ``samples`` in a MONAI dataset that caches the deterministic part of ``transform``.

    ``memory`` keeps the preprocessed images in RAM (read once, before training starts);
    ``disk`` stores them under ``cache_dir`` and reuses them in later runs; the cache key
    hashes both the sample and the transforms, so changing the preprocessing config makes
    new entries instead of reusing stale ones; ``none`` reads every time.
    """
    if cache == "memory":
        try:
            return CacheDataset(list(samples), transform, cache_rate=1.0,
                                num_workers=num_workers or None, progress=False)
        except RuntimeError as exc:  # MONAI wraps a transform's error; the user needs ours
            raise _user_error(exc) or exc from None
    if cache == "disk":
        if cache_dir is None:
            raise ValueError("cache 'disk' needs a cache_dir")
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        return PersistentDataset(list(samples), transform, cache_dir=cache_dir, hash_transform=pickle_hashing)
    return Dataset(list(samples), transform)


def _user_error(exc: BaseException) -> Im2ImError | None:
    """The im2im error (wrong file, key or value) behind a wrapped exception, if any."""
    while exc is not None:
        if isinstance(exc, Im2ImError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def partial_subset(samples: Sequence[dict[str, Any]], fraction: float, round_index: int, seed: int) -> list[dict[str, Any]]:
    """A seeded random ``fraction`` of ``samples``, different for each ``round_index``."""
    if fraction >= 1.0:
        return list(samples)
    count = max(1, round(len(samples) * fraction))
    chosen = random.Random(f"{seed}-{round_index}").sample(range(len(samples)), count)
    return [samples[i] for i in sorted(chosen)]


class UnpairedDataset(TorchDataset):
    """Yield patches of domain A under ``IM`` with patches of a random domain-B image under ``GT``.

    The domains are preprocessed and sampled independently (their images need not share a
    size); an epoch visits every domain-A image once.
    """

    def __init__(self, domain_a: Dataset, domain_b: Dataset, seed: int = 0) -> None:
        self.domain_a, self.domain_b = domain_a, domain_b
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.domain_a)

    def __getitem__(self, index: int) -> list[dict[str, Any]] | dict[str, Any]:
        a = self.domain_a[index]
        b = self.domain_b[self.rng.randrange(len(self.domain_b))]
        if isinstance(a, list):
            return [{IMAGE: pa[IMAGE], TARGET: pb[TARGET]} for pa, pb in zip(a, b)]
        return {IMAGE: a[IMAGE], TARGET: b[TARGET]}
