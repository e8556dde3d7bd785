"""The LightningCLI of im2im: ``fit``, ``validate``, ``test``, ``predict``."""

from __future__ import annotations

import warnings
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from jsonargparse.typing import register_type
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from im2im_cli.network_arguments import merged_config, network_options
from im2im_cli.run_folder import follow_root_dir
from im2im_core import __version__
from im2im_core.data import Im2ImDataModule
from im2im_core.errors import ConfigError
from im2im_core.inference.checkpoint import CONFIG_KEY, check_fits, read_checkpoint, run_config
from im2im_core.inference.writer import PredictionWriter

# MONAI's dictionary transforms type their ``keys`` as Hashable, which jsonargparse cannot
# write back to YAML ("Unable to serialize instance IM"); keys are plain strings in configs.
register_type(Hashable, serializer=lambda value: value, deserializer=lambda value: value)
# predict_step returns nothing on purpose: the writer predicts and writes each batch
warnings.filterwarnings("ignore", message="predict returned None")

#: Subcommands that run a trained model and take its config from the checkpoint.
FROM_CHECKPOINT = ("validate", "test", "predict")


class RunConfigInCheckpoint(pl.Callback):
    """Store the run's resolved config (YAML text) in every checkpoint under ``CONFIG_KEY``.

    It makes a checkpoint describe itself: ``im2im predict --ckpt_path X`` and
    ``im2im_core.inference.load_model(X)`` rebuild the model from it alone.
    """

    def __init__(self, config_text: str) -> None:
        self.config_text = config_text

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        """Add the run's config and the im2im version to ``checkpoint``, under ``CONFIG_KEY``."""
        checkpoint[CONFIG_KEY] = {"config": self.config_text, "version": __version__}


class LastCheckpointAtEnd(pl.Callback):
    """Write each ``save_last`` checkpoint (``last.ckpt``) again when training ends, unless it holds that step.

    Lightning writes ``last.ckpt`` at the end only when it wrote none before; a run stopped by
    ``trainer.max_time`` between two periodic saves kept an older model there (a 32-minute run:
    step 500 of 766), and ``im2im predict`` used it.
    """

    def __init__(self) -> None:
        self.saved_step = -1

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        """Remember the step of the latest checkpoint written."""
        self.saved_step = trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: LightningModule) -> None:
        """Save ``last.ckpt`` of every checkpoint callback with ``save_last`` at the final step."""
        if trainer.global_step == 0 or self.saved_step == trainer.global_step:
            return
        for callback in trainer.checkpoint_callbacks:
            if getattr(callback, "save_last", False) and callback.dirpath:
                name = f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
                trainer.save_checkpoint(Path(callback.last_model_path or Path(callback.dirpath) / name))


def _value_of(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def is_lightning_name(ckpt_path: str) -> bool:
    """Whether ``ckpt_path`` is one of Lightning's names (``last``, ``best``, ``hpc``, ``registry...``), not a file."""
    return ckpt_path in ("last", "best", "hpc") or ckpt_path.startswith("registry") and not Path(ckpt_path).exists()


def with_checkpoint_config(args: list[str]) -> list[str]:
    """``args`` with the config stored in ``--ckpt_path`` put first, for validate, test and predict.

    Every ``--config`` and option the user gives comes after it and wins. A checkpoint is read
    with ``weights_only=True`` first, for every subcommand: one that could run code is refused.
    """
    path = _value_of(args, "--ckpt_path")
    if not args or path is None or is_lightning_name(path):
        return args
    stored = run_config(read_checkpoint(path))
    if args[0] not in FROM_CHECKPOINT:
        return args
    if stored is None:
        if _value_of(args, "--config") is None:
            raise ConfigError(f"checkpoint {path} holds no run config (not written by im2im fit); pass --config")
        return args
    return [args[0], "--config", stored, *args[1:]]


def with_package_config(args: list[str]) -> list[str]:
    """``args`` with ``--model PACKAGE`` (a bioimage.io package) replaced by the run config that predicts with it.

    The config (:func:`~im2im_core.export.imported.package_config`) comes first, so every
    other option the user gives wins over it. ``--model`` with anything but a package (a
    model config file) is left to LightningCLI.
    """
    from im2im_core.export.imported import is_package, package_config

    package = _value_of(args, "--model")
    if not args or package is None or not is_package(package):
        return args
    if args[0] != "predict":
        raise ConfigError(f"--model {package}: a bioimage.io package can only predict (im2im predict --model PACKAGE)")
    rest, skip = [], False
    for arg in args[1:]:
        if skip:
            skip = False
        elif arg == "--model":
            skip = True
        elif not arg.startswith("--model="):
            rest.append(arg)
    return [args[0], "--config", package_config(package), *rest]


class Im2ImCLI(LightningCLI):
    """LightningCLI with the im2im data module, any registered framework and a writer.

    The framework is chosen by ``model.class_path``; the data module is always
    :class:`~im2im_core.data.Im2ImDataModule`; ``prediction.*`` configures the writer.
    Networks get ``spatial_dims`` and channels from the data section where the config leaves
    them out (``network_arguments``); ``fit`` stores the resolved config in its checkpoints,
    and the other subcommands read it back from ``--ckpt_path``. ``callbacks`` (objects, not
    config) join the trainer's callbacks: a front end's live plot or stop button.
    """

    def __init__(self, args: list[str] | None = None, callbacks: list[pl.Callback] | None = None) -> None:
        args = follow_root_dir(with_checkpoint_config(with_package_config(list(args or []))))
        self.fitting = bool(args) and args[0] == "fit"
        super().__init__(
            model_class=LightningModule,
            datamodule_class=Im2ImDataModule,
            subclass_mode_model=True,
            subclass_mode_data=False,
            auto_configure_optimizers=False,
            # the run's config.yaml is written by fit only, so predicting never replaces it
            save_config_callback=SaveConfigCallback if self.fitting else None,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"exit_on_error": False},
            # added to the config's own callbacks, never written into the run's config
            trainer_defaults={"callbacks": list(callbacks)} if callbacks else None,
            args=[*args, *network_options(merged_config(args))],
        )

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (LightningArgumentParser)
        """Add the options of :class:`PredictionWriter`, as ``prediction.*``."""
        parser.add_lightning_class_args(PredictionWriter, "prediction")

    def _parse_ckpt_path(self) -> None:
        """Nothing: the checkpoint's own config is read before parsing (:func:`with_checkpoint_config`),
        so options given on the command line win over it (Lightning's version applies saved
        hyperparameters over them).
        """

    def after_instantiate_classes(self) -> None:
        """Check that ``--ckpt_path`` fits the model; for ``fit``, store the run config in every checkpoint."""
        path = self.config[self.subcommand].get("ckpt_path")
        if path and not is_lightning_name(str(path)):
            check_fits(self.model, read_checkpoint(path)["state_dict"], path, "the config")
        if self.fitting:
            parser = self._parser(self.subcommand)
            text = parser.dump(self.config[self.subcommand], skip_none=False)
            self.trainer.callbacks.append(RunConfigInCheckpoint(text))
            self.trainer.callbacks.append(LastCheckpointAtEnd())

    def predict(self, model: LightningModule, datamodule: Any = None, return_predictions: bool | None = None,
                **kwargs: Any) -> Any:
        """``trainer.predict``; the writer predicts and saves every output (nothing is returned)."""
        return self.trainer.predict(model, datamodule=datamodule, return_predictions=bool(return_predictions), **kwargs)
