"""``im2im plan``: read a dataset's fingerprint and write a config that trains on it without edits."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from im2im_core.errors import ConfigError


def parse_time(text: str) -> float:
    """Seconds of ``90``, ``45m``, ``2h``, ``1h30m``, ``00:30:00`` or Lightning's ``DD:HH:MM:SS``."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if re.fullmatch(r"(\d+:){1,3}\d+", text):
        parts = [int(p) for p in text.split(":")]
        units = [86400, 3600, 60, 1][-len(parts):]
        return float(sum(p * u for p, u in zip(parts, units)))
    match = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if match and any(match.groups()):
        d, h, m, s = (int(g or 0) for g in match.groups())
        return float(d * 86400 + h * 3600 + m * 60 + s)
    raise ConfigError(f"--time {text!r}: expected seconds, 45m, 2h, 1h30m or HH:MM:SS")


def _spacing(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"--spacing {text!r}: expected sizes separated by commas, e.g. 0.3,0.1,0.1") from None


def plan_command(argv: list[str]) -> int:
    """Fingerprint the data, plan, write ``--output`` (and ``fingerprint.json`` beside it); ``--search N`` tunes."""
    parser = argparse.ArgumentParser(prog="im2im plan", description="Plan a config from a dataset's fingerprint.")
    parser.add_argument("--data.data_path", dest="data_path", required=True, help="the training data, as for im2im fit")
    parser.add_argument("--data.input_dir", dest="input_dir", default="IM")
    parser.add_argument("--data.target_dir", dest="target_dir", default="GT")
    parser.add_argument("--data.layout", dest="layout", default="auto")
    parser.add_argument("--data.dims", dest="dims", help="axes to read (default: Z when files have planes, C when channels)")
    parser.add_argument("--task", help="segmentation, instance, regression, denoise or unpaired (default: from the targets)")
    parser.add_argument("--device", default="cpu", help="cpu or gpu: where training will run")
    parser.add_argument("--memory", type=float, help="GB a training step may use (default: half the memory; 80%% of a GPU's)")
    parser.add_argument("--time", default="30m", help="training budget (default 30m)")
    parser.add_argument("--spacing", help="voxel size per spatial axis in um, e.g. 0.3,0.1,0.1, where the files lack it")
    parser.add_argument("--output", default="config.yaml", help="the config to write (default config.yaml)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing config")
    parser.add_argument("--search", type=int, default=0, metavar="N",
                        help="train N variants of the plan with k-fold cross-validation and write the best")
    parser.add_argument("--folds", type=int, default=3, help="folds of --search (default 3)")
    args = parser.parse_args(argv)

    from im2im_core.planning.commented_yaml import commented_yaml
    from im2im_core.planning.fingerprint import fingerprint
    from im2im_core.planning.plan import make_plan

    output = Path(args.output)
    if output.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"--output {output}: expected a .yaml file")
    fingerprint_path = output.parent / "fingerprint.json"
    for path in (output, fingerprint_path):
        if path.exists() and not args.overwrite:
            raise ConfigError(f"{path} exists; pass --overwrite to replace it")
    seconds = parse_time(args.time)
    data = fingerprint(args.data_path, args.dims, args.layout, args.input_dir, args.target_dir)
    plan = make_plan(data, args.task, args.device, args.memory, seconds, _spacing(args.spacing))
    output.parent.mkdir(parents=True, exist_ok=True)
    fingerprint_path.write_text(json.dumps(data.to_json(), indent=2))
    header = [f"Planned by im2im plan from {data.data_path} ({data.images} images, {data.dims}, "
              f"median {'x'.join(map(str, data.median_shape))}); fingerprint in fingerprint.json.",
              "Train with: im2im fit --config " + output.name]
    if args.search:
        from im2im_core.planning.search import search

        plan, table = search(plan, data, args.search, args.folds, seconds, output.parent / "search")
        print(table)
        header.append(f"Chosen by --search {args.search} ({args.folds}-fold cross-validation): see search/results.json")
    partial = output.with_name(f".{output.name}.partial")
    partial.write_text(commented_yaml(plan.config, plan.reasons, header))
    partial.replace(output)
    for key, reason in plan.reasons.items():
        print(f"{key}: {reason}")
    print(f"wrote {output} and {fingerprint_path}")
    return 0
