"""Presets: ready-made YAML configs that plugins ship and ``--config NAME`` finds.

A preset is a YAML file whose first line is a comment with a one-line description. Inside
it, ``${PRESET_DIR}`` stands for the folder of the file, so a preset can point at data that
ships with its package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PRESET_DIR_TOKEN = "${PRESET_DIR}"


@dataclass(frozen=True)
class Preset:
    """A named config file shipped by a plugin."""

    name: str
    path: Path
    description: str

    def text(self) -> str:
        """The YAML text with ``${PRESET_DIR}`` replaced by the file's folder."""
        return self.path.read_text().replace(PRESET_DIR_TOKEN, str(self.path.parent.resolve()))


def presets_in(folder: str | Path) -> dict[str, Preset]:
    """Return a :class:`Preset` for each ``*.yaml`` file in ``folder``, named after the file."""
    presets = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        first = path.read_text().splitlines()[0] if path.stat().st_size else ""
        description = first.lstrip("#").strip() if first.startswith("#") else ""
        presets[path.stem] = Preset(path.stem, path, description)
    return presets
