"""Classifier heads on feature matrices (image or text embeddings), saved without pickle.

``make_head(name, **params)`` returns an sklearn-compatible estimator; ``head.save(dir)``
writes ``head.safetensors`` (arrays) + ``head.json`` (class, params, labels) and
``ArrayHead.load(dir)`` reads any kind back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transferkit.heads.base import HEADS, ArrayHead, softmax
from transferkit.heads.sklearn_heads import GradientBoostingHead, LogRegHead, RandomForestHead
from transferkit.heads.torch_heads import LinearHead, MLPHead

FORMAT = "transferkit-head/1"

for _cls, _what in [(LinearHead, "linear layer on standardised features (torch, AdamW)"),
                    (MLPHead, "one hidden layer + dropout (torch)"),
                    (LogRegHead, "multinomial logistic regression (scikit-learn, L-BFGS)"),
                    (RandomForestHead, "random forest (scikit-learn); trees stored as arrays"),
                    (GradientBoostingHead, "histogram gradient boosting (scikit-learn)")]:
    HEADS.register(_cls.kind, _cls, description=_what)


def list_heads() -> list[str]:
    return HEADS.list()


def make_head(name: str, **params: Any) -> ArrayHead:
    """A fresh, unfitted head by name (``linear``, ``mlp``, ``logreg``, ``random_forest``,
    ``gradient_boosting``); ``params`` go to its constructor, unknown ones are refused."""
    return HEADS.create(name, **params)


def save_head(head: ArrayHead, directory: str | os.PathLike) -> Path:
    """Write a fitted head (same as ``head.save(directory)``)."""
    return head.save(directory)


def load_head(directory: str | os.PathLike) -> ArrayHead:
    """Rebuild a head written by :func:`save_head` (same as ``ArrayHead.load``)."""
    return ArrayHead.load(directory)


__all__ = ["ArrayHead", "FORMAT", "GradientBoostingHead", "HEADS", "LinearHead", "LogRegHead",
           "MLPHead", "RandomForestHead", "list_heads", "load_head", "make_head", "save_head",
           "softmax"]
