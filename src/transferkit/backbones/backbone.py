"""A pretrained network plus everything needed to feed it and to name what comes out."""

from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from transferkit.backbones.arch import block_names, feature_taps, resize_input
from transferkit.backbones.preprocessing import Preprocessing
from transferkit.spec import ensure_compatible
from transferkit.utils import atomic_path, write_manifest

FORMAT = "transferkit-backbone/1"
MANIFEST = "backbone.json"


class Backbone(nn.Module):
    """Wraps a timm model: ``forward`` gives class logits, ``embed`` the pooled features.

    The identity (``name``, ``weights_id``, ``preprocessing``) is what saved artefacts record,
    so a query can be refused when it would be embedded by a different model.
    """

    def __init__(self, model: nn.Module, name: str, preprocessing: Preprocessing,
                 weights_id: str = "random", source: str = "timm",
                 weights: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.preprocessing = preprocessing
        self.weights_id = weights_id
        self.source = source
        self.weights = weights  # where pretrained weights came from (hub repo, revision, hash)

    # -- shapes -------------------------------------------------------------------------
    @property
    def num_features(self) -> int:
        """Width of :meth:`embed`: timm's ``head_hidden_size`` when a pre-logits layer widens
        the pooled features (MobileNetV3's 576 -> 1024), else ``num_features``."""
        return int(getattr(self.model, "head_hidden_size", None) or self.model.num_features)

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
        return block_names(self.model)

    def feature_taps(self) -> list[dict[str, Any]]:
        """``[{module, num_chs, reduction}]`` shallow to deep (timm's ``feature_info``): the
        feature maps dense heads and layer atlases read."""
        return feature_taps(self.model)

    # -- identity -----------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        spec = {
            "name": self.name,
            "arch": self.arch,
            "source": self.source,
            "weights_id": self.weights_id,
            "num_features": self.num_features,
            "preprocessing": self.preprocessing.to_dict(),
        }
        if self.weights:
            spec["weights"] = dict(self.weights)
        return spec

    def with_preprocessing(self, preprocessing: Preprocessing) -> Backbone:
        """A copy that feeds the same weights (shared, not copied) another preprocessing.

        A model that takes one input size only (ViT) gets its own copy at the new size, its
        position embedding resampled by timm.
        """
        twin = copy.copy(self)  # its own attributes; the timm model (weights) stays shared
        twin._modules = dict(self._modules)  # assigning twin.model must not touch self
        twin.preprocessing = preprocessing
        twin.model = resize_input(self.model, preprocessing.input_size)
        return twin

    def with_image_size(self, image_size: int | None) -> Backbone:
        """The same weights at another resolution (no crop); ``None`` returns ``self``."""
        if image_size is None:
            return self
        return self.with_preprocessing(self.preprocessing.with_size(image_size, crop_pct=1.0))

    @classmethod
    def from_spec(cls, spec: dict[str, Any], where: str | None = None) -> Backbone:
        """Rebuild the backbone a saved artefact recorded, and prove it is the same one.

        Raises :class:`~transferkit.errors.IncompatibleModelError` (naming ``where``) when
        the weights found here differ from the recorded ones.
        """
        from transferkit.backbones.registry import create

        source = str(spec.get("source", ""))
        if source.startswith("dir:"):
            model = create(source[4:])
        elif source.startswith("hf:"):
            model = create(spec["name"], revision=(spec.get("weights") or {}).get("revision"))
        elif source.startswith("timm+"):
            model = create(spec.get("name") or spec["arch"], checkpoint=source[5:])
        elif spec.get("name"):
            model = create(spec["name"])
        else:
            raise ValueError(f"{where or 'spec'}: names no model to rebuild ({spec!r:.200})")
        if spec.get("preprocessing"):
            model = model.with_preprocessing(Preprocessing.from_dict(spec["preprocessing"]))
        ensure_compatible(spec, model.spec(), where=where or f"model {spec.get('name')}")
        return model

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Backbone:
        """A backbone written by :meth:`save` (a fine-tuned or from-scratch body)."""
        from transferkit.backbones.registry import load_backbone_dir

        return load_backbone_dir(Path(directory))

    # -- ImageNet classification ---------------------------------------------------------
    @torch.no_grad()
    def predict_topk(self, batch: torch.Tensor, k: int = 5) -> list[list[tuple[int, float]]]:
        self.eval()
        probs = self.forward(batch).softmax(dim=-1)
        top = probs.topk(min(k, probs.shape[-1]), dim=-1)
        return [list(zip(idx.tolist(), p.tolist())) for p, idx in zip(top.values, top.indices)]

    # -- persistence ----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write weights (safetensors) and a manifest so ``Backbone.load(directory)`` (or
        ``create(directory)``) rebuilds it."""
        from safetensors.torch import save_file

        directory = Path(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            state = {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}
            save_file(state, str(tmp / "backbone.safetensors"))
            write_manifest(tmp, MANIFEST, FORMAT, {"arch": self.arch,
                                                   "num_classes": self.num_classes,
                                                   **self.spec()})
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
