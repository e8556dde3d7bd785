"""What the three widgets share: layer choices, worker threads, and errors shown as notifications."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from magicgui.widgets import ComboBox
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Signal

from im2im_cli.main import user_message
from im2im_core.errors import ConfigError

LOGGER = logging.getLogger("im2im_napari")


def error_message(exc: BaseException) -> str:
    """The line ``im2im`` would print for ``exc``; for an error that is not the user's, its type and text."""
    message = user_message(exc)
    return message if message is not None else f"im2im: unexpected error: {type(exc).__name__}: {exc}"


def notify_error(exc: BaseException) -> None:
    """Show ``exc`` as a napari notification, with the message the CLI would print.

    A user error (bad input, config or layer) shows only that line; any other error also goes
    to the log with its traceback, for a bug report.
    """
    if user_message(exc) is None:
        LOGGER.error("".join(traceback.format_exception(exc)))
    show_error(error_message(exc))


def layer_combo(viewer: Any, label: str, *kinds: type, nullable: bool = False) -> ComboBox:
    """A choice of the viewer's layers of ``kinds``, refreshed when layers are added, removed or renamed."""

    def choices(_widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, kinds)]

    combo = ComboBox(label=label, choices=choices, nullable=nullable)
    for event in (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.changed):
        event.connect(lambda *_: combo.reset_choices())
    return combo


def optional_number(text: str, what: str, expected: str) -> float | None:
    """The number typed in a field, or None for an empty one.

    Raises
    ------
    ConfigError
        Naming the field (``what``) and the ``expected`` value, for text that is not a number.
    """
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{what} {text!r}: expected {expected}") from None


def path_text(field: Any) -> str:
    """The text typed in a magicgui ``FileEdit`` (its ``value`` makes an empty field the current folder)."""
    return str(field.line_edit.value).strip()


class Relay(QObject):
    """Carries values from a worker thread to the widget (Qt queues signals across threads)."""

    progress = Signal(int, int)
    metric = Signal(str, int, float)


def start_worker(function: Callable[[], Any], returned: Callable[[Any], None], errored: Callable[[BaseException], None],
                 finished: Callable[[], None]) -> Any:
    """Run ``function`` in a napari worker thread; its result or exception comes back on the main thread."""
    worker = create_worker(function, _ignore_errors=True)
    worker.returned.connect(returned)
    worker.errored.connect(errored)
    worker.finished.connect(finished)
    worker.start()
    return worker
