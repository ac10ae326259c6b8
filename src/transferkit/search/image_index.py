"""Images -> a persistent similar-image index, embedded exactly like its queries will be."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.backbones import Backbone
from transferkit.data import DEFAULT_MAX_PIXELS, scan_images
from transferkit.errors import ImageLoadError, IncompatibleModelError, NotInIndexError
from transferkit.features import Embeddings, embed_images, embed_paths, resolve_backbone
from transferkit.search.kind_index import KindIndex
from transferkit.search.vector_index import VectorIndex
from transferkit.spec import describe_spec, ensure_compatible
from transferkit.utils import progress

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class SearchHit:
    """One neighbour: stable ``id``, file ``path``, ``distance`` (lower is closer).

    ``score`` is the cosine similarity for cosine indexes and ``1 / (1 + distance)`` for l2.
    """

    id: int
    path: str
    distance: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": self.path, "distance": self.distance, "score": self.score}


def image_spec(backbone) -> dict[str, Any]:
    """The identity an image index stores: the backbone's ``spec()`` plus ``kind: image``."""
    return {**backbone.spec(), "kind": "image"}


def backbone_from_spec(spec: dict[str, Any]) -> Backbone:
    """Recreate the backbone an index was built with, and prove it is the same one."""
    return Backbone.from_spec(spec, where=f"model {spec.get('source') or spec.get('name')}")


def _norm(path: str | os.PathLike) -> str:
    return os.path.abspath(os.fspath(path))


