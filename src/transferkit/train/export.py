"""Export a trained transfer model (backbone + head) to one ONNX graph.

Heads that are a function of the embedding expressible in torch (linear probe, MLP,
fine-tuned classifier, and logistic regression, which is linear too) are fused after the
backbone: outputs ``embedding``, ``logits`` and ``probabilities``. Tree heads (random forest,
gradient boosting) are not graph ops here: the file then holds the backbone only and its
metadata says so; apply the saved head to the ``embedding`` output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from transferkit.runtime import export_module


class _Standardised(nn.Module):
    """(x - mean) / scale, then the head's layers."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, layers: nn.Module) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, np.float32)))
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x - self.mean) / self.scale)


class _BackboneAndHead(nn.Module):
    def __init__(self, model: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, x: torch.Tensor):
        embedding = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        logits = self.head(embedding)
        return embedding, logits, logits.softmax(dim=-1)


def head_as_module(head) -> nn.Module | None:
    """A torch module computing the head's logits from raw embeddings, or None."""
    if hasattr(head, "module_") and hasattr(head, "mean_"):
        return _Standardised(head.mean_, head.scale_, head.module_)
    if hasattr(head, "coef_") and hasattr(head, "intercept_") and hasattr(head, "mean_"):
        coef = np.asarray(head.coef_, np.float32)
        linear = nn.Linear(coef.shape[1], coef.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(coef))
            linear.bias.copy_(torch.from_numpy(np.asarray(head.intercept_, np.float32)))
        return _Standardised(head.mean_, head.scale_, linear)
    return None


def export_transfer_model(model, path: str | os.PathLike) -> tuple[Path, bool]:
    """Write ``model`` (a TransferModel or its directory) as ONNX; -> (path, head included).

    Only single-backbone models are supported (an ensemble would be one graph per member).
    """
    if isinstance(model, (str, os.PathLike)):
        from transferkit.train.model import TransferModel

        model = TransferModel.load(model)
    if len(model.backbones) != 1 or len(model.heads) != 1:
        raise ValueError(f"{getattr(model, 'directory', 'model')}: ONNX export supports one "
                         f"backbone and one head, this model has {len(model.backbones)} "
                         f"backbone(s) and {len(model.heads)} head(s)")
    backbone, head = model.backbones[0], model.heads[0]
    module = head_as_module(head)
    classes = [str(c) for c in head.classes_]
    meta: dict[str, Any] = {"kind": "transfer-model", "spec": backbone.spec(),
                            "num_classes": len(classes), "class_names": classes,
                            "head": getattr(head, "kind", type(head).__name__),
                            "source": str(getattr(model, "directory", "") or "")}
    if module is None:
        meta.update(num_classes=0, head_included=False,
                    note=f"the {meta['head']} head is not in this graph: apply it to the "
                         f"'embedding' output")
        graph = _BackboneOnly(backbone.model)
        names = ["embedding"]
    else:
        meta["head_included"] = True
        graph = _BackboneAndHead(backbone.model, module.eval())
        names = ["embedding", "logits", "probabilities"]
    out = export_module(graph, path, names, backbone.preprocessing.input_size, meta)
    return out, module is not None


class _BackboneOnly(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)
