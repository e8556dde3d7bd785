"""Speed of EmbedSeg clustering on a 520x696 image with 155 nuclei, beside two baselines in the same run.

Input: the manual instance labels of BBBC039 ``IXMtest_I18_s3`` (520 x 696, 155 nuclei) turned
into the output an ideal network would give (offsets to each nucleus' medoid, sigma 3 px,
seed 1 on nuclei), plus noise: Gaussian noise of 1 px on the offsets and of 0.05 on the seed.
So the timing is that of a realistic number of objects and pixels, and the result can be
checked against the labels (AP at IoU 0.5).

Timed, on the CPU, each the median of ``--repeats`` runs:

- ``im2im_embedseg.cluster.cluster`` (torch; each object touches a box around its centre);
- baseline "naive": the same greedy algorithm evaluating every pixel of the image for every
  seed (numpy), as a direct implementation of the method's description does; it must give
  the same labels;
- baseline "watershed": scikit-image's watershed of the seed map from its local maxima, a
  different (non-embedding) method on the same seed map, for scale.

Usage: ``python plugins/im2im-embedseg/benchmarks/bench_cluster.py [--repeats 5] [--threads 1]``.
The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from im2im_core.metrics import average_precision
from im2im_embedseg.cluster import cluster
from im2im_embedseg.embedding import ideal_output

DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "bbbc039" / "masks" / "IXMtest_I18_s3.tif"
OFFSET_RANGE = 64.0


def noisy_output(labels: np.ndarray, seed: int = 0) -> torch.Tensor:
    """Decoded output ``(5, Y, X)`` of a network that learned ``labels`` (sigma 3 px), plus noise."""
    generator = torch.Generator().manual_seed(seed)
    decoded = ideal_output(labels, sigma=3.0, centre="medoid")
    decoded[:2] += torch.randn(decoded[:2].shape, generator=generator)
    decoded[4] += 0.05 * torch.randn(decoded[4].shape, generator=generator)
    decoded[:2].clamp_(-OFFSET_RANGE, OFFSET_RANGE)
    decoded[4].clamp_(0, 1)
    return decoded


def naive_cluster(decoded: np.ndarray, seed_threshold: float = 0.9, foreground_threshold: float = 0.5,
                  min_size: int = 10) -> np.ndarray:
    """The greedy clustering, every pixel evaluated for every seed (numpy)."""
    spatial = decoded.shape[1:]
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in spatial], indexing="ij"))
    embedding, sigma, seed = grid + decoded[:2], np.exp(decoded[2:4]), decoded[4]
    foreground = seed > foreground_threshold
    unclustered = foreground.copy()
    labels = np.zeros(spatial, np.int32)
    count = 0
    while True:
        candidates = np.where(unclustered & (seed > seed_threshold), seed, -1.0)
        best = np.unravel_index(np.argmax(candidates), spatial)
        if candidates[best] < 0:
            break
        centre, bandwidth = embedding[(slice(None), *best)], sigma[(slice(None), *best)]
        phi = np.exp(-(((embedding - centre[:, None, None]) / bandwidth[:, None, None]) ** 2).sum(0) / 2)
        proposal = (phi > 0.5) & foreground
        new = proposal & unclustered
        if new.sum() >= min_size and 2 * new.sum() > proposal.sum():
            count += 1
            labels[new] = count
        unclustered &= ~proposal
    return labels


def watershed_baseline(seed: np.ndarray, seed_threshold: float = 0.9, foreground_threshold: float = 0.5) -> np.ndarray:
    """scikit-image watershed of the seed map from its local maxima above the seed threshold."""
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    smooth = ndimage.gaussian_filter(seed, 2)
    peaks = peak_local_max(smooth, min_distance=5, threshold_abs=seed_threshold * smooth.max(),
                           labels=(seed > foreground_threshold).astype(int))
    markers = np.zeros(seed.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-smooth, markers, mask=seed > foreground_threshold)


def timed(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    labels = tifffile.imread(DATA)
    decoded = noisy_output(labels)
    decoded_np = decoded.numpy()
    ours, ours_labels = timed(lambda: cluster(decoded, None, OFFSET_RANGE).numpy(), args.repeats)
    unbounded, unbounded_labels = timed(lambda: cluster(decoded, None, float("inf")).numpy(), args.repeats)
    naive, naive_labels = timed(lambda: naive_cluster(decoded_np), max(1, args.repeats // 2))
    ws, ws_labels = timed(lambda: watershed_baseline(decoded_np[4]), args.repeats)
    result = {
        "image": f"{DATA.name} {labels.shape[0]}x{labels.shape[1]}", "objects": int(len(np.unique(labels)) - 1),
        "threads": torch.get_num_threads(),
        "cluster_s": round(ours, 4), "cluster_no_box_s": round(unbounded, 4),
        "naive_full_image_s": round(naive, 4), "watershed_s": round(ws, 4),
        "speedup_vs_naive": round(naive / ours, 1),
        "same_labels_as_naive": bool(np.array_equal(ours_labels, naive_labels)
                                     and np.array_equal(unbounded_labels, naive_labels)),
        "ap50_cluster": round(average_precision(ours_labels, labels, 0.5), 4),
        "ap50_watershed": round(average_precision(ws_labels, labels, 0.5), 4),
        "found": int(ours_labels.max()),
    }
    print(f"clustering {result['image']}, {result['objects']} nuclei, CPU, {result['threads']} thread(s), "
          f"median of {args.repeats}:")
    print(f"  im2im_embedseg.cluster (box per object)  {ours:.4f} s   AP50 {result['ap50_cluster']}")
    print(f"  same, every pixel per object             {unbounded:.4f} s")
    print(f"  naive numpy, every pixel per seed        {naive:.4f} s   same labels: {result['same_labels_as_naive']}")
    print(f"  skimage watershed of the seed map        {ws:.4f} s   AP50 {result['ap50_watershed']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
