"""Exported ONNX models cached on disk (keyed by weights + preprocessing) and in memory.

Exporting Lite0 takes a few seconds, loading a cached file a fraction of one; keeping the
session of a backbone in memory makes repeated calls (search queries, index chunks) free.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import threading
import weakref
from pathlib import Path

import torch

from transferkit.runtime.onnx_export import FORMAT, OPSET, export_backbone
from transferkit.runtime.onnx_session import OnnxBackbone
from transferkit.utils import cache_dir, inference_threads

_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def onnx_available() -> bool:
    """True when ONNX Runtime and the exporter's dependency (``onnx``) are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def backbone_fingerprint(backbone) -> str:
    """Content hash of everything that changes the exported graph: weights, size, versions."""
    digest = hashlib.sha256()
    spec = backbone.spec()
    digest.update(json.dumps({"spec": spec, "arch": backbone.arch, "format": FORMAT,
                              "opset": OPSET, "torch": torch.__version__,
                              "classes": backbone.num_classes}, sort_keys=True).encode())
    for key, tensor in backbone.model.state_dict().items():
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        data = tensor.detach().contiguous()
        if data.dtype == torch.bfloat16:
            data = data.float()
        digest.update(data.numpy().tobytes())
    return digest.hexdigest()[:20]


def _remembered_fingerprint(backbone) -> str:
    # Hashing Lite0's weights takes ~30 ms: remember it while the weights are unchanged, so
    # per-query calls (search, service) do not pay it every time.
    config, state = _keys(backbone, 1)
    entry = _FINGERPRINTS.get(backbone.model, {}).get(config)
    if entry is not None and entry[0] == state:
        return entry[1]
    fingerprint = backbone_fingerprint(backbone)
    _FINGERPRINTS.setdefault(backbone.model, {})[config] = (state, fingerprint)
    return fingerprint


def cached_onnx_path(backbone) -> Path:
    """Where this backbone's export lives (it may not exist yet)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(backbone.name))[:60]
    size = backbone.preprocessing.input_size
    return cache_dir("onnx") / f"{safe}-{size}px-{_remembered_fingerprint(backbone)}.onnx"


def is_cached(backbone) -> bool:
    return cached_onnx_path(backbone).exists() or _memo_hit(backbone, None) is not None


def export_cached(backbone) -> Path:
    """The cached export of ``backbone``, exporting it first when missing."""
    path = cached_onnx_path(backbone)
    if not path.exists():
        export_backbone(backbone, path)
    return path


def _keys(backbone, threads: int | None) -> tuple[tuple, tuple]:
    # Sessions are remembered per timm model (shared by copies of a Backbone that differ only
    # in preprocessing). Parameter storage + version counters change whenever weights are
    # assigned or updated in place (optimiser steps, load_state_dict): a stale session is
    # detected without hashing the weights.
    config = (backbone.preprocessing, backbone.num_classes, inference_threads(threads))
    state = tuple((t.data_ptr(), t._version) for t in backbone.model.state_dict().values())
    return config, state


def _memo_hit(backbone, threads: int | None) -> OnnxBackbone | None:
    config, state = _keys(backbone, threads)
    entry = _SESSIONS.get(backbone.model, {}).get(config)
    if entry is not None and entry[0] == state:
        return entry[1]
    return None


def onnx_backbone(backbone, threads: int | None = None) -> OnnxBackbone:
    """An ONNX Runtime twin of ``backbone`` (exported once, then cached on disk and in memory)."""
    with _LOCK:
        hit = _memo_hit(backbone, threads)
        if hit is not None:
            return hit
        session = OnnxBackbone(export_cached(backbone), threads=threads)
        config, state = _keys(backbone, threads)
        _SESSIONS.setdefault(backbone.model, {})[config] = (state, session)
        return session
