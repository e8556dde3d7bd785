"""The hooks through which im2im's built-ins and third-party plugins register what they add.

Each hook returns a mapping from a short name to the thing it names. The core registers its
own frameworks, backbones, transforms, readers and presets through exactly these hooks.

Frameworks, backbones, transforms and readers may be given either as the object itself or as
an import path string, ``"package.module:Attribute"`` (or ``"package.module.Attribute"``). A
string is imported only when the name is first used (``Registry.get``), so ``im2im plugins``,
``im2im presets`` and short-name resolution import nothing heavy. Prefer strings, and name
the module that defines the class: that path is what saved configs record.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT_NAME = "im2im"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def im2im_register_frameworks() -> dict[str, Any]:
    """Return ``{short_name: LightningModule subclass or its import path}`` of the frameworks a plugin adds."""


@hookspec
def im2im_register_backbones() -> dict[str, Any]:
    """Return ``{short_name: nn.Module class or factory, or its import path}`` of the networks a plugin adds."""


@hookspec
def im2im_register_transforms() -> dict[str, Any]:
    """Return ``{short_name: dictionary transform class or its import path}`` of the transforms a plugin adds."""


@hookspec
def im2im_register_readers() -> dict[str, Any]:
    """Return ``{short_name: Reader class or its import path}`` of the image readers a plugin adds."""


@hookspec
def im2im_register_presets() -> dict[str, Any]:
    """Return ``{preset_name: im2im_core.presets.Preset}`` of the configs a plugin ships (objects, not paths)."""
