"""Classifier heads on feature matrices (image or text embeddings), saved without pickle.

``make_head(name, **params)`` returns an sklearn-compatible estimator; ``save_head`` writes
``head.safetensors`` (arrays) + ``head.json`` (class, params, labels); ``load_head`` reads
them back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.heads.base import ArrayHead, softmax
from transferkit.heads.sklearn_heads import GradientBoostingHead, LogRegHead, RandomForestHead
from transferkit.heads.torch_heads import LinearHead, MLPHead
from transferkit.utils import atomic_path, read_manifest

HEADS: dict[str, type[ArrayHead]] = {
    "linear": LinearHead,
    "mlp": MLPHead,
    "logreg": LogRegHead,
    "random_forest": RandomForestHead,
    "gradient_boosting": GradientBoostingHead,
}
FORMAT = "transferkit-head/1"


def list_heads() -> list[str]:
    return list(HEADS)


def make_head(name: str, **params: Any) -> ArrayHead:
    """A fresh, unfitted head by name (``linear``, ``mlp``, ``logreg``, ``random_forest``,
    ``gradient_boosting``); ``params`` go to its constructor."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; choose from {', '.join(HEADS)}")
    return HEADS[name](**params)


def save_head(head: ArrayHead, directory: str | os.PathLike) -> Path:
    """Write a fitted head as safetensors + JSON (atomically; never pickle)."""
    from safetensors.numpy import save_file

    if not hasattr(head, "classes_"):
        raise ValueError("cannot save an unfitted head")
    arrays, meta = head.to_arrays()
    manifest = {"format": FORMAT, "kind": head.kind, **meta}
    directory = Path(directory)
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                  str(tmp / "head.safetensors"))
        (tmp / "head.json").write_text(json.dumps(manifest, indent=2, default=_json_default))
    return directory


def load_head(directory: str | os.PathLike) -> ArrayHead:
    """Rebuild a head written by :func:`save_head`."""
    from safetensors.numpy import load_file

    directory = Path(directory)
    meta = read_manifest(directory, "head.json", "head", FORMAT)
    if meta.get("kind") not in HEADS:
        raise ValueError(f"{directory / 'head.json'}: unknown head kind {meta.get('kind')!r}")
    head = HEADS[meta["kind"]](**meta.get("params", {}))
    head._set_arrays(load_file(str(directory / "head.safetensors")), meta)
    return head


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = ["ArrayHead", "GradientBoostingHead", "HEADS", "LinearHead", "LogRegHead", "MLPHead",
           "RandomForestHead", "list_heads", "load_head", "make_head", "save_head", "softmax"]
