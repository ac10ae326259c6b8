"""``fit(data, backbone, strategy)``: the one-liner from a folder of labelled images to a
saved, evaluated classifier."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from transferkit.backbones import Backbone
from transferkit.data import DEFAULT_MAX_PIXELS
from transferkit.features import resolve_backbone
from transferkit.heads import make_head
from transferkit.train.data import LabelledImages, Split, load_labelled, stratified_split
from transferkit.train.features import cached_features
from transferkit.train.model import TransferModel
from transferkit.train.report import classification_metrics, split_predictions, write_report

FROZEN_STRATEGIES = ("linear", "mlp", "logreg", "random_forest", "gradient_boosting")
BODY_STRATEGIES = ("finetune", "scratch")
STRATEGIES = FROZEN_STRATEGIES + BODY_STRATEGIES


def _backbone_list(backbone: str | Backbone, ensemble: str | Sequence | None) -> list:
    if ensemble is None or ensemble == "" or ensemble == []:
        return [backbone]
    members = ensemble.split(",") if isinstance(ensemble, str) else list(ensemble)
    members = [m.strip() if isinstance(m, str) else m for m in members]
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least 2 backbones, got {members}")
    return members


def fit(data: str | os.PathLike | LabelledImages, backbone: str | Backbone = "efficientnet_lite0",
        strategy: str = "logreg", output: str | os.PathLike | None = None, *,
        image_size: int | None = None, val_fraction: float = 0.15, test_fraction: float = 0.15,
        seed: int = 0, batch_size: int = 32, num_workers: int | None = None,
        head_params: dict[str, Any] | None = None, ensemble: str | Sequence | None = None,
        ensemble_mode: str = "concat", cache: bool = True,
        max_pixels: int = DEFAULT_MAX_PIXELS, **train_knobs: Any) -> TransferModel:
    """Train a classifier on labelled images and (if ``output``) save it with its report.

    Frozen strategies (``linear``, ``mlp``, ``logreg``, ``random_forest``,
    ``gradient_boosting``) embed every image once (cached) and fit the head on the features.
    ``finetune`` and ``scratch`` train through the body; their knobs (``epochs``, ``lr``,
    ``body_lr``, ``unfreeze_blocks``, ``augment``, ``patience``, ``resume``,
    ``stop_after_epochs``, ``freeze_bn``, ...) are documented in
    :class:`transferkit.train.finetune.FinetuneConfig`. Images over ``max_pixels`` decoded
    pixels are skipped (listed in the manifest's ``failures``), as everywhere else.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    data = load_labelled(data)
    classes = data.classes
    split = stratified_split(data.labels, val_fraction, test_fraction, seed, data.splits)
    if len(split.train) == 0:
        raise ValueError(f"{data.source}: no training images after splitting")
    info = {"strategy": strategy, "data": {"source": data.source, "n_images": len(data),
                                           "class_counts": data.counts(),
                                           "split_sizes": split.sizes(), "seed": seed,
                                           "user_splits": data.splits is not None,
                                           "ignored": list(data.ignored)}}
    if strategy in BODY_STRATEGIES:
        if ensemble:
            raise ValueError("ensembles work with frozen strategies only; fine-tune each "
                             "backbone separately")
        from transferkit.train.finetune import finetune

        return finetune(data, split, backbone, strategy, output, image_size=image_size,
                        batch_size=batch_size, seed=seed, info=info, max_pixels=max_pixels,
                        **train_knobs)
    if train_knobs:
        raise ValueError(f"options {sorted(train_knobs)} only apply to finetune/scratch; "
                         f"use head_params for the {strategy} head")
    return _fit_frozen(data, split, classes, _backbone_list(backbone, ensemble), strategy,
                       output, image_size, batch_size, num_workers, head_params or {},
                       ensemble_mode, cache, seed, info, max_pixels)


def _fit_frozen(data: LabelledImages, split: Split, classes: list[str], members: list,
                strategy: str, output, image_size, batch_size, num_workers,
                head_params: dict[str, Any], ensemble_mode: str, cache: bool, seed: int,
                info: dict[str, Any], max_pixels: int) -> TransferModel:
    started = time.perf_counter()
    backbones = [resolve_backbone(m, image_size) for m in members]
    labels = np.asarray(data.labels)
    feats, failures, good = [], [], np.ones(len(data), bool)
    for backbone in backbones:
        vectors, rows, bad = cached_features(data, backbone, batch_size, num_workers, cache,
                                             max_pixels)
        full = np.zeros((len(data), vectors.shape[1]), np.float32)
        full[rows] = vectors
        mask = np.zeros(len(data), bool)
        mask[rows] = True
        good &= mask
        feats.append(full)
        failures += [f for f in bad if f not in failures]
    embed_seconds = time.perf_counter() - started
    train, val, test = (idx[good[idx]] for idx in (split.train, split.val, split.test))
    params = {"random_state": seed, **head_params} if "random_state" not in head_params \
        else head_params
    groups = [np.concatenate(feats, axis=1)] if ensemble_mode == "concat" else feats
    if ensemble_mode not in ("concat", "average"):
        raise ValueError(f"ensemble_mode must be 'concat' or 'average', got {ensemble_mode!r}")
    heads, fit_started = [], time.perf_counter()
    for X in groups:
        head = make_head(strategy, **params)
        kwargs = {"X_val": X[val], "y_val": labels[val]} if strategy in ("linear", "mlp") \
            and len(val) else {}
        head.fit(X[train], labels[train], **kwargs)
        heads.append(head)
    fit_seconds = time.perf_counter() - fit_started
    model = TransferModel(backbones, heads, classes, ensemble_mode)
    history = getattr(heads[0], "history_", None) if len(heads) == 1 else None

    def metrics_for(idx: np.ndarray, name: str) -> dict[str, Any]:
        if len(idx) == 0:
            return {"n": 0, "split": name}
        proba = model._probabilities([f[idx] for f in feats])
        pred = [classes[i] for i in proba.argmax(axis=1)]
        return {**classification_metrics(labels[idx], pred, classes), "split": name}

    metrics = {"val": metrics_for(val, "val"), "test": metrics_for(test, "test")}
    headline = metrics["test"] if metrics["test"]["n"] else metrics["val"]
    shown = test if metrics["test"]["n"] else val
    predictions = split_predictions(
        [data.paths[i] for i in shown], labels[shown],
        model._probabilities([f[shown] for f in feats]), classes, headline["split"])
    timing = {"embed_seconds": round(embed_seconds, 2), "fit_seconds": round(fit_seconds, 2)}
    model.manifest = {**info, "metrics": {"accuracy": headline.get("accuracy"),
                                          "split": headline["split"],
                                          "val_accuracy": metrics["val"].get("accuracy"),
                                          "test_accuracy": metrics["test"].get("accuracy"),
                                          "n_test": metrics["test"]["n"]},
                      "timing": timing, "head_params": heads[0].get_params(),
                      "failures": [{"path": p, "reason": r} for p, r in failures]}
    if output is not None:
        with tempfile.TemporaryDirectory() as tmp:
            write_report(tmp, headline, history,
                         {"strategy": strategy, "backbone": model.spec_["name"],
                          "splits": metrics, "timing": timing,
                          "failures": model.manifest["failures"]}, predictions)
            model.save(output, trained_bodies=False, report_dir=tmp)
    return model

