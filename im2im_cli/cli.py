"""The LightningCLI of im2im: ``fit``, ``validate``, ``test``, ``predict``."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from jsonargparse.typing import register_type
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LightningCLI

from im2im_core.data import Im2ImDataModule
from im2im_core.inference.writer import PredictionWriter


# MONAI's dictionary transforms type their ``keys`` as Hashable, which jsonargparse cannot
# write back to YAML ("Unable to serialize instance IM"); keys are plain strings in configs.
register_type(Hashable, serializer=lambda value: value, deserializer=lambda value: value)


class Im2ImCLI(LightningCLI):
    """LightningCLI with the im2im data module, any registered framework and a writer.

    The framework is chosen by ``model.class_path``; the data module is always
    :class:`~im2im_core.data.Im2ImDataModule`; ``prediction.*`` configures the writer.
    """

    def __init__(self, args: list[str] | None = None) -> None:
        super().__init__(
            model_class=LightningModule,
            datamodule_class=Im2ImDataModule,
            subclass_mode_model=True,
            subclass_mode_data=False,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"exit_on_error": False},
            args=args,
        )

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (LightningArgumentParser)
        parser.add_lightning_class_args(PredictionWriter, "prediction")

    def predict(self, model: LightningModule, datamodule: Any = None, return_predictions: bool | None = None,
                **kwargs: Any) -> Any:
        """``trainer.predict``; the writer saves every output, so they are not also kept in
        memory unless asked (``im2im predict --return_predictions true``)."""
        return self.trainer.predict(model, datamodule=datamodule, return_predictions=bool(return_predictions), **kwargs)
