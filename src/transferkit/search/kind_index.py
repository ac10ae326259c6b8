"""What the image, text and audio indexes share: a :class:`VectorIndex` file whose spec says
which kind of input it holds, a place on disk, and an atomic save."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transferkit.search.vector_index import VectorIndex


class KindIndex:
    """Base of ``ImageIndex``, ``TextIndex`` and ``AudioIndex``: ``kind`` names the inputs the
    index holds; :meth:`_wrong_kind` builds the error for a file of another kind (each says
    how to query that file instead)."""

    kind: str = ""
    what: str = "index"  # how save() names the index in its error

    def __init__(self, index: VectorIndex, path: str | os.PathLike | None = None) -> None:
        found = (index.spec or {}).get("kind")
        if found != self.kind:
            raise self._wrong_kind(index, found, path)
        self.index = index
        self.path = Path(path) if path is not None else None

    def _wrong_kind(self, index: VectorIndex, found: str | None,
                    path: str | os.PathLike | None) -> Exception:
        raise NotImplementedError

    @property
    def spec(self) -> dict[str, Any]:
        return self.index.spec

    def __len__(self) -> int:
        return len(self.index)

    def _before_save(self, target: Path) -> None:
        """Files that travel beside the index file (a fitted text encoder)."""

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Atomic save (temp file + rename); defaults to where it was loaded from."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError(f"{self.what} has no path yet: save(path)")
        self._before_save(target)
        self.index.save(target)
        self.path = target
        return target
