"""What the collection view lists: every indexed image's id, file name, label and relative path,
as arrays built once at startup so paging and filtering 60,000 items takes milliseconds.

An image index records ids and file paths only; the label is the folder a file sits in (the
class-folder layout ``train`` reads) when the files lie in more than one folder, else unknown.
Paths are shown relative to the folder all indexed files share, never as the server's
absolute path.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class ItemPage:
    total: int
    positions: np.ndarray  # rows of the catalog on this page


def shown_paths(paths: Sequence[str]) -> tuple[str, list[str]]:
    """(common root, each path relative to it). Files from unrelated places (sharing only
    the filesystem root) are shown as ``folder/name``, so no server layout leaks out."""
    if not paths:
        return "", []
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
    if os.path.dirname(root) == root:  # "/" (or a drive): nothing shared
        return "", [os.path.join(os.path.basename(os.path.dirname(p)), os.path.basename(p))
                    for p in paths]
    return root, [os.path.relpath(p, root) for p in paths]


class ItemCatalog:
    """Ids, names, labels and relative paths of an index's items, in id order."""

    def __init__(self, ids: Sequence[int] | np.ndarray, paths: Sequence[str]) -> None:
        order = np.argsort(np.asarray(ids, np.int64), kind="stable")
        self.ids = np.asarray(ids, np.int64)[order]
        self.paths = [str(paths[i]) for i in order]
        self.names = [os.path.basename(p) for p in self.paths]
        self.root, self.relative = shown_paths(self.paths)
        folders = [os.path.basename(os.path.dirname(p)) for p in self.paths]
        self.has_labels = len(set(folders)) > 1
        labels = folders if self.has_labels else [""] * len(self.paths)
        self.label_names = sorted(set(labels))
        code_of = {name: n for n, name in enumerate(self.label_names)}
        self.label_codes = np.fromiter((code_of[x] for x in labels), np.int32, len(labels))
        self.counts = dict(sorted(Counter(labels).items())) if self.has_labels else {}
        self._lower = [n.lower() for n in self.names]
        self._position = {int(i): n for n, i in enumerate(self.ids)}
        self._by_path = {os.path.abspath(p): int(i) for i, p in zip(self.ids, self.paths)}
        self._matching = lru_cache(maxsize=64)(self._matching_positions)

    @classmethod
    def from_index(cls, index) -> ItemCatalog:
        """The catalog of an :class:`~transferkit.search.ImageIndex`."""
        return cls(index.ids, index.paths)

    def __len__(self) -> int:
        return len(self.ids)

    def label(self, position: int) -> str | None:
        return self.label_names[self.label_codes[position]] if self.has_labels else None

    def position(self, item_id: int) -> int | None:
        return self._position.get(int(item_id))

    def id_of_path(self, path: str) -> int | None:
        """The id of an indexed file (any spelling of its path), or None."""
        return self._by_path.get(os.path.abspath(path))

    def page(self, offset: int, limit: int, label: str | None = None,
             q: str | None = None) -> ItemPage:
        """Items ``offset .. offset+limit`` of those with ``label`` whose name contains ``q``
        (case-insensitive); the filtered row list is cached, so paging through it is cheap."""
        rows = self._matching(label or None, (q or "").strip().lower() or None)
        return ItemPage(len(rows), rows[offset:offset + limit])

    def _matching_positions(self, label: str | None, q: str | None) -> np.ndarray:
        if label is None:
            rows = np.arange(len(self.ids))
        elif label in self.label_names and self.has_labels:
            rows = np.flatnonzero(self.label_codes == self.label_names.index(label))
        else:
            rows = np.zeros(0, np.int64)
        if q:
            lower = self._lower
            rows = np.fromiter((r for r in rows.tolist() if q in lower[r]), np.int64)
        return rows
