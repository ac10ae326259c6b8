"""Texts -> a persistent similarity index, with the encoder that embeds its queries.

The index file is the search package's :class:`VectorIndex` (items = the texts, spec = the
encoder's ``spec()`` with ``"kind": "text"``). A fitted encoder (TF-IDF, GloVe idf) cannot be
rebuilt from a spec, so it is saved beside the index as ``<index>.encoder/``; the sentence
model and the GloVe mean are rebuilt from the spec alone (their weights hash is checked).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.errors import IncompatibleModelError
from transferkit.search import KindIndex
from transferkit.text.datasets import TextDataset, read_texts
from transferkit.text.registry import TextEncoder, create_text_encoder, encoder_from_spec


@dataclass(frozen=True)
class TextHit:
    """One neighbour: stable index ``id``, the ``text``, ``distance`` (lower is closer) and
    ``score`` (cosine similarity for cosine indexes, ``1 / (1 + distance)`` for l2)."""

    id: int
    text: str
    distance: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "distance": self.distance,
                "score": self.score}


def encoder_dir_for(index_path: str | os.PathLike) -> Path:
    """Where a text index keeps its fitted encoder: ``<index>.encoder/`` beside the file."""
    path = Path(index_path)
    return path.with_name(path.name + ".encoder")


def is_text_index(path: str | os.PathLike) -> bool:
    """Cheap check (header only) whether an index file holds text embeddings."""
    from transferkit.search import VectorIndex

    return VectorIndex.kind_of(path) == "text"


class TextIndex(KindIndex):
    """A :class:`VectorIndex` of texts plus the encoder that embeds them and their queries."""

    kind, what = "text", "text index"

    def __init__(self, index, encoder: TextEncoder | None = None,
                 path: str | os.PathLike | None = None) -> None:
        super().__init__(index, path)
        self._encoder = encoder
        self.failures: list[tuple[str, str]] = []

    def _wrong_kind(self, index, found: str | None, path) -> Exception:
        return IncompatibleModelError(
            f"{path or 'index'}: not a text index (it holds {found or 'image'} embeddings "
            f"from {(index.spec or {}).get('name', '?')}); search it with an image, not --text")

    @property
    def encoder(self) -> TextEncoder:
        """The index's encoder, rebuilt from the spec (and ``<index>.encoder/``) on first use."""
        if self._encoder is None:
            directory = encoder_dir_for(self.path) if self.path is not None else None
            self._encoder = encoder_from_spec(self.spec, directory)
        return self._encoder

    @property
    def texts(self) -> list[str]:
        return self.index.items

    def add_texts(self, texts: Sequence[str], batch: int = 1024) -> np.ndarray:
        """Embed and append texts; ones the encoder maps to a zero vector (TF-IDF: no known
        word) are skipped and listed in :attr:`failures`."""
        from transferkit.utils import progress

        self.failures = []
        added = [np.zeros(0, np.int64)]
        starts = range(0, len(texts), batch)
        for start in progress(starts, desc=f"index ({self.spec.get('name')})", unit="chunk"):
            chunk = [str(t) for t in texts[start:start + batch]]
            vectors = self.encoder.transform(chunk)
            ok = np.linalg.norm(vectors, axis=1) > 0
            self.failures.extend((t[:80], "no word known to the encoder")
                                 for t, good in zip(chunk, ok) if not good)
            if ok.any():
                added.append(self.index.add(vectors[ok], [t for t, g in zip(chunk, ok) if g]))
        return np.concatenate(added)

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        return self.index.remove(ids)

    def search_texts(self, queries: Sequence[str], k: int = 5) -> list[list[TextHit]]:
        """Each query embedded by the index's own encoder; ``k`` hits each, nearest first."""
        if isinstance(queries, str):
            queries = [queries]
        if not queries:
            return []
        vectors = self.encoder.transform(list(queries))
        for query, vec in zip(queries, vectors):
            if not np.any(vec):
                raise ValueError(f"query {query[:60]!r}: none of its words is in the index's "
                                 f"{self.spec.get('name')} vocabulary; nothing to compare")
        return self.search_vectors(vectors, k, spec=self.encoder.spec())

    def search_vectors(self, vectors: np.ndarray, k: int = 5,
                       spec: dict[str, Any] | None = None) -> list[list[TextHit]]:
        """Search with ready vectors; ``spec`` (of the model that made them) is checked."""
        if spec is not None:
            if spec.get("kind") != "text":
                raise IncompatibleModelError(
                    f"{self.path or 'index'}: text index ({self.spec.get('name')}) cannot be "
                    f"queried with {spec.get('kind') or 'image'} embeddings "
                    f"({spec.get('name', '?')})")
            self.index.check_spec(spec, where=str(self.path or "index"))
        return [[TextHit(i, item, d, s) for i, item, d, s in row]
                for row in self.index.neighbours(vectors, k)]

    def _before_save(self, target: Path) -> None:
        """A fitted encoder travels beside the index file, in ``<path>.encoder/``."""
        if self.encoder.requires_fit:
            self.encoder.save(encoder_dir_for(target))

    @classmethod
    def load(cls, path: str | os.PathLike, encoder: TextEncoder | None = None) -> TextIndex:
        from transferkit.search import VectorIndex

        return cls(VectorIndex.load(path), encoder=encoder, path=path)

    def info(self) -> dict[str, Any]:
        return {"path": str(self.path) if self.path else None, "size": len(self),
                **self.index.params(), "spec": self.spec}


def build_text_index(source: str | os.PathLike | Sequence[str] | TextDataset,
                     encoder: str | TextEncoder = "minilm", *, metric: str = "cosine",
                     method: str = "hnsw", text_column: str = "text",
                     output: str | os.PathLike | None = None,
                     encoder_params: dict[str, Any] | None = None,
                     **index_params: Any) -> TextIndex:
    """Index a .txt/.csv file, a :class:`TextDataset` or a list of texts.

    A TF-IDF encoder (by name) is fitted on the indexed texts first.
    """
    from transferkit.search import VectorIndex

    if isinstance(source, (str, os.PathLike)):
        texts = read_texts(source, text_column=text_column, label_column=None).texts
    elif isinstance(source, TextDataset):
        texts = source.texts
    else:
        texts = [str(t) for t in source]
    if not texts:
        raise ValueError("build_text_index: no texts to index")
    if isinstance(encoder, str):
        encoder = create_text_encoder(encoder, **(encoder_params or {}))
        if encoder.requires_fit:
            encoder.fit(texts)
    spec = encoder.spec()
    index = VectorIndex(int(spec["num_features"]), metric=metric, method=method, spec=spec,
                        **index_params)
    text_index = TextIndex(index, encoder=encoder)
    text_index.add_texts(texts)
    if output is not None:
        text_index.save(output)
    return text_index
