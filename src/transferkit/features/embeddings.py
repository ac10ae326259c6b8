"""A table of (path, vector) rows plus the identity of the model that made the vectors."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from transferkit.utils import atomic_path

FORMAT = "transferkit-embeddings/1"


@dataclass
class Embeddings:
    """Rows of ``vectors`` belong to ``paths`` (or text ids); ``spec`` names the embedder.

    ``failures`` lists inputs that were skipped, each with its reason; ``ignored`` the files
    found under the input that are not images (so every file is accounted for). ``runtime``
    says what ran the model (``{"engine": "openvino", "precision": "bf16"}``): not part of the
    model's identity, but a reader can tell f32 vectors from bf16 ones.
    """

    FORMAT: ClassVar[str] = FORMAT

    paths: list[str]
    vectors: np.ndarray
    spec: dict[str, Any] = field(default_factory=dict)
    labels: list[str] | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    # keyword-only: positional arguments past ``failures`` would be easy to mix up
    ignored: list[str] = field(default_factory=list, kw_only=True)
    runtime: dict[str, str] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or len(self.paths) != self.vectors.shape[0]:
            raise ValueError(f"{len(self.paths)} paths but vectors of shape {self.vectors.shape}")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def save(self, path: str | os.PathLike) -> Path:
        """Parquet: one row per input, model identity in the schema metadata. Atomic."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        flat = pa.array(self.vectors.reshape(-1), type=pa.float32())
        columns = {"path": pa.array(self.paths, type=pa.string()),
                   "embedding": pa.FixedSizeListArray.from_arrays(flat, self.dim)}
        if self.labels is not None:
            columns["label"] = pa.array([str(v) for v in self.labels], type=pa.string())
        meta = {"format": FORMAT, "spec": self.spec, "failures": self.failures,
                "ignored": self.ignored, "runtime": self.runtime}
        table = pa.table(columns).replace_schema_metadata(
            {b"transferkit": json.dumps(meta).encode()})
        with atomic_path(path, suffix=".parquet") as tmp:
            pq.write_table(table, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Embeddings:
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: embeddings file not found")
        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - name the file in the error
            raise ValueError(f"{path}: not an embeddings parquet file ({exc})") from exc
        raw = (table.schema.metadata or {}).get(b"transferkit")
        if raw is None:
            raise ValueError(f"{path}: parquet file was not written by transferkit embed")
        meta = json.loads(raw)
        column = table.column("embedding").combine_chunks()
        dim = column.type.list_size
        vectors = column.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
        labels = table.column("label").to_pylist() if "label" in table.column_names else None
        return cls(table.column("path").to_pylist(), vectors, meta.get("spec", {}), labels,
                   [tuple(f) for f in meta.get("failures", [])],
                   ignored=list(meta.get("ignored", [])), runtime=meta.get("runtime", {}))
