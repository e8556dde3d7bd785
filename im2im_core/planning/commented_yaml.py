"""YAML with a comment above each key that has a reason: the config ``im2im plan`` writes.

PyYAML drops comments and ruamel.yaml is not a dependency; a config is nested mappings and
lists of plain values, so this writer of ours is short: mappings as blocks, lists of mappings
as block items, everything else in flow style. The text loads back to the same config.
"""

from __future__ import annotations

import textwrap
from typing import Any

import yaml


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text[:-4].strip() if text.endswith("\n...") else text.removesuffix("...").strip()


def _comment(reason: str, pad: str) -> list[str]:
    return [f"{pad}# {line}" for line in textwrap.wrap(reason, 110 - len(pad))]


def _lines(node: dict[str, Any], reasons: dict[str, str], path: str, pad: str) -> list[str]:
    lines: list[str] = []
    for key, value in node.items():
        dotted = f"{path}.{key}" if path else str(key)
        if dotted in reasons:
            lines += _comment(reasons[dotted], pad)
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{key}:")
            lines += _lines(value, reasons, dotted, pad + "  ")
        elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
            lines.append(f"{pad}{key}:")
            for item in value:
                block = _lines(item, reasons, dotted, pad + "    ") if isinstance(item, dict) else [f"{pad}    {_flow(item)}"]
                first = block[0][len(pad) + 4:] if block else "{}"
                lines.append(f"{pad}  - {first}")
                lines += block[1:]
        else:
            lines.append(f"{pad}{key}: {_flow(value)}")
    return lines


def commented_yaml(config: dict[str, Any], reasons: dict[str, str], header: list[str] | None = None) -> str:
    """``config`` as YAML text with ``reasons[dotted.key]`` as a comment above each key."""
    text = "\n".join([*(f"# {line}" for line in header or []), *_lines(config, reasons, "", "")]) + "\n"
    if yaml.safe_load(text) != config:  # the writer is ours: check it round-trips
        raise AssertionError("commented_yaml does not round-trip this config")
    return text
