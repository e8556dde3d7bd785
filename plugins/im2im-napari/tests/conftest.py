"""Fixtures of the napari plugin's tests: one torch thread, a viewer, and waiting for a widget's worker."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from im2im_core.testing import one_torch_thread  # noqa: F401  (fixture)


@pytest.fixture(scope="session", autouse=True)
def _display() -> None:
    """Draw offscreen when there is no display (pytest-xvfb found no Xvfb), so that Qt does not abort
    the whole run; the screenshot test then fails, naming the missing OpenGL canvas.

    A fixture, not import-time code: pytest-xvfb sets ``DISPLAY`` after conftest files are imported.
    """
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def make_napari_viewer(qapp: Any) -> Iterator[Callable[..., Any]]:
    """``make_napari_viewer(show=False)``: a new napari viewer, closed after the test.

    Our own (napari's pytest plugin is disabled for the whole suite: its autouse fixtures doubled
    the time of every other test).
    """
    import napari

    viewers: list[Any] = []

    def make(show: bool = False) -> Any:
        viewer = napari.Viewer(show=show)
        viewers.append(viewer)
        return viewer

    yield make
    for viewer in viewers:
        viewer.close()


@pytest.fixture
def notifications() -> Iterator[list[Any]]:
    """The napari notifications shown during the test (errors, infos), in order."""
    from napari.utils.notifications import notification_manager

    shown: list[Any] = []
    notification_manager.notification_ready.connect(shown.append)
    yield shown
    notification_manager.notification_ready.disconnect(shown.append)


@pytest.fixture
def wait_idle(qtbot: Any) -> Callable[[Any, float], None]:
    """``wait_idle(widget, seconds)``: process Qt events until the widget's worker has finished."""

    def wait(widget: Any, seconds: float = 120) -> None:
        qtbot.waitUntil(lambda: not widget.running, timeout=int(seconds * 1000))

    return wait
