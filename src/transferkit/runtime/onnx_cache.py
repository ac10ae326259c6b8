"""Exported ONNX models cached on disk (keyed by weights + preprocessing) and in memory.

Exporting Lite0 takes a few seconds, loading a cached file a fraction of one; keeping the
session of a backbone in memory makes repeated calls (search queries, index chunks) free.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import weakref
from pathlib import Path

import torch

from transferkit.runtime.memo import BackboneMemo, weights_state
from transferkit.runtime.onnx_export import FORMAT, OPSET, export_backbone
from transferkit.runtime.onnx_session import OnnxBackbone
from transferkit.utils import cache_dir, inference_threads

_SESSIONS: BackboneMemo[OnnxBackbone] = BackboneMemo()
_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


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
    config, state = _session_config(backbone, 1), weights_state(backbone)
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
    return cached_onnx_path(backbone).exists() or _SESSIONS.get(
        backbone, _session_config(backbone, None)) is not None


def export_cached(backbone) -> Path:
    """The cached export of ``backbone``, exporting it first when missing."""
    path = cached_onnx_path(backbone)
    if not path.exists():
        export_backbone(backbone, path)
    return path


def _session_config(backbone, threads: int | None) -> tuple:
    return (backbone.preprocessing, backbone.num_classes, inference_threads(threads))


def onnx_backbone(backbone, threads: int | None = None) -> OnnxBackbone:
    """An ONNX Runtime twin of ``backbone`` (exported once, then cached on disk and in memory)."""
    return _SESSIONS.get_or_build(backbone, _session_config(backbone, threads),
                                  lambda: OnnxBackbone(export_cached(backbone), threads=threads))
