"""What every runtime that executes a transferkit ONNX export shares: the identity read from
the file's metadata and the Backbone-like surface (``embed``, ``forward`` / logits,
``predict_topk``, ``spec()``), so feature extraction, search and prediction code can take an
ONNX Runtime session, an OpenVINO compiled model or a :class:`~transferkit.backbones.Backbone`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit.backbones import Preprocessing
from transferkit.runtime.onnx_export import FORMAT


class ExportedModel:
    """Base of the runtimes: subclasses set ``path``, ``output_names`` and call
    :meth:`_adopt_metadata`, then implement :meth:`run`."""

    path: Path
    output_names: list[str]

    def _adopt_metadata(self, metadata: dict[str, Any] | None) -> None:
        """Check and keep the transferkit metadata of the export (raises naming the file)."""
        if metadata is None:
            raise ValueError(f"{self.path}: ONNX file was not exported by transferkit")
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{self.path}: unsupported format {metadata.get('format')!r}")
        self.metadata: dict[str, Any] = metadata
        self._spec = dict(metadata.get("spec", {}))
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
        """Raw outputs by name (``outputs``, default all) for a normalised batch."""
        raise NotImplementedError

    def _as_batch(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        """A contiguous float32 (N, 3, S, S) array, or a ValueError naming the shape wanted."""
        if isinstance(batch, torch.Tensor):
            batch = batch.detach().float().contiguous().numpy()
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        size = self.metadata.get("input_size")
        if batch.ndim != 4 or batch.shape[1] != 3 or (size and batch.shape[2:] != (size, size)):
            raise ValueError(f"{self.path.name}: expected a batch of shape (N, 3, {size}, {size}),"
                             f" got {tuple(batch.shape)}")
        return batch

    def _output(self, name: str, batch) -> torch.Tensor:
        if name not in self.output_names:
            raise ValueError(f"{self.path.name}: this model has no {name!r} output "
                             f"(it has {', '.join(self.output_names)})")
        return torch.from_numpy(self.run(batch, [name])[name])

    def embed(self, batch: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Pooled penultimate features (N, num_features) in float32, as ``Backbone.embed``."""
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

    def eval(self) -> ExportedModel:  # lets code written for nn.Module call .eval() harmlessly
        return self
