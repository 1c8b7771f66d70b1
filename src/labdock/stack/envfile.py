"""Read and update a Compose `.env` file."""

from __future__ import annotations

import re
from pathlib import Path

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


def _unquote(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    # An unquoted value ends at an inline comment preceded by whitespace.
    return re.split(r"\s+#", value, maxsplit=1)[0].strip()


def parse_env(text: str) -> dict[str, str]:
    """Parse KEY=VALUE lines; blank lines and # comments are skipped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match:
            values[match.group(1)] = _unquote(match.group(2))
    return values


def read_env(path: Path) -> dict[str, str]:
    """Read an env file; a missing file gives an empty mapping."""
    if not path.is_file():
        return {}
    return parse_env(path.read_text(encoding="utf-8"))


def set_values(text: str, updates: dict[str, str]) -> str:
    """Return `text` with each KEY's value replaced, appending missing keys."""
    remaining = dict(updates)
    lines = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match and not line.lstrip().startswith("#") and match.group(1) in remaining:
            key = match.group(1)
            line = f"{key}={remaining.pop(key)}"
        lines.append(line)
    lines.extend(f"{key}={value}" for key, value in remaining.items())
    return "\n".join(lines) + "\n"
