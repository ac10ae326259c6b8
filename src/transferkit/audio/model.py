"""Audio classifiers: an audio encoder + one of the shared heads (every kind in ``heads``).

Saved as a directory: ``manifest.json`` (format, ``"kind": "audio"``, encoder spec, classes,
metrics) and ``head/``; the encoder is rebuilt from its spec (parameters only, no state).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.audio.datasets import AudioDataset, read_audio_dataset
from transferkit.audio.embed import embed_clips, resolve_encoder
from transferkit.audio.encoders import AudioEncoder
from transferkit.audio.registry import audio_encoder_from_spec
from transferkit.heads import ArrayHead, make_head
from transferkit.utils import atomic_path, peek_format, read_manifest, write_manifest

MODEL_FORMAT = "transferkit-audio-model/1"
MANIFEST = "manifest.json"


@dataclass
class AudioModel:
    """A fitted head on an audio encoder's rows; ``classes[i]`` is what the head calls ``i``."""

    encoder: AudioEncoder
    head: Any
    classes: list[str]
    head_name: str = "logreg"
    metrics: dict[str, Any] = field(default_factory=dict)

    def proba(self, vectors: np.ndarray) -> np.ndarray:
        proba = np.asarray(self.head.predict_proba(vectors), np.float32)
        known = [int(c) for c in getattr(self.head, "classes_", range(proba.shape[1]))]
        full = np.zeros((len(vectors), len(self.classes)), np.float32)
        full[:, known] = proba
        return full

    def predict_paths(self, paths: Sequence[str | os.PathLike], top_k: int = 3
                      ) -> tuple[list[dict], list[tuple[str, str]]]:
        """Rows ``{path, top_k: [{label, probability}]}`` and the refused files."""
        good, vectors, failures = embed_clips(list(paths), self.encoder)
        results = []
        for path, row in zip(good, self.proba(vectors)):
            order = np.argsort(-row)[:top_k]
            results.append({"path": str(path), "top_k": [
                {"label": self.classes[j], "probability": round(float(row[j]), 4)}
                for j in order]})
        return results, failures

    def evaluate(self, data: str | os.PathLike | AudioDataset) -> dict[str, Any]:
        """Accuracy, macro-F1 and the chance/majority floors on every clip of ``data``."""
        dataset = data if isinstance(data, AudioDataset) else read_audio_dataset(data)
        good, vectors, failures = embed_clips(dataset.paths, self.encoder)
        label_of = {str(p): label for p, label in zip(dataset.paths, dataset.labels)}
        truth = [label_of[str(p)] for p in good]
        unknown = sorted(set(truth) - set(self.classes))
        if unknown:
            raise ValueError(f"{data}: classes the model does not know: {unknown[:10]}")
        y = np.asarray([self.classes.index(t) for t in truth], np.int64)
        pred = self.proba(vectors).argmax(axis=1) if len(y) else y
        return {**score(y, pred, len(self.classes)), "n": int(len(y)),
                "failures": [{"path": p, "reason": r} for p, r in failures]}

    def save(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            self.head.save(tmp / "head")
            write_manifest(tmp, MANIFEST, MODEL_FORMAT, {
                "kind": "audio", "encoder": self.encoder.spec(), "head": self.head_name,
                "classes": self.classes, "metrics": self.metrics})
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> AudioModel:
        directory = Path(directory)
        manifest = read_manifest(directory, MANIFEST, "audio model", MODEL_FORMAT)
        encoder = audio_encoder_from_spec(manifest["encoder"], where=str(directory))
        return cls(encoder, ArrayHead.load(directory / "head"), list(manifest["classes"]),
                   manifest.get("head", "?"), manifest.get("metrics", {}))


def is_audio_model(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a saved audio classifier (reads the manifest only)."""
    return peek_format(directory, (MANIFEST,)) == MODEL_FORMAT


def score(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    if not len(y_true):
        return {"accuracy": float("nan"), "macro_f1": float("nan"),
                "chance": 1.0 / n_classes, "majority": float("nan")}
    majority = np.bincount(y_true, minlength=n_classes).max() / len(y_true)
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "chance": 1.0 / n_classes, "majority": float(majority)}


def train_audio_classifier(data: str | os.PathLike | AudioDataset,
                           encoder: str | AudioEncoder = "logmel", head: str = "logreg", *,
                           head_params: dict[str, Any] | None = None, test_size: float = 0.2,
                           seed: int = 0, output: str | os.PathLike | None = None
                           ) -> AudioModel:
    """Embed labelled clips, fit a shared head on a stratified split, score the held-out part.

    Bad clips are skipped and listed in ``metrics["failures"]``.
    """
    from transferkit.text import split_indices

    dataset = data if isinstance(data, AudioDataset) else read_audio_dataset(data)
    encoder = resolve_encoder(encoder)
    started = time.perf_counter()
    good, vectors, failures = embed_clips(dataset.paths, encoder)
    encode_s = time.perf_counter() - started
    label_of = {str(p): label for p, label in zip(dataset.paths, dataset.labels)}
    labels = [label_of[str(p)] for p in good]
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"{data}: need at least 2 classes of readable clips, found "
                         f"{classes or 'none'}")
    y = np.asarray([classes.index(label) for label in labels], np.int64)
    train, test = split_indices(labels, test_size, seed)
    model_head = make_head(head, **(head_params or {})).fit(vectors[train], y[train])
    model = AudioModel(encoder, model_head, classes, head)
    metrics: dict[str, Any] = {"n_train": int(len(train)), "n_test": int(len(test)),
                               "n_classes": len(classes), "dim": int(vectors.shape[1]),
                               "encode_seconds": round(encode_s, 2), "seed": seed,
                               "failures": [{"path": p, "reason": r} for p, r in failures]}
    if len(test):
        metrics.update(score(y[test], model.proba(vectors[test]).argmax(axis=1), len(classes)))
    model.metrics = metrics
    if output is not None:
        model.save(output)
    return model
