"""A trained classifier as a directory: backbone(s) + head(s) + manifest + report.

Layout::

    model/
      manifest.json          classes, strategy, backbone spec(s) incl. preprocessing, metrics
      head_0/head.{safetensors,json}
      backbone_0/            only when the body was trained (finetune / scratch)
      report/report.json, confusion_matrix.png, learning_curve.png

Pretrained bodies are stored by reference (registered name + ``weights_id``, verified on
load) so a frozen-feature model is a few hundred kB.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit.backbones import Backbone, Preprocessing
from transferkit.data import DEFAULT_MAX_PIXELS, to_rgb
from transferkit.features import embed_images, embed_paths
from transferkit.heads import ArrayHead, load_head, save_head
from transferkit.train.data import load_labelled
from transferkit.train.report import classification_metrics, write_report
from transferkit.utils import atomic_path, read_manifest, write_manifest

FORMAT = "transferkit-model/1"
MANIFEST = "manifest.json"


class TransferModel:
    """Backbones embed, heads classify; ``combine`` is ``concat`` (one head on the joined
    features) or ``average`` (one head per backbone, probabilities averaged)."""

    def __init__(self, backbones: Sequence[Backbone], heads: Sequence[ArrayHead],
                 classes: Sequence[str], combine: str = "concat",
                 manifest: dict[str, Any] | None = None,
                 directory: str | os.PathLike | None = None) -> None:
        if combine not in ("concat", "average"):
            raise ValueError(f"combine must be 'concat' or 'average', got {combine!r}")
        expected = 1 if combine == "concat" else len(backbones)
        if len(heads) != expected:
            raise ValueError(f"{combine} needs {expected} head(s), got {len(heads)}")
        self.backbones = list(backbones)
        self.heads = list(heads)
        self.classes_ = [str(c) for c in classes]
        self.combine = combine
        self.manifest = dict(manifest or {})
        self.directory = Path(directory) if directory else None

    # -- identity -----------------------------------------------------------------------
    @property
    def spec_(self) -> dict[str, Any]:
        if len(self.backbones) == 1:
            return self.backbones[0].spec()
        specs = [b.spec() for b in self.backbones]
        return {"name": "+".join(s["name"] for s in specs), "members": specs,
                "combine": self.combine, "preprocessing": specs[0]["preprocessing"],
                "num_features": sum(s["num_features"] for s in specs)}

    @property
    def metrics_(self) -> dict[str, Any]:
        return self.manifest.get("metrics", {})

    # -- prediction -----------------------------------------------------------------------
    def head_probabilities(self, features: list[np.ndarray]) -> list[np.ndarray]:
        """Each head's class probabilities (columns in ``classes_`` order) from per-backbone
        features; the model's answer is their mean."""
        if self.combine == "concat":
            parts = [(self.heads[0], np.concatenate(features, axis=1))]
        else:
            parts = list(zip(self.heads, features))
        out = []
        for head, feats in parts:
            proba = np.zeros((len(feats), len(self.classes_)))
            proba[:, [self.classes_.index(str(c)) for c in head.classes_]] = \
                head.predict_proba(feats)
            out.append(proba)
        return out

    def _probabilities(self, features: list[np.ndarray]) -> np.ndarray:
        return np.mean(self.head_probabilities(features), axis=0)

    @torch.inference_mode()
    def predict_proba_images(self, images: Sequence, batch_size: int = 32,
                             engine: str = "torch", precision: str = "f32") -> np.ndarray:
        """Class probabilities (n, len(classes_)) for PIL images (``engine`` and
        ``precision`` as in :func:`~transferkit.features.embed_images`)."""
        images = [to_rgb(img) for img in images]
        if not images:
            return np.zeros((0, len(self.classes_)))
        return self._probabilities([embed_images(images, backbone, batch_size, engine=engine,
                                                 precision=precision)
                                    for backbone in self.backbones])

    def predict_images(self, images: Sequence, top_k: int = 5, engine: str = "torch",
                       precision: str = "f32") -> list[list[dict[str, Any]]]:
        """Top-k ``[{label, probability}]`` per PIL image, most likely first."""
        return self._top_k(self.predict_proba_images(images, engine=engine,
                                                     precision=precision), top_k)

    def _top_k(self, proba: np.ndarray, top_k: int) -> list[list[dict[str, Any]]]:
        k = max(1, min(int(top_k), len(self.classes_)))
        order = np.argsort(-proba, axis=1)[:, :k]
        return [[{"label": self.classes_[j], "probability": float(row[j])} for j in idx]
                for row, idx in zip(proba, order)]

    def predict_proba_paths(self, paths: Sequence[str | os.PathLike], batch_size: int = 32,
                            num_workers: int | None = None,
                            max_pixels: int = DEFAULT_MAX_PIXELS, engine: str = "auto",
                            precision: str = "f32"
                            ) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
        """-> (probabilities of readable files, those files, [(bad file, reason)])."""
        features, kept, failures = self.features_paths(paths, batch_size, num_workers,
                                                       max_pixels, engine, precision)
        if not kept:
            return np.zeros((0, len(self.classes_))), [], failures
        return self._probabilities(features), kept, failures

    def features_paths(self, paths: Sequence[str | os.PathLike], batch_size: int = 32,
                       num_workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                       engine: str = "auto", precision: str = "f32"
                       ) -> tuple[list[np.ndarray], list[str], list[tuple[str, str]]]:
        """-> (features per backbone, readable files they belong to, [(bad file, reason)]);
        ``engine`` and ``precision`` as in :func:`~transferkit.features.embed_paths`."""
        paths = [str(p) for p in paths]
        features, kept, failures = [], None, []
        for backbone in self.backbones:
            emb = embed_paths(paths, backbone, batch_size=batch_size, num_workers=num_workers,
                              max_pixels=max_pixels, engine=engine, precision=precision)
            if kept is None:
                kept, failures = emb.paths, list(emb.failures)
                features.append(emb.vectors)
            else:  # another backbone may crop differently; align on the common files
                index = {p: i for i, p in enumerate(emb.paths)}
                keep = [p for p in kept if p in index]
                features = [f[[kept.index(p) for p in keep]] for f in features]
                features.append(emb.vectors[[index[p] for p in keep]])
                failures += [(p, r) for p, r in emb.failures if p not in dict(failures)]
                kept = keep
        return features, kept or [], failures

    def predict_paths(self, paths: Sequence[str | os.PathLike], top_k: int = 5,
                      batch_size: int = 32, max_pixels: int = DEFAULT_MAX_PIXELS,
                      engine: str = "auto", precision: str = "f32"
                      ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """-> ([{path, top_k: [{label, probability}]}], [(bad file, reason)]); bad files are
        skipped, never fatal."""
        proba, kept, failures = self.predict_proba_paths(paths, batch_size,
                                                         max_pixels=max_pixels, engine=engine,
                                                         precision=precision)
        results = [{"path": p, "top_k": top} for p, top in zip(kept, self._top_k(proba, top_k))]
        return results, failures

    def evaluate(self, data, output: str | os.PathLike | None = None,
                 batch_size: int = 32, max_pixels: int = DEFAULT_MAX_PIXELS,
                 engine: str = "auto", precision: str = "f32") -> dict[str, Any]:
        """Metrics on every image of ``data`` (folder, CSV or LabelledImages)."""
        data = self.labelled(data)
        proba, kept, failures = self.predict_proba_paths(data.paths, batch_size,
                                                         max_pixels=max_pixels, engine=engine,
                                                         precision=precision)
        return self.score(data, proba, kept, failures, output)

    def evaluate_members(self, data, output: str | os.PathLike | None = None,
                         batch_size: int = 32) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """For a model from :func:`ensemble_models`: (each member's metrics, the ensemble's) on
        ``data``, from one embedding pass, since the ensemble's heads are its members' heads."""
        counts = [int(m.get("heads", 0)) for m in self.manifest.get("members", [])]
        if not counts or sum(counts) != len(self.heads):
            raise ValueError(f"{self.directory or 'model'}: not an ensemble of trained models "
                             f"(no member head counts in its manifest)")
        data = self.labelled(data)
        features, kept, failures = self.features_paths(data.paths, batch_size)
        per_head = (self.head_probabilities(features) if kept
                    else [np.zeros((0, len(self.classes_)))] * len(self.heads))
        bounds = np.cumsum([0, *counts])
        members = [self.score(data, np.mean(per_head[a:b], axis=0), kept, failures)
                   for a, b in zip(bounds, bounds[1:])]
        return members, self.score(data, np.mean(per_head, axis=0), kept, failures, output)

    def labelled(self, data):
        """``data`` (folder, CSV or LabelledImages) loaded, refused if it has unknown labels."""
        data = load_labelled(data)
        unknown = sorted(set(data.labels) - set(self.classes_))
        if unknown:
            raise ValueError(f"{data.source}: labels the model was not trained on: "
                             f"{', '.join(unknown[:10])}")
        return data

    def score(self, data, proba: np.ndarray, kept: Sequence[str],
              failures: Sequence[tuple[str, str]],
              output: str | os.PathLike | None = None) -> dict[str, Any]:
        """Metrics of ready probabilities (columns in ``classes_`` order) for the ``kept``
        files of labelled ``data``; ``output`` gets report.json and the confusion matrix."""
        label_of = dict(zip(data.paths, data.labels))
        y_pred = [self.classes_[i] for i in proba.argmax(axis=1)] if len(kept) else []
        metrics = classification_metrics([label_of[p] for p in kept], y_pred, self.classes_)
        metrics.update(split="evaluate", source=data.source,
                       failures=[{"path": p, "reason": r} for p, r in failures])
        if output is not None:
            write_report(output, metrics, None, {"model": str(self.directory or "")})
        return metrics

    # -- persistence ----------------------------------------------------------------------
    def save(self, directory: str | os.PathLike,
             trained_bodies: bool | Sequence[bool] | None = None,
             report_dir: str | os.PathLike | None = None) -> Path:
        """Write the model directory atomically. ``trained_bodies`` (one flag, or one per
        backbone) stores backbone weights instead of a reference to the pretrained ones;
        ``None`` keeps what the manifest says (how the model was loaded or assembled)."""
        import shutil

        directory = Path(directory)
        if trained_bodies is None:
            entries = self.manifest.get("backbones") or [{} for _ in self.backbones]
            store = [bool(e.get("stored")) for e in entries]
        elif isinstance(trained_bodies, bool):
            store = [trained_bodies] * len(self.backbones)
        else:
            store = [bool(t) for t in trained_bodies]
        if len(store) != len(self.backbones):
            raise ValueError(f"trained_bodies: {len(store)} flags for {len(self.backbones)} "
                             f"backbones")
        manifest = {**self.manifest, "classes": self.classes_,
                    "combine": self.combine, "backbones": [], "heads": [],
                    "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            for i, backbone in enumerate(self.backbones):
                entry = {"spec": backbone.spec(), "stored": None}
                if store[i]:
                    backbone.save(tmp / f"backbone_{i}")
                    entry["stored"] = f"backbone_{i}"
                manifest["backbones"].append(entry)
            for i, head in enumerate(self.heads):
                save_head(head, tmp / f"head_{i}")
                manifest["heads"].append(f"head_{i}")
            manifest["backbone"] = self.spec_
            if report_dir is not None and Path(report_dir).is_dir():
                shutil.copytree(report_dir, tmp / "report")
            write_manifest(tmp, MANIFEST, FORMAT, manifest)
        self.directory = directory
        self.manifest = {"format": FORMAT, **manifest}
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> TransferModel:
        """Rebuild a model from its directory (no pickle anywhere); pretrained bodies are
        recreated from their recorded spec and checked to be the same weights."""
        directory = Path(directory)
        manifest = read_manifest(directory, MANIFEST, "transferkit model", FORMAT)
        backbones = []
        for entry in manifest["backbones"]:
            spec = entry["spec"]
            if entry.get("stored"):
                backbone = Backbone.load(directory / entry["stored"]).with_preprocessing(
                    Preprocessing.from_dict(spec["preprocessing"]))
            else:
                backbone = Backbone.from_spec(spec, where=str(directory))
            backbones.append(backbone.eval().to(memory_format=torch.channels_last))
        heads = [load_head(directory / name) for name in manifest["heads"]]
        return cls(backbones, heads, manifest["classes"], manifest["combine"], manifest,
                   directory)


def load_model(directory: str | os.PathLike) -> TransferModel:
    """Rebuild a :class:`TransferModel` from its directory (same as ``TransferModel.load``)."""
    return TransferModel.load(directory)


def ensemble_models(models: Sequence[TransferModel]) -> TransferModel:
    """One model that averages the class probabilities of several trained ones.

    Members may differ in backbone, resolution, head and strategy (fine-tuned bodies
    included); they must know the same classes. Each member's head counts once: a member that
    is itself an ``average`` ensemble brings all of its heads. A ``concat`` ensemble has one
    head on joined features and cannot be split; retrain it with ``ensemble_mode="average"``.
    """
    models = list(models)
    if len(models) < 2:
        raise ValueError(f"an ensemble needs at least 2 models, got {len(models)}")
    classes = models[0].classes_
    backbones, heads, entries, members = [], [], [], []
    for model in models:
        where = str(model.directory or "model")
        if set(model.classes_) != set(classes):
            raise ValueError(f"{where}: classes {sorted(model.classes_)} differ from "
                             f"{sorted(classes)}; ensemble members must know the same classes")
        if model.combine == "concat" and len(model.backbones) > 1:
            raise ValueError(f"{where}: a concat ensemble (one head on joined features) cannot "
                             f"join another ensemble; retrain it with --ensemble-mode average")
        backbones += model.backbones
        heads += model.heads
        entries += model.manifest.get("backbones") or [{} for _ in model.backbones]
        members.append({"directory": where, "strategy": model.manifest.get("strategy"),
                        "backbone": model.spec_.get("name"), "heads": len(model.heads),
                        "accuracy": model.metrics_.get("accuracy")})
    manifest = {"strategy": "ensemble", "members": members, "backbones": entries}
    return TransferModel(backbones, heads, classes, "average", manifest)
