"""Condense jsonargparse's parse errors into one line that names the key or value."""

from __future__ import annotations

import re

_NOISE = re.compile(r"\s+")


def summarize_parse_error(message: str) -> str:
    """Return the most specific line of a jsonargparse error message.

    jsonargparse reports a nested failure as a tree of "does not validate against any of the
    types" lines; the user needs the innermost one, which names the key and the value.
    """
    lines = [line.strip(" -") for line in message.splitlines() if line.strip(" -")]
    specific = [line for line in lines if re.search(r"not expected|No action for key|does not exist|unknown|Unable to|Expected|not a valid|not accepted", line, re.I)]
    chosen = specific[-1] if specific else (lines[0] if lines else message)
    return _NOISE.sub(" ", chosen)
