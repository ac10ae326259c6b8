"""ONNX Runtime session that answers like a :class:`~transferkit.backbones.Backbone`.

Same ``embed(batch)`` / ``forward(batch)`` (logits) / ``predict_topk`` / ``spec()`` surface, so
feature extraction, search and prediction code can take either object.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit.backbones import Preprocessing
from transferkit.runtime.onnx_export import FORMAT, METADATA_KEY
from transferkit.utils import inference_threads


def session_options(threads: int | None = None, spinning: bool = False):
    """CPU session options: all graph optimisations, ``threads`` intra-op threads.

    Spinning is off by default: when decode threads share the cores, threads that busy-wait
    between operators take CPU time the decoders need.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = inference_threads(threads)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    return options


class OnnxBackbone:
    """An exported backbone (or backbone + head) running on ONNX Runtime's CPU provider."""

    def __init__(self, path: str | os.PathLike | bytes, threads: int | None = None,
                 spinning: bool = False) -> None:
        import onnxruntime as ort

        # Raw bytes let a remote worker (Ray actor) run a model it has no file for.
        source = path if isinstance(path, bytes) else None
        self.path = Path("<bytes>.onnx") if source is not None else Path(path)
        if source is None and not self.path.exists():
            raise FileNotFoundError(f"{self.path}: ONNX file not found")
        try:
            self.session = ort.InferenceSession(source if source is not None else str(self.path),
                                                session_options(threads, spinning),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - name the file
            raise ValueError(f"{self.path}: cannot load ONNX model ({exc})") from exc
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise ValueError(f"{self.path}: ONNX file was not exported by transferkit")
        self.metadata: dict[str, Any] = json.loads(raw)
        if self.metadata.get("format") != FORMAT:
            raise ValueError(f"{self.path}: unsupported format {self.metadata.get('format')!r}")
        self.threads = inference_threads(threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._spec = dict(self.metadata.get("spec", {}))
        self.preprocessing = Preprocessing.from_dict(self._spec.get("preprocessing", {}))
        self.name = self._spec.get("name", self.path.stem)

    # -- identity (mirrors Backbone) ------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return dict(self._spec)

    @property
    def num_features(self) -> int:
        return int(self._spec.get("num_features", 0))

    @property
    def num_classes(self) -> int:
        return int(self.metadata.get("num_classes", 0))

    @property
    def class_names(self) -> list[str] | None:
        return self.metadata.get("class_names")

    # -- running --------------------------------------------------------------------------
    def run(self, batch: torch.Tensor | np.ndarray, outputs: list[str] | None = None
            ) -> dict[str, np.ndarray]:
        """Raw outputs by name for a normalised (N, 3, H, W) float batch."""
        if isinstance(batch, torch.Tensor):
            batch = batch.detach().float().contiguous().numpy()
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        size = self.metadata.get("input_size")
        if batch.ndim != 4 or batch.shape[1] != 3 or (size and batch.shape[2:] != (size, size)):
            raise ValueError(f"{self.path.name}: expected a batch of shape (N, 3, {size}, {size}),"
                             f" got {tuple(batch.shape)}")
        names = outputs or self.output_names
        return dict(zip(names, self.session.run(names, {self.input_name: batch})))

    def _output(self, name: str, batch) -> torch.Tensor:
        if name not in self.output_names:
            raise ValueError(f"{self.path.name}: this model has no {name!r} output "
                             f"(it has {', '.join(self.output_names)})")
        return torch.from_numpy(self.run(batch, [name])[name])

    def embed(self, batch: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Pooled penultimate features (N, num_features), as ``Backbone.embed``."""
        return self._output("embedding", batch)

    def forward(self, batch: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Class logits, as ``Backbone.forward`` (or the head's logits for a transfer model)."""
        return self._output("logits", batch)

    __call__ = forward
    logits = forward

    def predict_topk(self, batch, k: int = 5) -> list[list[tuple[int, float]]]:
        probs = self.forward(batch).softmax(dim=-1)
        top = probs.topk(min(k, probs.shape[-1]), dim=-1)
        return [list(zip(idx.tolist(), p.tolist())) for p, idx in zip(top.values, top.indices)]

    def eval(self) -> OnnxBackbone:  # lets code written for nn.Module call .eval() harmlessly
        return self

    def __repr__(self) -> str:
        return f"OnnxBackbone({self.name!r}, path={str(self.path)!r}, threads={self.threads})"
