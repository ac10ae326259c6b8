"""Reading the JSON manifest that sits in every saved artefact directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_manifest(directory: str | os.PathLike, filename: str, what: str,
                  fmt: str | None = None) -> dict[str, Any]:
    """Parse ``directory/filename``; errors name the file and say what was expected.

    ``what`` reads naturally in "not a saved <what>"; ``fmt`` (when given) must equal the
    manifest's ``format`` field.
    """
    directory = Path(directory)
    path = directory / filename
    if not path.exists():
        raise FileNotFoundError(f"{directory}: not a saved {what} (no {filename})")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if fmt is not None and manifest.get("format") != fmt:
        raise ValueError(f"{path}: unsupported format {manifest.get('format')!r} "
                         f"(expected {fmt!r} for a {what})")
    return manifest
