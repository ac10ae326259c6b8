"""The JSON manifest in every saved artefact directory: written one way, read one way.

A manifest always carries ``format`` (``transferkit-<kind>/<version>``); readers refuse any
other format by name, and :func:`transferkit.load` dispatches on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_manifest(directory: str | os.PathLike, filename: str, fmt: str,
                   fields: dict[str, Any], default=None) -> Path:
    """Write ``directory/filename`` with ``format = fmt`` first, then ``fields``.

    Call it inside :func:`~transferkit.utils.atomic_path` so the whole artefact appears at
    once. ``default`` converts values JSON does not know (as :func:`json.dumps` takes it).
    """
    path = Path(directory) / filename
    manifest = {"format": fmt, **{k: v for k, v in fields.items() if k != "format"}}
    path.write_text(json.dumps(manifest, indent=2, default=default))
    return path


def read_manifest(directory: str | os.PathLike, filename: str, what: str,
                  fmt: str) -> dict[str, Any]:
    """Parse ``directory/filename``; errors name the file and say what was expected.

    ``what`` reads naturally in "not a saved <what>"; the manifest's ``format`` must be ``fmt``.
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
    if manifest.get("format") != fmt:
        raise ValueError(f"{path}: unsupported format {manifest.get('format')!r} "
                         f"(expected {fmt!r} for a {what})")
    return manifest


def peek_format(path: str | os.PathLike, filenames: tuple[str, ...]) -> str | None:
    """The ``format`` of the first of ``filenames`` found in directory ``path``, if any."""
    for name in filenames:
        candidate = Path(path) / name
        if candidate.is_file():
            try:
                value = json.loads(candidate.read_text()).get("format")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                continue
            if isinstance(value, str):
                return value
    return None