class ImageIndex(KindIndex):
    """A :class:`VectorIndex` whose items are image paths, plus the model that embeds them.

    Build with :func:`build_index`, reopen with :meth:`load`. Every query goes through the
    stored backbone and preprocessing; a query embedded any other way raises
    :class:`IncompatibleModelError`.
    """

    kind = "image"

    def __init__(self, index: VectorIndex, path: str | os.PathLike | None = None,
                 backbone=None) -> None:
        super().__init__(index, path)
        self.failures: list[tuple[str, str]] = []  # unreadable files of the last build/add
        self.ignored: list[str] = []  # files found there that are not images
        self.skipped: list[tuple[str, str]] = []
        self.runtime: dict[str, str] = {}  # engine + precision of the last embedded files
        self._backbone = None
        self._lookup: dict[str, int] | None = None
        if backbone is not None:
            self.set_backbone(backbone)

    def _wrong_kind(self, index: VectorIndex, found: str | None, path) -> Exception:
        hint = "; search it with --text \"...\"" if found == "text" else ""
        return ValueError(f"{path or 'index'}: not an image index (it holds "
                          f"{found or 'unlabelled'} vectors from "
                          f"{describe_spec(index.spec)}){hint}")

    # -- identity and model -----------------------------------------------------------------
    def set_backbone(self, backbone) -> None:
        """Use an already-loaded backbone for queries (must match the index's spec)."""
        ensure_compatible(self.spec, image_spec(backbone), where=self._where())
        self._backbone = backbone

    @property
    def backbone(self):
        """The index's model, recreated from the spec on first use."""
        if self._backbone is None:
            self._backbone = backbone_from_spec(self.spec)
        return self._backbone

    def _where(self) -> str:
        return str(self.path) if self.path else "index"

    # -- items ---------------------------------------------------------------------------
    @property
    def paths(self) -> list[str]:
        return self.index.items

    @property
    def ids(self) -> np.ndarray:
        return self.index.ids

    def _path_lookup(self) -> dict[str, int]:
        if self._lookup is None:
            self._lookup = {_norm(p): int(i) for i, p in zip(self.index.ids, self.index.items)}
        return self._lookup

    def contains_path(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` (any spelling of it) is a live entry: only those may be served."""
        return _norm(path) in self._path_lookup()

    def id_of(self, path: str | os.PathLike) -> int:
        try:
            return self._path_lookup()[_norm(path)]
        except KeyError:
            raise NotInIndexError(f"{path}: not in the index") from None

    # -- changes ---------------------------------------------------------------------------
    def add_embeddings(self, embeddings) -> np.ndarray:
        """Add rows of an :class:`~transferkit.features.Embeddings` made by the same model."""
        ensure_compatible(self.spec, _with_kind(embeddings.spec), where=self._where())
        self._lookup = None
        return self.index.add(embeddings.vectors, embeddings.paths)

    def add_paths(self, paths: Sequence[str | os.PathLike], batch_size: int = 32,
                  num_workers: int | None = None, chunk_size: int = 1024,
                  callback: ProgressCallback | None = None,
                  max_pixels: int = DEFAULT_MAX_PIXELS, engine: str = "auto",
                  precision: str = "f32") -> np.ndarray:
        """Embed and add new files (no rebuild). Already-indexed and unreadable files are
        skipped and listed in :attr:`skipped` / :attr:`failures`; :attr:`runtime` says which
        engine and precision embedded them (see :func:`~transferkit.features.embed_paths`)."""
        known = self._path_lookup()
        fresh, self.skipped = [], []
        for p in paths:
            if _norm(p) in known:
                self.skipped.append((str(p), "already in the index"))
            else:
                fresh.append(_norm(p))
        self.failures = []
        added = [np.zeros(0, np.int64)]
        for emb in _embed_chunks(fresh, self.backbone, batch_size, num_workers, chunk_size,
                                 callback, max_pixels, engine, precision):
            self.failures.extend(emb.failures)
            self.runtime = emb.runtime
            added.append(self.add_embeddings(emb))
        self._record_outcome()
        return np.concatenate(added)

    def _record_outcome(self) -> None:
        """Keep the last run's skipped and ignored files in the saved file's header."""
        self.index.notes["failures"] = [list(f) for f in self.failures]
        self.index.notes["ignored"] = list(self.ignored)

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        self._lookup = None
        return self.index.remove(ids)

    def remove_paths(self, paths: Sequence[str | os.PathLike]) -> int:
        return self.remove([self.id_of(p) for p in paths])

    # -- search ----------------------------------------------------------------------------
    def search_vectors(self, vectors: np.ndarray, k: int = 10,
                       spec: dict[str, Any] | None = None,
                       ef_search: int | None = None) -> list[list[SearchHit]]:
        """Search with ready vectors; pass the ``spec`` of the model that made them."""
        if spec is not None:
            ensure_compatible(self.spec, _with_kind(spec), where=self._where())
        return [[SearchHit(i, item, d, s) for i, item, d, s in row]
                for row in self.index.neighbours(vectors, k, ef_search=ef_search)]

    def search_embeddings(self, embeddings, k: int = 10) -> list[list[SearchHit]]:
        return self.search_vectors(embeddings.vectors, k, spec=embeddings.spec)

    def search_images(self, images: Sequence, k: int = 10, backbone=None,
                      engine: str = "torch", precision: str = "f32") -> list[list[SearchHit]]:
        """PIL images in, ``k`` hits each out. ``backbone`` defaults to the index's own."""
        model = self.backbone if backbone is None else backbone
        ensure_compatible(self.spec, image_spec(model), where=self._where())
        if not len(images):
            return []
        return self.search_vectors(embed_images(images, model, engine=engine,
                                                precision=precision), k)

    def search_paths(self, paths: Sequence[str | os.PathLike], k: int = 10,
                     batch_size: int = 32, engine: str = "auto",
                     precision: str = "f32") -> list[list[SearchHit]]:
        """Image files in (embedded by the same file pipeline as the index); an unreadable
        query raises :class:`~transferkit.data.ImageLoadError`."""
        if not len(paths):
            return []
        for p in paths:
            if Path(p).is_dir():
                raise IsADirectoryError(f"{p}: is a folder; give image files to search with")
        emb = embed_paths(paths, self.backbone, batch_size=batch_size, num_workers=0,
                          show_progress=False, engine=engine, precision=precision)
        if emb.failures:
            raise ImageLoadError(*emb.failures[0])
        return self.search_vectors(emb.vectors, k)

    # -- persistence -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, backbone=None) -> ImageIndex:
        return cls(VectorIndex.load(path), path=path, backbone=backbone)

    def info(self) -> dict[str, Any]:
        return {"path": str(self.path) if self.path else None, "size": len(self),
                "tombstones": self.index.num_tombstones, **self.index.params(),
                "model": describe_spec(self.spec), "spec": self.spec}

    def __repr__(self) -> str:
        return f"ImageIndex({self._where()!r}, size={len(self)}, model={describe_spec(self.spec)})"


def _with_kind(spec: dict[str, Any] | None) -> dict[str, Any]:
    spec = dict(spec or {})
    spec.setdefault("kind", "image")
    return spec


def _embed_chunks(paths: Sequence[str], backbone, batch_size: int, num_workers: int | None,
                  chunk_size: int, callback: ProgressCallback | None,
                  max_pixels: int = DEFAULT_MAX_PIXELS, engine: str = "auto",
                  precision: str = "f32") -> Iterator:
    """Embed in chunks so only one chunk of decoded images is alive at any time."""
    starts = range(0, len(paths), max(1, chunk_size))
    done = 0
    for start in progress(starts, desc=f"index ({backbone.name})", unit="chunk"):
        chunk = list(paths[start:start + chunk_size])
        emb = embed_paths(chunk, backbone, batch_size=batch_size, num_workers=num_workers,
                          show_progress=False, max_pixels=max_pixels, engine=engine,
                          precision=precision)
        done += len(chunk)
        yield emb
        if callback is not None:
            callback(done, len(paths))


def _list_sources(source) -> tuple[list[str], list[str]]:
    """(image files, ignored non-image files) under ``source``, as absolute paths."""
    scan = scan_images(source)
    if not scan.images:
        raise FileNotFoundError(f"{source}: no image files found")
    return [_norm(p) for p in scan.images], [_norm(p) for p in scan.ignored]


def _is_parquet(source) -> bool:
    return isinstance(source, (str, os.PathLike)) and Path(source).suffix == ".parquet" \
        and Path(source).is_file()


def build_index(source: str | os.PathLike | Sequence[str | os.PathLike],
                backbone="efficientnet_lite0", *, metric: str = "cosine",
                method: str = "hnsw", M: int = 32, ef_construction: int = 100,
                ef_search: int = 64, image_size: int | None = None, batch_size: int = 32,
                num_workers: int | None = None, chunk_size: int = 1024,
                output: str | os.PathLike | None = None,
                callback: ProgressCallback | None = None,
                max_pixels: int = DEFAULT_MAX_PIXELS, engine: str = "auto",
                precision: str = "f32") -> ImageIndex:
    """Index a folder, a list of files/folders, or an embeddings parquet (``transferkit embed``).

    Files are embedded chunk by chunk (memory bounded by ``chunk_size`` decoded images) and
    unreadable ones are skipped and listed in ``.failures``. ``output`` is written only once
    the whole build succeeded (temp file + rename), so a crash keeps the previous index.
    ``callback(done, total)`` runs after each chunk; raising from it aborts the build.
    ``engine`` and ``precision`` as in :func:`~transferkit.features.embed_paths`.
    """
    params = dict(metric=metric, method=method, M=M, ef_construction=ef_construction,
                  ef_search=ef_search)
    if output is not None and Path(output).is_dir():  # fail before hours of embedding
        raise IsADirectoryError(f"{output}: is a folder; an index is saved as one file")
    if isinstance(source, Embeddings) or _is_parquet(source):
        emb = source if isinstance(source, Embeddings) else Embeddings.load(source)
        if not emb.spec:
            raise ValueError(f"{source}: embeddings carry no model spec; cannot index them")
        spec = _with_kind(emb.spec)
        index = ImageIndex(VectorIndex(emb.dim, spec=spec, **params), path=output)
        index.add_embeddings(emb)
        index.failures, index.ignored = list(emb.failures), list(emb.ignored)
        index.runtime = dict(emb.runtime)
        index._record_outcome()
    else:
        files, ignored = _list_sources(source)
        model = resolve_backbone(backbone, image_size).eval()
        index = ImageIndex(VectorIndex(model.num_features, spec=image_spec(model), **params),
                           path=output, backbone=model)
        index.ignored = ignored
        index.add_paths(files, batch_size=batch_size, num_workers=num_workers,
                        chunk_size=chunk_size, callback=callback, max_pixels=max_pixels,
                        engine=engine, precision=precision)
        if not len(index):
            raise ValueError(f"{source}: none of the {len(files)} image files could be read "
                             f"(first: {index.failures[0][0]}: {index.failures[0][1]})")
    if output is not None:
        index.save(output)
    return index


__all__ = ["ImageIndex", "SearchHit", "build_index", "backbone_from_spec", "image_spec",
           "IncompatibleModelError"]
