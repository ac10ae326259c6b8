"""Clips -> a persistent similarity index; queried with clips, embedded by the same encoder.

The file is the search package's :class:`VectorIndex` (items = clip paths, spec = the audio
encoder's ``spec()`` with ``"kind": "audio"``); the encoder is rebuilt from that spec.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from transferkit.audio.embed import embed_clips, resolve_encoder
from transferkit.audio.encoders import AudioEncoder
from transferkit.audio.io import list_audio
from transferkit.audio.registry import audio_encoder_from_spec
from transferkit.errors import IncompatibleModelError
from transferkit.search import KindIndex


def is_audio_index(path: str | os.PathLike) -> bool:
    """Cheap check (header only) whether an index file holds audio embeddings."""
    from transferkit.search import VectorIndex

    return VectorIndex.kind_of(path) == "audio"


class AudioIndex(KindIndex):
    """A :class:`VectorIndex` of clips plus the encoder that embeds them and their queries."""

    kind, what = "audio", "audio index"

    def __init__(self, index, encoder: AudioEncoder | None = None,
                 path: str | os.PathLike | None = None) -> None:
        super().__init__(index, path)
        self._encoder = encoder
        self.failures: list[tuple[str, str]] = []

    def _wrong_kind(self, index, found: str | None, path) -> Exception:
        return IncompatibleModelError(
            f"{path or 'index'}: not an audio index (it holds {found or 'image'} embeddings "
            f"from {(index.spec or {}).get('name', '?')}); query it without --audio")

    @property
    def encoder(self) -> AudioEncoder:
        if self._encoder is None:
            self._encoder = audio_encoder_from_spec(self.spec, where=str(self.path or "index"))
        return self._encoder

    def add_paths(self, paths: Sequence[str | os.PathLike]):
        """Embed and append clips; refused files are listed in :attr:`failures`."""
        good, vectors, self.failures = embed_clips(list(paths), self.encoder)
        return self.index.add(vectors, [str(p) for p in good]) if good else []

    def search_paths(self, queries: Sequence[str | os.PathLike], k: int = 5
                     ) -> tuple[list[dict], list[tuple[str, str]]]:
        """Rows ``{query, hits: [{id, path, distance, score}]}`` nearest first, and refused
        queries; ``score`` is cosine similarity on a cosine index, ``1 / (1 + d)`` on l2."""
        good, vectors, failures = embed_clips(list(queries), self.encoder)
        self.index.check_spec(self.encoder.spec(), where=str(self.path or "index"))
        if not good:
            return [], failures
        rows = [{"query": str(query), "hits": [{"id": i, "path": item, "distance": d, "score": s}
                                               for i, item, d, s in hits]}
                for query, hits in zip(good, self.index.neighbours(vectors, k))]
        return rows, failures

    @classmethod
    def load(cls, path: str | os.PathLike) -> AudioIndex:
        from transferkit.search import VectorIndex

        return cls(VectorIndex.load(path), path=path)


def build_audio_index(source: str | os.PathLike | Sequence[str | os.PathLike],
                      encoder: str | AudioEncoder = "logmel", *, metric: str = "cosine",
                      method: str = "hnsw", output: str | os.PathLike | None = None,
                      **index_params: Any) -> AudioIndex:
    """Index every clip under a folder (or a list of files)."""
    from transferkit.search import VectorIndex

    paths = list_audio(source) if isinstance(source, (str, os.PathLike)) else list(source)
    if not paths:
        raise ValueError(f"{source}: no audio files to index")
    encoder = resolve_encoder(encoder)
    spec = encoder.spec()
    index = AudioIndex(VectorIndex(int(spec["num_features"]), metric=metric, method=method,
                                   spec=spec, **index_params), encoder=encoder)
    index.add_paths(paths)
    if not len(index):
        raise ValueError(f"{source}: none of the {len(paths)} files is usable audio "
                         f"(first: {index.failures[0][0]}: {index.failures[0][1]})")
    if output is not None:
        index.save(output)
    return index
