"""Predicting with a bioimage.io package: im2im's windows against bioimageio.core's own prediction.

A demo model (BBBC039 nuclei, the ``demo`` preset's U-Net) is trained for ``--steps`` steps and
exported with ``im2im export``; the same package then predicts a real image, four BBBC039
holdout crops tiled to ``--size`` x ``--size``, in turn (a, b, a, b, ...):

a   ``im2im_core.predict(PackagedModel(package, fmt), image)``: the package's own normalization
    and post-processing, im2im's automatic windows, Gaussian blending, inference copy;
b   ``bioimageio.core.predict`` with a prediction pipeline made once, the whole image in one
    block (no tiling: its fastest use when the image fits in memory).

Both exclude loading the package. Reported per weight format: median seconds, the median of
the per-round ratios a / b, and how many mask pixels of a differ from b's (b computes each pixel
once, a blends windows).

    python benchmarks/bench_package_predict.py            # 2048 x 2048, 3 rounds
    python benchmarks/bench_package_predict.py --size 512 --rounds 1   # quick check

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bioio import BioImage

from im2im_cli.main import main
from im2im_core.export.imported import PackagedModel
from im2im_core.inference import predict
from im2im_core.testing import DEMO_DATA, copy_pairs

FORMATS = ("pytorch_state_dict", "torchscript", "onnx")


def tiled_holdout(size: int) -> np.ndarray:
    """The four BBBC039 holdout crops (256 x 256), tiled in a 2 x 2 block repeated to ``size`` x ``size``."""
    crops = [BioImage(p).get_image_data("YX") for p in sorted((DEMO_DATA / "holdout" / "IM").glob("*.tif"))]
    block = np.block([[crops[0], crops[1]], [crops[2], crops[3]]])
    reps = -(-size // block.shape[0])
    return np.tile(block, (reps, reps))[:size, :size]


def train_and_export(folder: Path, steps: int) -> tuple[Path, Path]:
    data = copy_pairs(folder / "data", slice(None))
    import os

    os.chdir(folder)
    assert main(["fit", "--config", "demo", "--data.data_path", str(data), "--trainer.max_steps", str(steps),
                 "--trainer.enable_progress_bar", "false"]) == 0
    checkpoint = folder / "im2im_runs" / "demo" / "checkpoints" / "last.ckpt"
    started = time.perf_counter()
    assert main(["export", "--ckpt_path", str(checkpoint), "--output", str(folder / "demo.zip")]) == 0
    print(f"export: {time.perf_counter() - started:.1f} s")
    return checkpoint, folder / "demo.zip"


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from bioimageio.core import create_prediction_pipeline
    from bioimageio.core import predict as core_predict
    from bioimageio.spec import load_model_description

    image = tiled_holdout(args.size)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as name:
        checkpoint, package = train_and_export(Path(name), args.steps)
        description = load_model_description(package)
        for weight_format in FORMATS:
            ours = PackagedModel(str(package), weight_format)
            pipeline = create_prediction_pipeline(description, weight_format=weight_format)
            times: dict[str, list[float]] = {"a": [], "b": []}
            outputs: dict[str, np.ndarray] = {}
            for _ in range(args.rounds):
                for case in ("a", "b"):
                    started = time.perf_counter()
                    if case == "a":
                        out = predict(ours, image, normalize="auto")
                    else:
                        sample = core_predict(model=pipeline, inputs=image[None, None].astype(np.float32))
                        out = np.asarray(next(iter(sample.members.values())).data)[0, 0]
                    times[case].append(time.perf_counter() - started)
                    outputs[case] = np.asarray(out)
            ratios = [a / b for a, b in zip(times["a"], times["b"])]
            differ = int((outputs["a"].astype(np.int16) != outputs["b"].astype(np.int16)).sum())
            results[weight_format] = {"a_s": statistics.median(times["a"]), "b_s": statistics.median(times["b"]),
                                      "a_over_b": statistics.median(ratios), "mask_pixels_differ": differ,
                                      "foreground_b": int(outputs["b"].sum())}
            print(f"{weight_format:>18}: im2im {results[weight_format]['a_s']:.2f} s, bioimageio.core "
                  f"{results[weight_format]['b_s']:.2f} s, a/b median {results[weight_format]['a_over_b']:.2f} "
                  f"(rounds {', '.join(f'{r:.2f}' for r in ratios)}); mask pixels differing {differ} of {image.size} "
                  f"(foreground {results[weight_format]['foreground_b']})")
        # where the time goes: one whole-image pass of the plain network and of im2im's inference copy
        from im2im_core.inference.optimize import channels_last, optimized_copy

        network = PackagedModel(str(package), "pytorch_state_dict").window_network().eval()
        fast = optimized_copy(network, 2, torch.device("cpu"))
        x = torch.rand(1, 1, args.size, args.size)
        passes = {}
        with torch.inference_mode():
            for name, module, tensor in (("plain", network, x), ("inference copy", fast,
                                                               x.contiguous(memory_format=channels_last(2)))):
                module(tensor[..., :256, :256])
                started = time.perf_counter()
                module(tensor)
                passes[name] = time.perf_counter() - started
                print(f"whole pass, {name} network: {passes[name]:.2f} s")
        reference = predict(checkpoint, image, normalize="auto")
        same = {f: bool(np.array_equal(predict(PackagedModel(str(package), f), image, normalize="auto"), reference))
                for f in FORMATS}
        print(f"package masks equal to the checkpoint's (im2im, same windows): {same}")
    print(json.dumps({"size": args.size, "rounds": args.rounds, "threads": args.threads, "formats": results,
                      "whole_pass_s": passes, "package_equals_checkpoint": same}))


if __name__ == "__main__":
    main_bench()
