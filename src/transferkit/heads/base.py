"""What every head shares: label encoding, probabilities -> labels, and array persistence.

Heads keep their fitted state as plain arrays (``to_arrays``) so they can be saved to
safetensors + JSON and loaded back without unpickling anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from transferkit.errors import check_is_fitted
from transferkit.utils import Registry, atomic_path, read_manifest, write_manifest

FORMAT = "transferkit-head/1"
MANIFEST = "head.json"
# Every head class, by its ``kind``; ``make_head(kind, **params)`` builds one and
# ``ArrayHead.load`` finds the class of a saved one here.
HEADS: Registry[ArrayHead] = Registry("head")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def as_features(X: Any) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"heads take a 2-D feature matrix, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("feature matrix contains NaN or infinite values")
    return X


def classes_to_json(classes: np.ndarray) -> list:
    return [c.item() if hasattr(c, "item") else c for c in classes]


class ArrayHead(ClassifierMixin, BaseEstimator):
    """Base for heads: subclasses implement ``_fit``, ``_logits`` or ``predict_proba`` and
    ``to_arrays`` / ``_set_arrays``."""

    kind: str = "base"

    # -- label handling ---------------------------------------------------------------------
    def _encode(self, y: Any) -> np.ndarray:
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes to train a head, got {len(self.classes_)}")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def fit(self, X: Any, y: Any, **fit_params: Any) -> ArrayHead:
        X = as_features(X)
        if len(X) != len(y):
            raise ValueError(f"{len(X)} feature rows but {len(y)} labels")
        target = self._encode(y)
        self.n_features_in_ = X.shape[1]
        self._fit(X, target, **fit_params)
        return self

    def _fit(self, X: np.ndarray, y: np.ndarray, **fit_params: Any) -> None:
        raise NotImplementedError

    def _check_input(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "classes_")
        X = as_features(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"head expects {self.n_features_in_} features, got {X.shape[1]}")
        return X

    def predict_proba(self, X: Any) -> np.ndarray:
        return softmax(self.decision_function(X))

    def decision_function(self, X: Any) -> np.ndarray:
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray:
        best = self.predict_proba(X).argmax(axis=1)  # checks fitted state first
        return self.classes_[best]

    # -- persistence ------------------------------------------------------------------------
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Fitted state as (named arrays, JSON-able metadata)."""
        raise NotImplementedError

    def _set_arrays(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        raise NotImplementedError

    def _base_meta(self) -> dict[str, Any]:
        return {"classes": classes_to_json(self.classes_),
                "n_features_in": int(self.n_features_in_)}

    def _restore_base(self, meta: dict[str, Any]) -> None:
        self.classes_ = np.asarray(meta["classes"])
        self.n_features_in_ = int(meta["n_features_in"])

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the fitted head as ``head.safetensors`` + ``head.json`` (atomically; never
        pickle)."""
        from safetensors.numpy import save_file

        check_is_fitted(self, "classes_")
        arrays, meta = self.to_arrays()
        directory = Path(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                      str(tmp / "head.safetensors"))
            write_manifest(tmp, MANIFEST, FORMAT, {"kind": self.kind, **meta},
                           default=_json_default)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ArrayHead:
        """Rebuild a head written by :meth:`save`; ``ArrayHead.load`` opens any kind."""
        from safetensors.numpy import load_file

        directory = Path(directory)
        meta = read_manifest(directory, MANIFEST, "head", FORMAT)
        kind = meta.get("kind")
        if kind not in HEADS:
            raise ValueError(f"{directory / MANIFEST}: unknown head kind {kind!r}")
        head_cls = HEADS.get(kind).factory
        if not issubclass(head_cls, cls):
            raise ValueError(f"{directory}: holds a {kind} head, not a {cls.__name__}")
        head = head_cls(**meta.get("params", {}))
        head._set_arrays(load_file(str(directory / "head.safetensors")), meta)
        return head


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
