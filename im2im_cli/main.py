"""Entry point of the ``im2im`` command."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import TYPE_CHECKING

from im2im_core import __version__
from im2im_core.errors import ConfigError, Im2ImError

if TYPE_CHECKING:
    from lightning.pytorch import Callback

USAGE = """usage: im2im SUBCOMMAND [options]

Train and apply image-to-image networks for microscopy.

subcommands:
  fit        train a model:           im2im fit --config demo
  validate   validate a checkpoint:   im2im validate --config CONFIG --ckpt_path CKPT
  test       test a checkpoint:       im2im test --config CONFIG --ckpt_path CKPT
  predict    apply a model:           im2im predict --config CONFIG --ckpt_path CKPT  (or --model PACKAGE)
  evaluate   score predictions:       im2im evaluate --pred DIR --gt DIR [--csv FILE]
  plan       plan a config from data: im2im plan --data.data_path DIR [--task T] [--time 30m] [--search N]
  export     share a model:           im2im export --ckpt_path CKPT --output model.zip  (bioimage.io package)
  plugins    list installed plugins and what they register  [--json]
  presets    list the registered presets (usable as --config NAME)

Run 'im2im SUBCOMMAND --help' for the options of one subcommand.
"""

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
#: Set to 1 to see the traceback behind a user error too (errors the user cannot fix always show one).
DEBUG_ENV = "IM2IM_DEBUG"


def error_line(message: str) -> str:
    """The one line the ``im2im`` command prints for a user error: ``im2im: error: MESSAGE``."""
    one_line = "; ".join(line.strip() for line in str(message).splitlines() if line.strip())
    return f"im2im: error: {one_line}"


def _error(message: str) -> int:
    print(error_line(message), file=sys.stderr)
    return 2


def user_message(exc: BaseException) -> str | None:
    """What ``im2im`` prints for ``exc`` if it is a user error (an :class:`Im2ImError`, or caused by one), else None.

    Front ends (the napari widgets) show this line, so a user sees the same message there as on
    the command line.
    """
    user_error = _user_error(exc)
    return None if user_error is None else error_line(str(user_error))


def _user_error(exc: BaseException) -> Im2ImError | None:
    """The Im2ImError behind ``exc`` (directly or as a cause), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Im2ImError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def run_lightning(argv: list[str], callbacks: list[Callback] | None = None) -> int:
    """Run a LightningCLI subcommand after resolving presets and short names; returns 0.

    ``callbacks`` are added to the trainer's own (a front end's progress or stop callback).

    Raises
    ------
    ConfigError
        For an option or config the parser rejects, in one line that names the key.
    """
    from jsonargparse import ArgumentError

    from im2im_cli.cli import Im2ImCLI
    from im2im_cli.config import expand_arguments
    from im2im_cli.errors import summarize_parse_error
    from im2im_core.plugins import get_registry

    args = expand_arguments(argv, get_registry())
    # We pass the expanded arguments and keep sys.argv as typed, so that Lightning's DDP
    # launcher re-runs the command exactly as the user gave it.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    # a deprecation inside Lightning itself, printed on every run; nothing a user can act on
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # Lightning advertises a cloud logging service on every run
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda record: "litlogger" not in record.getMessage())
    try:
        Im2ImCLI(args=args, callbacks=callbacks)
    except ArgumentError as exc:
        raise ConfigError(summarize_parse_error(str(exc))) from None
    return 0


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``im2im`` subcommands; user errors become one line on stderr and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv[0] == "--version":
        print(f"im2im {__version__}")
        return 0
    try:
        from im2im_core.plugins import get_registry

        if argv[0] == "plugins":
            from im2im_cli.commands import plugins_command

            return plugins_command(argv[1:], get_registry())
        if argv[0] == "presets":
            from im2im_cli.commands import presets_command

            return presets_command(argv[1:], get_registry())
        if argv[0] == "evaluate":
            from im2im_cli.evaluate import evaluate_command

            return evaluate_command(argv[1:])
        if argv[0] == "plan":
            from im2im_cli.plan import plan_command

            return plan_command(argv[1:])
        if argv[0] == "export":
            from im2im_cli.export import export_command

            return export_command(argv[1:])
        if argv[0] in LIGHTNING_SUBCOMMANDS:
            return run_lightning(argv)
        return _error(f"unknown subcommand {argv[0]!r}; "
                      f"expected one of {', '.join(LIGHTNING_SUBCOMMANDS)}, evaluate, export, plan, plugins, presets")
    except Exception as exc:
        user_error = _user_error(exc)
        if user_error is None or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
            raise
        return _error(str(user_error))
