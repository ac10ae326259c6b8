"""A vector index with stable ids, removal and crash-safe persistence, on top of faiss.

faiss HNSW has no native removal, so removed rows become tombstones that searches filter out
(faiss ``IDSelector``); once tombstones exceed ``rebuild_threshold`` of the rows the index is
rebuilt from the live vectors (held by the index's own flat storage). Ids handed to callers
never change, whatever happens to faiss's internal row numbers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.errors import IncompatibleModelError, NotInIndexError
from transferkit.spec import ensure_compatible
from transferkit.utils import atomic_path

FORMAT = "transferkit-index/1"
METRICS = ("cosine", "l2")
METHODS = ("hnsw", "exact")
STORAGES = ("float32", "uint8")


def _faiss():
    import faiss

    return faiss


class VectorIndex:
    """Nearest-neighbour index over vectors, each with a string item (a path, a text id).

    Parameters are stored as given (scikit-learn style); state lives in attributes ending
    with ``_``. ``metric="cosine"`` normalises vectors and uses inner product; distances are
    returned as ``1 - cosine`` (cosine) or Euclidean distance (l2). ``method="exact"`` is the
    brute-force ground truth with the same API. ``storage="uint8"`` keeps vectors whose
    values are whole numbers 0-255 (raw pixels) as bytes, losslessly (faiss 8-bit direct
    scalar quantiser): 4x less memory and faster search; l2 only.
    """

    def __init__(self, dim: int, metric: str = "cosine", method: str = "hnsw", M: int = 32,
                 ef_construction: int = 100, ef_search: int = 64,
                 spec: dict[str, Any] | None = None, rebuild_threshold: float = 0.25,
                 storage: str = "float32") -> None:
        self.dim = dim
        self.metric = metric
        self.method = method
        self.M = M
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.spec = spec
        self.rebuild_threshold = rebuild_threshold
        self.storage = storage
        self._validate()
        # Extra header fields of the last build/add (e.g. skipped files); not part of the index.
        self.notes: dict[str, Any] = {}
        self.index_ = self._new_faiss_index()
        self.pos_ids_ = np.zeros(0, np.int64)      # faiss row -> stable id
        self.dead_ = np.zeros(0, bool)            # faiss row -> tombstoned?
        self.items_: list[str] = []                # faiss row -> item
        self.id_to_pos_: dict[int, int] = {}       # live ids only
        self.next_id_ = 0
        self._selector = None

    # -- construction -------------------------------------------------------------------
    def _validate(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if int(self.dim) <= 0:
            raise ValueError(f"dim must be positive, got {self.dim}")
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}, got {self.storage!r}")
        if self.storage == "uint8" and self.metric != "l2":
            raise ValueError("storage='uint8' holds raw 0-255 values: use metric='l2'")
        if not 0 < self.rebuild_threshold <= 1:
            raise ValueError(f"rebuild_threshold must be in (0, 1], got {self.rebuild_threshold}")

    def _new_faiss_index(self):
        faiss = _faiss()
        metric = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        d = int(self.dim)
        if self.storage == "uint8":
            direct = faiss.ScalarQuantizer.QT_8bit_direct
            index = faiss.IndexScalarQuantizer(d, direct, metric) if self.method == "exact" \
                else faiss.IndexHNSWSQ(d, direct, int(self.M), metric)
            if not index.is_trained:  # 8-bit direct has nothing to learn
                index.train(np.zeros((1, d), np.float32))
        elif self.method == "exact":
            return faiss.IndexFlat(d, metric)
        else:
            index = faiss.IndexHNSWFlat(d, int(self.M), metric)
        if self.method == "exact":
            return index
        index.hnsw.efConstruction = int(self.ef_construction)
        index.hnsw.efSearch = int(self.ef_search)
        return index

    @property
    def raw_index(self):
        """The underlying faiss index (rows are internal positions, not stable ids)."""
        return self.index_

    def params(self) -> dict[str, Any]:
        return {"dim": int(self.dim), "metric": self.metric, "method": self.method,
                "M": int(self.M), "ef_construction": int(self.ef_construction),
                "ef_search": int(self.ef_search), "rebuild_threshold": self.rebuild_threshold,
                "storage": self.storage}

    # -- size and items -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.id_to_pos_)

    @property
    def num_tombstones(self) -> int:
        return int(self.dead_.sum())

    @property
    def ids(self) -> np.ndarray:
        """Live ids in insertion order."""
        return self.pos_ids_[~self.dead_]

    @property
    def items(self) -> list[str]:
        """Live items, aligned with :attr:`ids`."""
        return [item for item, dead in zip(self.items_, self.dead_) if not dead]

    def item(self, id_: int) -> str:
        pos = self.id_to_pos_.get(int(id_))
        if pos is None:
            raise NotInIndexError(f"id {id_} is not in the index (never added, or removed)")
        return self.items_[pos]

    def __contains__(self, id_: object) -> bool:
        return isinstance(id_, (int, np.integer)) and int(id_) in self.id_to_pos_

    # -- vectors ------------------------------------------------------------------------
    def _prepare(self, vectors: np.ndarray, what: str) -> np.ndarray:
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{what}: expected vectors of dim {self.dim}, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"{what}: vectors contain NaN or infinite values")
        if self.metric == "cosine":
            x = np.array(x, dtype=np.float32, order="C", copy=True)
            _faiss().normalize_L2(x)
        else:
            x = np.ascontiguousarray(x)
        return x

    def add(self, vectors: np.ndarray, items: Sequence[str]) -> np.ndarray:
        """Append vectors; returns their new stable ids (no rebuild)."""
        x = self._prepare(vectors, "add")
        if self.storage == "uint8" and len(x) and (
                x.min() < 0 or x.max() > 255 or not np.array_equal(x, np.round(x))):
            raise ValueError("add: storage='uint8' keeps whole numbers 0-255 only (raw pixel "
                             "values); use storage='float32' for other vectors")
        items = [str(i) for i in items]
        if len(items) != len(x):
            raise ValueError(f"add: {len(x)} vectors but {len(items)} items")
        ids = np.arange(self.next_id_, self.next_id_ + len(x), dtype=np.int64)
        start = len(self.items_)
        if len(x):
            self.index_.add(x)
        self.pos_ids_ = np.concatenate([self.pos_ids_, ids])
        self.dead_ = np.concatenate([self.dead_, np.zeros(len(x), bool)])
        self.items_.extend(items)
        self.id_to_pos_.update((int(i), start + n) for n, i in enumerate(ids))
        self.next_id_ += len(x)
        return ids

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Tombstone ``ids`` (unknown ones raise NotInIndexError, a KeyError); rebuild past the
        threshold.

        Returns how many were removed.
        """
        ids = [int(i) for i in np.asarray(ids, dtype=np.int64).reshape(-1)]
        missing = [i for i in ids if i not in self.id_to_pos_]
        if missing:
            raise NotInIndexError(f"ids not in the index: {missing[:10]}")
        for i in set(ids):
            self.dead_[self.id_to_pos_.pop(i)] = True
        self._selector = None
        if len(self.dead_) and self.num_tombstones > self.rebuild_threshold * len(self.dead_):
            self.compact()
        return len(set(ids))

    def vectors(self, ids: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Stored vectors (normalised for cosine) of ``ids`` (default: all live ids)."""
        ids = self.ids if ids is None else np.asarray(ids, dtype=np.int64).reshape(-1)
        pos = [self.id_to_pos_[int(i)] for i in ids]
        if not pos:
            return np.zeros((0, self.dim), np.float32)
        return np.vstack([self._reconstruct(p) for p in _runs(pos)])

    def _reconstruct(self, run: tuple[int, int]) -> np.ndarray:
        start, stop = run
        return self.index_.reconstruct_n(start, stop - start)

    def compact(self) -> None:
        """Rebuild the faiss structure from live rows only (drops every tombstone)."""
        live = np.flatnonzero(~self.dead_)
        chunks = [self._reconstruct(run) for run in _runs(live.tolist())]
        fresh = self._new_faiss_index()
        for chunk in chunks:
            fresh.add(chunk)
        self.index_ = fresh
        self.pos_ids_ = self.pos_ids_[live]
        self.items_ = [self.items_[p] for p in live]
        self.dead_ = np.zeros(len(live), bool)
        self.id_to_pos_ = {int(i): n for n, i in enumerate(self.pos_ids_)}
        self._selector = None

    # -- search -------------------------------------------------------------------------
    def _search_params(self, ef_search: int | None):
        faiss = _faiss()
        dead = self.num_tombstones
        if dead and self._selector is None:
            # Bitmap of live rows: one bit test per visited node.
            bits = np.packbits(~self.dead_, bitorder="little")
            self._selector = (faiss.IDSelectorBitmap(len(self.dead_), faiss.swig_ptr(bits)),
                              bits)
        sel = self._selector[0] if dead else None
        if self.method == "hnsw":
            ef = int(ef_search or self.ef_search)
            if sel is None and ef == self.index_.hnsw.efSearch:
                return None
            return faiss.SearchParametersHNSW(efSearch=ef, sel=sel) if sel is not None \
                else faiss.SearchParametersHNSW(efSearch=ef)
        return faiss.SearchParameters(sel=sel) if sel is not None else None

    def search(self, vectors: np.ndarray, k: int = 10, ef_search: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, ids)``, each (n_queries, k), nearest first; id -1 where fewer exist."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        x = self._prepare(vectors, "search")
        if self.method == "hnsw":
            self.index_.hnsw.efSearch = int(self.ef_search)
        params = self._search_params(ef_search)
        if self.index_.ntotal == 0:
            return (np.full((len(x), k), np.inf, np.float32), np.full((len(x), k), -1, np.int64))
        if params is None:
            dist, pos = self.index_.search(x, k)
        else:
            dist, pos = self.index_.search(x, k, params=params)
        missing = pos < 0
        ids = self.pos_ids_[np.where(missing, 0, pos)]
        ids[missing] = -1
        if self.metric == "cosine":
            dist = np.maximum(1.0 - dist, 0.0)
        else:
            dist = np.sqrt(np.maximum(dist, 0.0))
        dist[missing] = np.inf
        return dist, ids

    def neighbours(self, vectors: np.ndarray, k: int = 10, ef_search: int | None = None
                   ) -> list[list[tuple[int, str, float, float]]]:
        """Per query ``(id, item, distance, score)`` nearest first, empty slots dropped;
        ``score`` is the cosine similarity on a cosine index and ``1 / (1 + distance)`` on l2,
        so that higher is closer for both."""
        dist, ids = self.search(vectors, k, ef_search=ef_search)
        cosine = self.metric == "cosine"
        return [[(i, self.item(i), d, 1.0 - d if cosine else 1.0 / (1.0 + d))
                 for d, i in zip(drow.tolist(), irow.tolist()) if i >= 0]
                for drow, irow in zip(dist, ids)]

    @classmethod
    def kind_of(cls, path: str | os.PathLike) -> str | None:
        """What an index file holds (``image``, ``text``, ``audio``), from its header only."""
        return (cls.read_header(path).get("spec") or {}).get("kind")

    # -- identity -----------------------------------------------------------------------
    def check_spec(self, spec: dict[str, Any] | None, where: str = "index") -> None:
        """Raise :class:`IncompatibleModelError` unless ``spec`` embeds like this index."""
        ensure_compatible(self.spec, spec, where)

    # -- persistence --------------------------------------------------------------------
    def _header(self) -> dict[str, Any]:
        faiss = _faiss()
        return {"format": FORMAT, "library": f"faiss-cpu {faiss.__version__}",
                "params": self.params(), "spec": self.spec, "next_id": int(self.next_id_),
                "size": len(self), "tombstones": self.num_tombstones, **self.notes}

    def save(self, path: str | os.PathLike) -> Path:
        """One safetensors file, written to a temp name then renamed: a crash keeps the old one."""
        from safetensors.numpy import save_file

        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(f"{path}: is a folder; an index is saved as one file")
        tensors = {
            "faiss_index": _faiss().serialize_index(self.index_),
            "ids": self.pos_ids_,
            "tombstones": self.dead_.astype(np.uint8),
            "items_json": np.frombuffer(json.dumps(self.items_).encode("utf-8"), np.uint8),
        }
        with atomic_path(path, suffix=".tkindex") as tmp:
            save_file(tensors, str(tmp), metadata={"transferkit": json.dumps(self._header())})
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        return path

    @staticmethod
    def read_header(path: str | os.PathLike) -> dict[str, Any]:
        """Metadata only (cheap): params, spec, size; for ``index info`` and checks."""
        from safetensors import safe_open

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: index file not found")
        if path.is_dir():
            raise IsADirectoryError(f"{path}: is a folder, not an index file")
        try:
            with safe_open(str(path), framework="numpy") as fh:
                meta = fh.metadata() or {}
        except Exception as exc:  # noqa: BLE001 - name the file in the error
            raise ValueError(f"{path}: not a transferkit index file ({exc})") from exc
        if "transferkit" not in meta:
            raise ValueError(f"{path}: not a transferkit index file (no header)")
        header = json.loads(meta["transferkit"])
        if header.get("format") != FORMAT:
            raise ValueError(f"{path}: unsupported index format {header.get('format')!r}")
        return header

    @classmethod
    def load(cls, path: str | os.PathLike) -> VectorIndex:
        from safetensors.numpy import load_file

        header = cls.read_header(path)
        arrays = load_file(str(path))
        params = dict(header["params"])
        index = cls(params.pop("dim"), spec=header.get("spec"), **params)
        index.index_ = _faiss().deserialize_index(arrays["faiss_index"])
        index.pos_ids_ = arrays["ids"].astype(np.int64)
        index.dead_ = arrays["tombstones"].astype(bool)
        index.items_ = json.loads(arrays["items_json"].tobytes().decode("utf-8"))
        if not (len(index.items_) == len(index.pos_ids_) == len(index.dead_)
                == index.index_.ntotal):
            raise ValueError(f"{path}: index file is inconsistent (row counts differ)")
        index.id_to_pos_ = {int(i): n for n, i in enumerate(index.pos_ids_)
                            if not index.dead_[n]}
        index.next_id_ = int(header["next_id"])
        index.notes = {k: header[k] for k in ("failures", "ignored") if k in header}
        return index

    def __repr__(self) -> str:
        return (f"VectorIndex(dim={self.dim}, metric={self.metric!r}, method={self.method!r}, "
                f"size={len(self)}, tombstones={self.num_tombstones})")


def _runs(positions: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive stretches ``[start, stop)`` of positions, for bulk reconstruct."""
    runs: list[tuple[int, int]] = []
    for p in positions:
        if runs and runs[-1][1] == p:
            runs[-1] = (runs[-1][0], p + 1)
        else:
            runs.append((p, p + 1))
    return runs


__all__ = ["VectorIndex", "IncompatibleModelError", "METRICS", "METHODS", "FORMAT"]
