"""Export a backbone (or backbone + head) to one ONNX file that carries its own identity.

The file's metadata holds the backbone ``spec()`` (name, weights, preprocessing), the output
names and class names, so :class:`~transferkit.runtime.OnnxBackbone` can embed inputs exactly
the way the PyTorch model would without any other file.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from transferkit.utils import atomic_path

FORMAT = "transferkit-onnx/1"
OPSET = 17
INPUT_NAME = "pixels"
METADATA_KEY = "transferkit"


class _BackboneOutputs(nn.Module):
    """Pooled embedding and (when the network has a classifier) ImageNet logits in one pass."""

    def __init__(self, model: nn.Module, with_logits: bool) -> None:
        super().__init__()
        self.model = model
        self.with_logits = with_logits

    def forward(self, x: torch.Tensor):
        feats = self.model.forward_features(x)
        embedding = self.model.forward_head(feats, pre_logits=True)
        if not self.with_logits:
            return embedding
        return embedding, self.model.forward_head(feats)


def backbone_graph(backbone) -> tuple[nn.Module, list[str]]:
    """The module to export for a Backbone and its output names."""
    with_logits = backbone.num_classes > 0
    names = ["embedding", "logits"] if with_logits else ["embedding"]
    return _BackboneOutputs(backbone.model, with_logits), names


def export_backbone(backbone, path: str | os.PathLike,
                    extra_metadata: dict[str, Any] | None = None) -> Path:
    """Write ``backbone`` as ONNX (outputs ``embedding`` and ``logits``), atomically."""
    module, names = backbone_graph(backbone)
    meta = {"kind": "backbone", "spec": backbone.spec(), "num_classes": backbone.num_classes,
            **(extra_metadata or {})}
    return export_module(module, path, names, backbone.preprocessing.input_size, meta)


def export_module(module: nn.Module, path: str | os.PathLike, output_names: Sequence[str],
                  input_size: int, metadata: dict[str, Any], opset: int = OPSET) -> Path:
    """Trace ``module`` on a (1, 3, S, S) input with a dynamic batch axis and save it.

    The module is deep-copied first: the TorchScript exporter folds batch norm into the
    convolution weights *in place*, which would silently change the caller's model.
    """
    module = copy.deepcopy(module).eval().float().to(memory_format=torch.contiguous_format)
    example = torch.zeros(1, 3, int(input_size), int(input_size))
    meta = {"format": FORMAT, "input": INPUT_NAME, "outputs": list(output_names),
            "input_size": int(input_size), "torch": torch.__version__, **metadata}
    path = Path(path)
    with atomic_path(path, suffix=".onnx") as tmp:
        _trace_to_onnx(module, example, tmp, list(output_names), opset)
        _write_metadata(tmp, meta)
    return path


def _trace_to_onnx(module: nn.Module, example: torch.Tensor, target: Path,
                   output_names: list[str], opset: int) -> None:
    dynamic = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in output_names}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            # The TorchScript exporter: ~1 s for Lite0 and one self-contained file.
            torch.onnx.export(module, (example,), str(target), input_names=[INPUT_NAME],
                              output_names=output_names, dynamic_axes=dynamic,
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        except Exception as legacy_error:  # noqa: BLE001 - fall back to the dynamo exporter
            if target.exists():
                target.unlink()
            try:
                batch = torch.export.Dim("batch", min=1)
                torch.onnx.export(module, (example.expand(2, -1, -1, -1).contiguous(),),
                                  str(target), input_names=[INPUT_NAME],
                                  output_names=output_names, dynamo=True,
                                  dynamic_shapes=({0: batch},), external_data=False)
            except Exception as exc:
                raise ValueError(f"{target.name}: ONNX export failed ({legacy_error}; "
                                 f"dynamo exporter: {exc.__class__.__name__}: {exc})") from exc


def _write_metadata(path: Path, meta: dict[str, Any]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(model, str(path))


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The transferkit manifest stored inside an exported ONNX file."""
    import onnx

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: ONNX file not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - name the file
        raise ValueError(f"{path}: not an ONNX file ({exc.__class__.__name__})") from exc
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise ValueError(f"{path}: ONNX file was not exported by transferkit (no metadata)")
