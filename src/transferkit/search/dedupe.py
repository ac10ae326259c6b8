"""Near-duplicate groups: pairs closer than a threshold, joined transitively (union-find)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# Cosine distance for Lite0 at 224 px: halved / re-encoded copies of the sample photos
# measured 0.04-0.18, different photos >= 0.7 (docs/readme-search.md). Lower resolutions
# shrink every distance, so pass a smaller threshold there (e.g. 0.1 at 64 px).
DEFAULT_THRESHOLD = 0.2


@dataclass
class DuplicateGroup:
    """Items that are near-duplicates of each other; ``max_distance`` is the widest link."""

    items: list[str]
    ids: list[int]
    max_distance: float
    pairs: list[tuple[int, int, float]] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return self.items

    def to_dict(self) -> dict:
        return {"paths": self.items, "ids": self.ids, "max_distance": self.max_distance}


def _find(parent: dict[int, int], x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def duplicate_groups(index, threshold: float = DEFAULT_THRESHOLD, k: int = 10,
                     batch: int = 4096) -> list[DuplicateGroup]:
    """Groups within a :class:`~transferkit.search.VectorIndex` (each item's ``k`` nearest
    neighbours are checked, so groups larger than ``k`` are still joined transitively)."""
    ids = index.ids
    parent: dict[int, int] = {}
    links: list[tuple[int, int, float]] = []
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        dist, nbrs = index.search(index.vectors(chunk), min(k + 1, max(len(index), 1)))
        for a, drow, nrow in zip(chunk.tolist(), dist, nbrs):
            for d, b in zip(drow.tolist(), nrow.tolist()):
                if b < 0 or b == a or d > threshold:
                    continue
                links.append((min(a, b), max(a, b), float(d)))
                parent.setdefault(a, a)
                parent.setdefault(b, b)
                ra, rb = _find(parent, a), _find(parent, b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for node in parent:
        members.setdefault(_find(parent, node), []).append(node)
    pair_of: dict[int, list[tuple[int, int, float]]] = {}
    for a, b, d in sorted(set(links)):
        pair_of.setdefault(_find(parent, a), []).append((a, b, d))
    groups = []
    for root, nodes in members.items():
        nodes.sort()
        pairs = pair_of.get(root, [])
        groups.append(DuplicateGroup([index.item(n) for n in nodes], nodes,
                                     max((d for _, _, d in pairs), default=0.0), pairs))
    groups.sort(key=lambda g: (-len(g.ids), g.ids[0]))
    return groups


@dataclass
class DuplicateReport:
    """Result of :func:`find_duplicates`: iterate it for the groups."""

    groups: list[DuplicateGroup]
    threshold: float
    num_items: int
    failures: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files found that are not images

    def __iter__(self):
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i: int) -> DuplicateGroup:
        return self.groups[i]


def find_duplicates(source, threshold: float = DEFAULT_THRESHOLD, k: int = 10,
                    backbone="efficientnet_lite0", image_size: int | None = None,
                    **build_kwargs) -> DuplicateReport:
    """Near-duplicate groups in a folder / list of files, an embeddings parquet, an
    :class:`ImageIndex` or :class:`VectorIndex` (or an index file).

    ``threshold`` is a cosine distance (``1 - cosine similarity``) for cosine indexes and a
    Euclidean distance for l2 ones. Unreadable files are skipped and listed in ``failures``.
    """
    from transferkit.data import IMAGE_EXTENSIONS
    from transferkit.search.image_index import ImageIndex, build_index
    from transferkit.search.vector_index import VectorIndex

    failures: list[tuple[str, str]] = []
    ignored: list[str] = []
    if isinstance(source, ImageIndex):
        index = source.index
    elif isinstance(source, VectorIndex):
        index = source
    elif isinstance(source, (str, os.PathLike)) and os.path.isfile(source) \
            and not str(source).endswith(".parquet") \
            and os.path.splitext(source)[1].lower() not in IMAGE_EXTENSIONS:
        index = VectorIndex.load(source)
    else:
        built = build_index(source, backbone, image_size=image_size, **build_kwargs)
        index, failures, ignored = built.index, built.failures, built.ignored
    return DuplicateReport(duplicate_groups(index, threshold, k), threshold, len(index),
                           list(failures), list(ignored))


__all__ = ["DuplicateGroup", "DuplicateReport", "find_duplicates", "duplicate_groups",
           "DEFAULT_THRESHOLD"]
