"""Where converted weights and other derived files live between runs."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir(*parts: str) -> Path:
    """Per-user cache folder; ``TRANSFERKIT_CACHE`` overrides it (CI, read-only homes)."""
    root = os.environ.get("TRANSFERKIT_CACHE") or platformdirs.user_cache_dir("transferkit")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
