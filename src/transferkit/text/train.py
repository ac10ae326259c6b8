"""Text classification: a text encoder + one of the shared heads (logreg, mlp, forests...).

The head comes from ``transferkit.heads.make_head`` so text and image models train the same
way; a saved text model is a directory: ``manifest.json`` (encoder spec, classes, metrics),
``encoder/`` (the encoder's own save) and ``head/`` (``transferkit.heads.save_head``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.heads import ArrayHead, make_head
from transferkit.text.datasets import TextDataset, read_texts
from transferkit.text.registry import TextEncoder, create_text_encoder, load_text_encoder
from transferkit.utils import atomic_path, peek_format, read_manifest, write_manifest

MODEL_FORMAT = "transferkit-text-model/1"
MANIFEST = "manifest.json"


@dataclass
class TextModel:
    """A fitted encoder + head; ``classes[i]`` is the label the head calls ``i``."""

    encoder: TextEncoder
    head: Any
    classes: list[str]
    head_name: str = "logreg"
    head_params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(N, n_classes) probabilities, columns in :attr:`classes` order."""
        vectors = self.encoder.transform(list(texts))
        proba = np.asarray(self.head.predict_proba(vectors), dtype=np.float32)
        known = [int(c) for c in getattr(self.head, "classes_", range(proba.shape[1]))]
        full = np.zeros((len(vectors), len(self.classes)), np.float32)
        full[:, known] = proba
        return full

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.classes[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def predict_top(self, texts: Sequence[str], k: int = 3) -> list[list[tuple[str, float]]]:
        proba = self.predict_proba(texts)
        order = np.argsort(-proba, axis=1)[:, :k]
        return [[(self.classes[j], float(p[j])) for j in row] for p, row in zip(proba, order)]

    def save(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            self.encoder.save(tmp / "encoder")
            self.head.save(tmp / "head")
            write_manifest(tmp, MANIFEST, MODEL_FORMAT, {
                "kind": "text", "encoder": self.encoder.spec(), "head": self.head_name,
                "head_params": self.head_params, "classes": self.classes,
                "metrics": self.metrics})
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> TextModel:
        """Rebuild a classifier saved by :meth:`save` (or ``transferkit train --text``)."""
        directory = Path(directory)
        found = peek_format(directory, (MANIFEST,))
        if found is not None and found != MODEL_FORMAT:
            raise ValueError(f"{directory}: not a text model (format {found!r}); an image "
                             f"model takes image files, not --text")
        manifest = read_manifest(directory, MANIFEST, "text model", MODEL_FORMAT)
        return cls(load_text_encoder(directory / "encoder"), ArrayHead.load(directory / "head"),
                   list(manifest["classes"]), manifest.get("head", "?"),
                   manifest.get("head_params", {}), manifest.get("metrics", {}))


def is_text_model(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` is a saved text classifier (cheap: reads the manifest only)."""
    return peek_format(directory, (MANIFEST,)) == MODEL_FORMAT


def load_text_model(directory: str | os.PathLike) -> TextModel:
    """Rebuild a classifier saved by :meth:`TextModel.save` (same as ``TextModel.load``)."""
    return TextModel.load(directory)


def split_indices(labels: Sequence[str], test_size: float, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test positions; every class keeps >= 1 training example."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    if test_size <= 0:
        return idx, idx[:0]
    counts = np.unique(np.asarray(labels), return_counts=True)[1]
    n_test = int(np.ceil(test_size * len(labels))) if test_size < 1 else int(test_size)
    stratify = labels if counts.min() >= 2 and n_test >= len(counts) else None
    train, test = train_test_split(idx, test_size=test_size, random_state=seed,
                                   stratify=stratify)
    return np.sort(train), np.sort(test)


def evaluate(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    y_true = np.asarray(y_true)
    majority = np.bincount(y_true, minlength=n_classes).max() / max(len(y_true), 1)
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "chance": float(1.0 / n_classes), "majority": float(majority)}


def train_text_classifier(data: str | os.PathLike | TextDataset,
                          encoder: str | TextEncoder = "minilm", head: str = "logreg", *,
                          head_params: dict[str, Any] | None = None,
                          encoder_params: dict[str, Any] | None = None,
                          test_size: float = 0.2, seed: int = 0, text_column: str = "text",
                          label_column: str = "label",
                          output: str | os.PathLike | None = None) -> TextModel:
    """Encode labelled texts, fit a shared head on a stratified split, report held-out metrics.

    ``data`` is a CSV (``text_column``, ``label_column``) or a :class:`TextDataset`.
    TF-IDF is fitted on the training split only, so the test score is honest.
    """
    if isinstance(data, TextDataset):
        dataset = data
    else:
        dataset = read_texts(data, text_column=text_column, label_column=label_column,
                             require_labels=True)
    if dataset.labels is None:
        raise ValueError("train_text_classifier: the dataset has no labels")
    classes = dataset.classes
    if len(classes) < 2:
        raise ValueError(f"train_text_classifier: need at least 2 classes, found "
                         f"{classes or 'none'}")
    y = np.asarray([classes.index(label) for label in dataset.labels], np.int64)
    train, test = split_indices(dataset.labels, test_size, seed)
    if isinstance(encoder, str):
        encoder = create_text_encoder(encoder, **(encoder_params or {}))
    texts = np.asarray(dataset.texts, dtype=object)
    started = time.perf_counter()
    if encoder.requires_fit:
        encoder.fit(list(texts[train]))
    x_train = encoder.transform(list(texts[train]))
    x_test = encoder.transform(list(texts[test])) if len(test) else None
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    model_head = make_head(head, **(head_params or {}))
    model_head.fit(x_train, y[train])
    fit_s = time.perf_counter() - started
    model = TextModel(encoder, model_head, classes, head, dict(head_params or {}))
    metrics: dict[str, Any] = {"n_train": int(len(train)), "n_test": int(len(test)),
                               "n_classes": len(classes), "dim": int(x_train.shape[1]),
                               "encode_seconds": round(encode_s, 2),
                               "fit_seconds": round(fit_s, 2), "seed": seed,
                               "test_size": test_size}
    if x_test is not None:
        proba = model_head.predict_proba(x_test)
        known = np.asarray(getattr(model_head, "classes_", np.arange(proba.shape[1])))
        pred = known[np.asarray(proba).argmax(axis=1)]
        metrics.update(evaluate(y[test], pred, len(classes)))
        metrics["train_accuracy"] = float((model_head.predict(x_train) == y[train]).mean())
    model.metrics = metrics
    if output is not None:
        model.save(output)
    return model
