"""Frozen-backbone features computed once per (backbone spec, file list) and cached.

Re-fitting another head, or the advisor's probe, then costs seconds instead of a full
pass of the network over every image.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from transferkit.backbones import Backbone
from transferkit.data import DEFAULT_MAX_PIXELS
from transferkit.features import Embeddings, embed_paths
from transferkit.train.data import LabelledImages
from transferkit.utils import cache_dir


def feature_cache_path(data: LabelledImages, backbone: Backbone,
                       max_pixels: int = DEFAULT_MAX_PIXELS) -> Path:
    """Keyed by model, files and pixel limit (another limit skips other files)."""
    spec = json.dumps(backbone.spec(), sort_keys=True)
    key = hashlib.sha256(f"{spec}\n{data.fingerprint()}\n{max_pixels}".encode()).hexdigest()[:24]
    return cache_dir("features") / f"{backbone.name}-{key}.parquet"


def cached_features(data: LabelledImages, backbone: Backbone, batch_size: int = 32,
                    num_workers: int | None = None, cache: bool = True,
                    max_pixels: int = DEFAULT_MAX_PIXELS
                    ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """-> (features of the readable images, their row indices into ``data``, failures)."""
    path = feature_cache_path(data, backbone, max_pixels)
    # Rows are matched by absolute path: the cache key is built from absolute paths, so a
    # cached table must hold them too (callers may pass relative paths from any cwd).
    absolute = [os.path.abspath(p) for p in data.paths]
    index = {p: i for i, p in enumerate(absolute)}
    emb = None
    if cache and path.exists():
        try:
            emb = Embeddings.load(path)
        except Exception:  # noqa: BLE001 - a damaged cache entry is recomputed
            emb = None
        if emb is not None and not all(p in index for p in emb.paths):
            emb = None  # written by an older version with relative paths
    if emb is None:
        emb = embed_paths(absolute, backbone, batch_size=batch_size, num_workers=num_workers,
                          max_pixels=max_pixels)
        if cache:
            emb.save(path)
    rows = np.asarray([index[p] for p in emb.paths], dtype=np.int64)
    return emb.vectors, rows, list(emb.failures)


def clear_feature_cache() -> int:
    removed = 0
    for file in cache_dir("features").glob("*.parquet"):
        os.unlink(file)
        removed += 1
    return removed
