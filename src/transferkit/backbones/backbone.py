"""A pretrained network plus everything needed to feed it and to name what comes out."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from transferkit.backbones.preprocessing import Preprocessing


class Backbone(nn.Module):
    """Wraps a timm model: ``forward`` gives class logits, ``embed`` the pooled features.

    The identity (``name``, ``weights_id``, ``preprocessing``) is what saved artefacts record,
    so a query can be refused when it would be embedded by a different model.
    """

    def __init__(self, model: nn.Module, name: str, preprocessing: Preprocessing,
                 weights_id: str = "random", source: str = "timm") -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.preprocessing = preprocessing
        self.weights_id = weights_id
        self.source = source

    # -- shapes -------------------------------------------------------------------------
    @property
    def num_features(self) -> int:
        return int(self.model.num_features)

    @property
    def num_classes(self) -> int:
        return int(getattr(self.model, "num_classes", 0))

    @property
    def arch(self) -> str:
        cfg = getattr(self.model, "pretrained_cfg", {}) or {}
        return cfg.get("architecture", type(self.model).__name__)

    # -- forward passes -----------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Unpooled feature map of the last stage (N, C, H, W)."""
        return self.model.forward_features(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features (N, num_features): the transfer-learning embedding."""
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def layer_names(self) -> list[str]:
        """Names usable by feature visualisation and intermediate feature extraction."""
        return [name for name, _ in self.model.named_modules() if name]

    def block_names(self) -> list[str]:
        """Coarse stages (e.g. ``blocks.0`` … ``blocks.6``), shallow to deep: the unfreeze unit."""
        from transferkit.backbones.arch import block_names

        return block_names(self.model)

    # -- identity -----------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arch": self.arch,
            "source": self.source,
            "weights_id": self.weights_id,
            "num_features": self.num_features,
            "preprocessing": self.preprocessing.to_dict(),
        }

    def with_preprocessing(self, preprocessing: Preprocessing) -> Backbone:
        self.preprocessing = preprocessing
        return self

    # -- ImageNet classification ---------------------------------------------------------
    @torch.no_grad()
    def predict_topk(self, batch: torch.Tensor, k: int = 5) -> list[list[tuple[int, float]]]:
        self.eval()
        probs = self.forward(batch).softmax(dim=-1)
        top = probs.topk(min(k, probs.shape[-1]), dim=-1)
        return [list(zip(idx.tolist(), p.tolist())) for p, idx in zip(top.values, top.indices)]

    # -- persistence ----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write weights (safetensors) and a manifest so ``create(directory)`` rebuilds it."""
        from safetensors.torch import save_file

        from transferkit.utils import atomic_path

        directory = Path(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            state = {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}
            save_file(state, str(tmp / "backbone.safetensors"))
            manifest = {"format": "transferkit-backbone/1", "arch": self.arch,
                        "num_classes": self.num_classes, **self.spec()}
            (tmp / "backbone.json").write_text(json.dumps(manifest, indent=2))
        return directory


def state_dict_id(state: dict[str, torch.Tensor]) -> str:
    """Short content hash of a state dict; names a set of weights in manifests."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key]
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        flat = tensor.detach().reshape(-1)
        digest.update(flat[: min(64, flat.numel())].float().numpy().tobytes())
    return digest.hexdigest()[:16]
