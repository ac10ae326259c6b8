"""``advise(data)``: which strategy to use, from measurements rather than folklore.

Two questions decide it (the classic transfer-learning quadrant):

* **Is the data set big?** median images per class >= ``BIG_PER_CLASS`` (500). Below that,
  training a whole body overfits; above it, fine-tuning usually pays for its cost.
* **Is it ImageNet-like?** The frozen features must already separate the classes. Measured
  by a cross-validated linear probe: *probe skill* = (accuracy - majority rate) /
  (1 - majority rate) >= ``LIKE_SKILL`` (0.6), or >= ``WEAK_SKILL`` (0.4) when ImageNet
  itself is confident on the images (mean max softmax >= ``CONFIDENT`` = 0.3). The ImageNet
  confidence and normalised entropy are reported as supporting evidence.

Small & like -> train a head; big & like -> fine-tune; big & unlike -> train from scratch;
small & unlike -> collect more data (and meanwhile fine-tune with augmentation). Fewer than
``MIN_PER_CLASS`` (10) images in some class -> collect more data first, whatever else holds.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from transferkit.backbones import Backbone
from transferkit.features import resolve_backbone
from transferkit.train.data import LabelledImages, load_labelled
from transferkit.train.features import cached_features

BIG_PER_CLASS = 500
MIN_PER_CLASS = 10
LIKE_SKILL = 0.6
WEAK_SKILL = 0.4
CONFIDENT = 0.3


def imagenet_confidence(backbone: Backbone, features: np.ndarray) -> dict[str, float]:
    """Mean max softmax and mean normalised entropy of the backbone's ImageNet classifier
    applied to already-computed pooled features (no second pass over the images)."""
    import torch

    classifier = backbone.model.get_classifier()
    with torch.inference_mode():
        proba = classifier(torch.from_numpy(np.array(features, np.float32))).softmax(-1)
    proba = proba.double().numpy()
    entropy = -(proba * np.log(np.clip(proba, 1e-12, 1))).sum(1) / np.log(proba.shape[1])
    return {"mean_max_probability": float(proba.max(1).mean()),
            "mean_normalised_entropy": float(entropy.mean())}


def linear_probe_cv(features: np.ndarray, labels: np.ndarray, folds: int = 5,
                    seed: int = 0) -> dict[str, Any]:
    """Stratified k-fold accuracy of the logreg head on frozen features."""
    from sklearn.model_selection import StratifiedKFold

    from transferkit.heads import make_head

    _, counts = np.unique(labels, return_counts=True)
    k = int(min(folds, counts.min()))
    if k < 2:
        return {"folds": 0, "accuracy": None, "std": None}
    scores = []
    for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(features,
                                                                                  labels):
        head = make_head("logreg", random_state=seed).fit(features[train], labels[train])
        scores.append(float((head.predict(features[test]) == labels[test]).mean()))
    return {"folds": k, "accuracy": float(np.mean(scores)), "std": float(np.std(scores))}


def decide(median_per_class: float, min_per_class: int, probe_skill: float | None,
           mean_max_probability: float) -> tuple[str, bool, bool]:
    """The quadrant rule on measured numbers -> (action, big, imagenet_like)."""
    big = median_per_class >= BIG_PER_CLASS
    like = probe_skill is not None and (probe_skill >= LIKE_SKILL or (
        probe_skill >= WEAK_SKILL and mean_max_probability >= CONFIDENT))
    if min_per_class < MIN_PER_CLASS:
        action = "collect-more-data"
    elif like:
        action = "finetune" if big else "head"
    else:
        action = "scratch" if big else "collect-more-data"
    return action, big, like


def advise(data: str | os.PathLike | LabelledImages, backbone: str | Backbone =
           "efficientnet_lite0", image_size: int | None = None, folds: int = 5,
           max_images: int = 3000, seed: int = 0, batch_size: int = 32) -> dict[str, Any]:
    """Measure the data set and recommend ``head`` / ``finetune`` / ``scratch`` /
    ``collect-more-data`` with the numbers behind the choice."""
    started = time.perf_counter()
    data = load_labelled(data)
    counts = data.counts()
    per_class = np.asarray(list(counts.values()))
    sample = data
    if len(data) > max_images:  # stratified subsample keeps the probe to seconds
        rng = np.random.default_rng(seed)
        labels = np.asarray(data.labels)
        keep = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[
            :max(2, int(max_images * n / len(data)))] for c, n in counts.items()])
        sample = data.subset(np.sort(keep))
    model = resolve_backbone(backbone, image_size)
    features, rows, failures = cached_features(sample, model, batch_size)
    labels = np.asarray(sample.labels)[rows]
    confidence = imagenet_confidence(model, features)
    probe = linear_probe_cv(features, labels, folds, seed)
    majority = float(np.unique(labels, return_counts=True)[1].max() / len(labels))
    skill = None if probe["accuracy"] is None else \
        (probe["accuracy"] - majority) / max(1e-9, 1 - majority)
    action, big, like = decide(float(np.median(per_class)), int(per_class.min()), skill,
                               confidence["mean_max_probability"])
    reasons = [
        f"{len(data)} images in {len(counts)} classes; per class min {per_class.min()}, "
        f"median {np.median(per_class):.0f}, max {per_class.max()} -> "
        f"{'big' if big else 'small'} (big means median >= {BIG_PER_CLASS})",
        f"ImageNet classifier on these images: mean max probability "
        f"{confidence['mean_max_probability']:.2f}, normalised entropy "
        f"{confidence['mean_normalised_entropy']:.2f} (confident means >= {CONFIDENT})",
    ]
    if skill is None:
        reasons.append("too few images per class for a cross-validated probe")
    else:
        reasons.append(
            f"{probe['folds']}-fold linear probe accuracy {probe['accuracy']:.1%} "
            f"+/- {probe['std']:.1%} vs majority-class {majority:.1%}: skill {skill:.2f} -> "
            f"{'ImageNet-like' if like else 'unlike ImageNet'} (like means skill >= "
            f"{LIKE_SKILL}, or >= {WEAK_SKILL} with confident ImageNet predictions)")
    if per_class.min() < MIN_PER_CLASS:
        reasons.append(f"some class has fewer than {MIN_PER_CLASS} images: collect more first")
    name = model.name
    commands = {
        "head": f"transferkit train DATA --backbone {name} --strategy logreg",
        "finetune": f"transferkit train DATA --backbone {name} --strategy finetune",
        "scratch": f"transferkit train DATA --backbone {name} --strategy scratch",
        "collect-more-data": f"transferkit train DATA --backbone {name} --strategy finetune "
                             f"--augment  (while collecting more)",
    }
    return {"recommendation": action, "command": commands[action], "reasons": reasons,
            "n_images": len(data), "n_classes": len(counts), "class_counts": counts,
            "images_measured": int(len(rows)), "big": big, "imagenet_like": like,
            "imagenet_confidence": confidence, "linear_probe": probe,
            "majority_rate": majority, "probe_skill": skill, "backbone": model.spec(),
            "thresholds": {"big_per_class": BIG_PER_CLASS, "min_per_class": MIN_PER_CLASS,
                           "like_skill": LIKE_SKILL, "weak_skill": WEAK_SKILL,
                           "confident": CONFIDENT},
            "failures": [{"path": p, "reason": r} for p, r in failures],
            "seconds": round(time.perf_counter() - started, 1)}


def format_advice(advice: dict[str, Any]) -> str:
    labels = {"head": "train a head on frozen features", "finetune": "fine-tune the backbone",
              "scratch": "train from scratch", "collect-more-data": "collect more data"}
    lines = [f"recommendation: {labels[advice['recommendation']]}"]
    lines += [f"  - {reason}" for reason in advice["reasons"]]
    lines.append(f"try: {advice['command']}")
    return "\n".join(lines)
