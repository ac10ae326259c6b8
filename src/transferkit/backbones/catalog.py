"""What backbones this machine can build, for ``transferkit backbones``: the registered
ones, the timm tags whose weights are in the Hugging Face cache, and (on request) every
pretrained tag timm knows."""

from __future__ import annotations

import fnmatch
from typing import Any

from transferkit.backbones.hub import cached_models
from transferkit.backbones.registry import BACKBONES


def _timm_facts(name: str) -> dict[str, Any]:
    """Input size from timm's pretrained config; parameters counted on the meta device (no
    memory, no weights)."""
    import timm
    import torch
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    return {"input_size": int(cfg.input_size[-1]) if cfg else None,
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "license": getattr(cfg, "license", None)}


def available_backbones(pattern: str | None = None) -> list[dict[str, Any]]:
    """Backbones ready offline: registered (weights in pip packages) and timm tags found in
    the Hugging Face cache; ``pattern`` filters names (``"resnet*"``)."""
    rows = []
    for entry in BACKBONES.describe():
        if pattern is None or fnmatch.fnmatch(entry.name, pattern):
            arch = entry.metadata.get("arch", entry.name)
            rows.append({"name": entry.name, "ready": "pip package", **_timm_facts(arch),
                         "description": entry.description})
    for name in cached_models():
        if pattern is None or fnmatch.fnmatch(name, pattern):
            rows.append({"name": name, "ready": "Hugging Face cache", **_timm_facts(name),
                         "description": f"timm/{name}"})
    return rows


def pretrained_tags(pattern: str | None = None) -> list[dict[str, Any]]:
    """Every pretrained tag timm knows (``timm.list_pretrained``), marking the cached ones."""
    import timm
    from timm.models import get_pretrained_cfg

    cached = set(cached_models())
    rows = []
    for name in timm.list_pretrained(pattern or ""):
        cfg = get_pretrained_cfg(name)
        rows.append({"name": name, "input_size": int(cfg.input_size[-1]),
                     "cached": name in cached, "license": cfg.license})
    return rows
