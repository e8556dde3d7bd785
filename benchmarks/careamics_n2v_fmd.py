"""CAREamics' Noise2Void on the same FMD split as bench_n2v_fmd.py, run in CAREamics' own environment.

Not part of CI, and not run by the im2im environment: CAREamics 0.3.5 needs torch < 2.14.
Set it up once (outside the repository), then bench_n2v_fmd.py calls this script with it::

    python3 -m venv ~/venvs/careamics
    ~/venvs/careamics/bin/pip install torch==2.9.1 torchvision==0.24.1 careamics==0.3.5

Reads ``train.npy`` (S, Y, X noisy training frames) and ``test.npy`` from ``--workdir``, trains
CAREamics' default N2V (U-Net depth 2, 32 initial channels, uniform replacement, window 11,
0.2 % masked, mean/std normalization, flips and 90-degree turns) for ``--steps`` batches of
``--batch`` patches of ``--patch`` pixels, predicts the test frames whole, and writes
``careamics_<variant>.npy`` and one JSON line: training seconds and patches per second.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    """Train, predict, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n2v2", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from careamics import CAREamist
    from careamics.config import create_advanced_n2v_config

    train = np.load(args.workdir / "train.npy").astype(np.float32)
    test = np.load(args.workdir / "test.npy").astype(np.float32)
    variant = "n2v2" if args.n2v2 else "n2v"
    # CAREamics' seeds start at 1
    config = create_advanced_n2v_config(
        experiment_name=f"fmd_{variant}", data_type="array", axes="SYX", patch_size=[args.patch, args.patch],
        batch_size=args.batch, num_epochs=10_000, use_n2v2=args.n2v2, seed=args.seed + 1,
        # an epoch is one pass over the patches of the training frames; max_steps stops at the same step count as im2im
        trainer_params={"accelerator": "cpu", "enable_progress_bar": False, "max_steps": args.steps},
    )
    careamist = CAREamist(config, work_dir=str(args.workdir / f"careamics_{variant}"))
    start = time.perf_counter()
    careamist.train(train_data=train)
    seconds = time.perf_counter() - start
    predictions, _ = careamist.predict(test, data_type="array", axes="SYX")
    output = np.concatenate([np.asarray(p).reshape(-1, *test.shape[1:]) for p in predictions]).astype(np.float32)
    np.save(args.workdir / f"careamics_{variant}.npy", output)
    steps_done = careamist.trainer.global_step
    print(json.dumps({"variant": variant, "train_seconds": round(seconds, 2), "steps": steps_done,
                      "patches_per_s": round(steps_done * args.batch / seconds, 2),
                      "parameters": sum(p.numel() for p in careamist.model.parameters())}))


if __name__ == "__main__":
    main()
