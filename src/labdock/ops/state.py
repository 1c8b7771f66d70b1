"""Files that labdock keeps about a tree under TREE/.labdock.

Deployment history, backup status and settings live beside the Compose
files, so a backup of the tree carries them and a restored tree keeps its
own history.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

STATE_DIR = ".labdock"


def state_dir(tree: Path) -> Path:
    """Return TREE/.labdock, created with mode 0700 when missing."""
    directory = tree / STATE_DIR
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`.

    Readers such as node_exporter's textfile collector never see a
    half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """Return the parsed JSON of `path`, or None when the file is missing."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
