"""``im2im export``: a checkpoint of ``im2im fit`` becomes a bioimage.io model package."""

from __future__ import annotations

import argparse

from im2im_core.errors import ConfigError


def _names(text: str | None, separator: str = ",") -> list[str]:
    return [name.strip() for name in (text or "").split(separator) if name.strip()]


def export_command(argv: list[str]) -> int:
    """Write the package, print what it holds; with ``--test``, run bioimageio.core's test of each weight format."""
    parser = argparse.ArgumentParser(prog="im2im export", description="Export a checkpoint as a bioimage.io model package.")
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by im2im fit")
    parser.add_argument("--output", required=True, help="the package to write, a .zip file")
    parser.add_argument("--weights", default="pytorch_state_dict,torchscript,onnx",
                        help="weight formats, comma-separated (default: all three)")
    parser.add_argument("--sample", help="image the test tensors are cut from (default: the run's first validation image)")
    parser.add_argument("--name", help="the model's name (default: framework and run folder)")
    parser.add_argument("--description", help="one sentence on what the model does")
    parser.add_argument("--authors", help="authors, separated by ';' (default: your login name)")
    parser.add_argument("--license", default="CC-BY-4.0", help="SPDX license identifier (default: CC-BY-4.0)")
    parser.add_argument("--tags", help="tags, comma-separated")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--test", action="store_true", help="run bioimageio.core's test of the package for each weight format")
    args = parser.parse_args(argv)

    from im2im_core.export import ExportOptions, export_package

    options = ExportOptions(weights=tuple(_names(args.weights)), sample=args.sample, name=args.name,
                            description=args.description, authors=_names(args.authors, ";"), license=args.license,
                            tags=_names(args.tags))
    path = export_package(args.ckpt_path, args.output, options, overwrite=args.overwrite)
    from im2im_core.export.imported import load_description

    description = load_description(path)
    formats = [name for name, value in description.weights if value is not None]
    print(f"wrote {path}: weights {', '.join(formats)}")
    left_out = [f for f in options.weights if f not in formats]
    if left_out:
        print(f"left out (their reason is in the package's README): {', '.join(left_out)}")
    if args.test:
        from bioimageio.core import test_model

        failed = []
        for weight_format in formats:
            summary = test_model(path, weight_format=weight_format)
            print(f"bioimageio.core test, {weight_format}: {summary.status}")
            if summary.status != "passed":
                failed.append(weight_format)
        if failed:
            raise ConfigError(f"the package {path} fails bioimageio.core's test for {', '.join(failed)}")
    return 0
