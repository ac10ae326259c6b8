"""Metrics a person checks before trusting a classifier, and the two pictures that go with them."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.utils import atomic_path, atomic_write_text


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str],
                           classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class precision/recall/F1 and the confusion matrix."""
    from sklearn.metrics import (
        balanced_accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    y_true, y_pred, classes = list(map(str, y_true)), list(map(str, y_pred)), list(classes)
    if not y_true:
        return {"n": 0, "accuracy": None, "classes": classes}
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=classes)
    return {
        "n": len(y_true),
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "chance_accuracy": float(max(np.unique(y_true, return_counts=True)[1]) / len(y_true)),
        "classes": classes,
        "per_class": {c: {"precision": float(p), "recall": float(r), "f1": float(f),
                          "support": int(s)}
                      for c, p, r, f, s in zip(classes, precision, recall, f1, support)},
        "confusion_matrix": cm.tolist(),
    }


def split_predictions(paths: Sequence[str], y_true: Sequence[str], probabilities: np.ndarray,
                      classes: Sequence[str], split: str) -> dict[str, Any]:
    """Every evaluated image with its true class and the model's probabilities, so a viewer
    can rank the mistakes by loss and list the images of a confusion-matrix cell."""
    return {"split": split, "classes": list(classes), "paths": [str(p) for p in paths],
            "true": [str(y) for y in y_true],
            "probabilities": [[float(f"{v:.4g}") for v in row]  # 4 digits keep tiny ones
                              for row in np.asarray(probabilities, float).tolist()]}


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str],
                          path: str | os.PathLike, title: str = "confusion matrix") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(matrix, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.55 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(classes) <= 20:
        for i in range(len(classes)):
            for j in range(len(classes)):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    _save_figure(fig, Path(path))
    return Path(path)


def plot_learning_curve(history: Sequence[dict[str, float]], path: str | os.PathLike,
                        title: str = "learning curve") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [row.get("train_loss", np.nan) for row in history], "o-", label="train")
    if any("val_loss" in row for row in history):
        ax_loss.plot(epochs, [row.get("val_loss", np.nan) for row in history], "o-", label="val")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    for key, name in (("train_accuracy", "train"), ("val_accuracy", "val")):
        if any(key in row for row in history):
            ax_acc.plot(epochs, [row.get(key, np.nan) for row in history], "o-", label=name)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.legend()
    phase_starts = [row["epoch"] for prev, row in zip(history, history[1:])
                    if row.get("phase") != prev.get("phase")]
    for x in phase_starts:
        for ax in (ax_loss, ax_acc):
            ax.axvline(x - 0.5, color="grey", ls="--", lw=0.8)
    fig.suptitle(title)
    _save_figure(fig, Path(path))
    return Path(path)


def write_report(directory: str | os.PathLike, metrics: dict[str, Any],
                 history: Sequence[dict[str, float]] | None = None,
                 extra: dict[str, Any] | None = None,
                 predictions: dict[str, Any] | None = None) -> Path:
    """``report.json`` + ``confusion_matrix.png`` (+ ``learning_curve.png`` when epochs exist,
    + ``predictions.json`` when given: see :func:`split_predictions`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if predictions is not None:
        atomic_write_text(directory / "predictions.json", json.dumps(predictions))
    report = {**(extra or {}), **metrics, "history": list(history or [])}
    if metrics.get("confusion_matrix"):
        plot_confusion_matrix(metrics["confusion_matrix"], metrics["classes"],
                              directory / "confusion_matrix.png",
                              f"{metrics.get('split', 'test')} accuracy "
                              f"{metrics['accuracy']:.1%} (n={metrics['n']})")
    if history:
        plot_learning_curve(history, directory / "learning_curve.png")
    atomic_write_text(directory / "report.json", json.dumps(report, indent=2))
    return directory


def format_metrics(metrics: dict[str, Any]) -> str:
    """Short plain-text summary for the terminal."""
    if not metrics.get("n"):
        return "no labelled images evaluated"
    lines = [f"accuracy {metrics['accuracy']:.1%}  balanced {metrics['balanced_accuracy']:.1%}  "
             f"(n={metrics['n']}, majority-class baseline {metrics['chance_accuracy']:.1%})",
             f"{'class':24s} {'precision':>9s} {'recall':>7s} {'support':>7s}"]
    for cls, row in metrics["per_class"].items():
        lines.append(f"{cls[:24]:24s} {row['precision']:9.2f} {row['recall']:7.2f} "
                     f"{row['support']:7d}")
    return "\n".join(lines)
