"""Condense jsonargparse's parse errors into one line that names the key or value."""

from __future__ import annotations

import re

_NOISE = re.compile(r"^(Does not validate|Subtypes:|Errors:|Given value|Expected a <class 'NoneType'>|Parser key"
                    r"|Problem with given class_path)")


def summarize_parse_error(message: str) -> str:
    """Return one line of a jsonargparse error: the key, the class, and the innermost reason.

    jsonargparse reports a nested failure as a tree ("does not validate against any of the
    Union subtypes", the subtypes, the given value); the user needs the key and the reason.
    """
    lines = [line.strip(" -") for line in message.splitlines() if line.strip(" -")]
    reasons = [line for line in lines if not _NOISE.match(line)]
    reason = reasons[-1] if reasons else (lines[-1] if lines else message)
    key = re.search(r'Parser key "([^"]+)"', message)
    class_path = re.search(r"Problem with given class_path '([^']+)'", message)
    where = f"config key '{key.group(1)}'" if key else ""
    if class_path:
        where += f" ({class_path.group(1)})"
    return f"{where}: {reason}" if where else reason
