"""``advise_audio(data)``: which audio encoder to train a head on, measured, not guessed.

Every unrestricted encoder (``mfcc``, ``logmel``, ``wavelet``; ``spectrogram`` with
``include_spectrogram``; ``speech`` only when asked for, given its licence) is scored by a
cross-validated logistic-regression probe. *Skill* = (accuracy - majority rate) /
(1 - majority rate), as the image advisor measures it. The verdict:

* fewer than ``MIN_PER_CLASS`` (10) clips in some class -> collect more data first;
* best skill >= ``LIKE_SKILL`` (0.6) -> train a head on the best encoder;
* otherwise the features do not separate the classes yet -> collect more (or more varied)
  clips, and try ``spectrogram`` fine-tuning (``data spectrograms`` + ``train --strategy
  finetune``) once there are a few hundred per class.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from transferkit.audio.datasets import AudioDataset, read_audio_dataset
from transferkit.audio.embed import embed_clips

MIN_PER_CLASS = 10
LIKE_SKILL = 0.6
UNRESTRICTED = ("mfcc", "logmel", "wavelet")


def probe_accuracy(vectors: np.ndarray, y: np.ndarray, folds: int, seed: int = 0) -> float:
    """Mean accuracy of a standardised logistic regression over stratified folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = max(2, min(folds, int(np.bincount(y).min())))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(probe, vectors, y, cv=splits).mean())


def advise_audio(data: str | os.PathLike | AudioDataset, folds: int = 5,
                 encoders: Sequence[str] = UNRESTRICTED) -> dict[str, Any]:
    """Measurements per encoder, the best one, and a verdict with its reason."""
    dataset = data if isinstance(data, AudioDataset) else read_audio_dataset(data)
    classes = dataset.classes
    y_all = {str(p): classes.index(label) for p, label in zip(dataset.paths, dataset.labels)}
    rows, failures = [], []
    counts = np.bincount(list(y_all.values()), minlength=len(classes))
    majority = float(counts.max() / counts.sum())
    for name in encoders:
        good, vectors, failed = embed_clips(dataset.paths, name)
        failures = failures or failed
        y = np.asarray([y_all[str(p)] for p in good])
        accuracy = probe_accuracy(vectors, y, folds) if counts.min() >= 2 else float("nan")
        rows.append({"encoder": name, "probe_accuracy": accuracy,
                     "skill": (accuracy - majority) / max(1 - majority, 1e-9)})
    best = max(rows, key=lambda r: -1 if np.isnan(r["skill"]) else r["skill"])
    if counts.min() < MIN_PER_CLASS:
        verdict = "collect more data"
        reason = (f"class {classes[int(counts.argmin())]!r} has {int(counts.min())} clips; "
                  f"need at least {MIN_PER_CLASS} per class for a trustworthy score")
    elif best["skill"] >= LIKE_SKILL:
        verdict = f"train a head on {best['encoder']}"
        reason = (f"{best['encoder']} probe accuracy {best['probe_accuracy']:.3f} (skill "
                  f"{best['skill']:.2f} >= {LIKE_SKILL}) over majority {majority:.3f}")
    else:
        verdict = "collect more data"
        reason = (f"best probe skill {best['skill']:.2f} ({best['encoder']}) is below "
                  f"{LIKE_SKILL}: the features do not separate the classes yet")
    return {"verdict": verdict, "reason": reason, "best_encoder": best["encoder"],
            "n_clips": int(counts.sum()), "n_classes": len(classes), "majority": majority,
            "chance": 1.0 / len(classes), "encoders": rows,
            "failures": [{"path": p, "reason": r} for p, r in failures]}


def format_audio_advice(advice: dict[str, Any]) -> str:
    lines = [f"verdict: {advice['verdict']}", f"  because {advice['reason']}",
             f"  {advice['n_clips']} clips, {advice['n_classes']} classes, majority "
             f"{advice['majority']:.3f}, chance {advice['chance']:.3f}"]
    lines += [f"  {r['encoder']:<12} probe accuracy {r['probe_accuracy']:.3f}  skill "
              f"{r['skill']:.2f}" for r in advice["encoders"]]
    return "\n".join(lines)
