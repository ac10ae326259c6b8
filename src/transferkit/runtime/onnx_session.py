"""ONNX Runtime session that answers like a :class:`~transferkit.backbones.Backbone` (the
surface it shares with the OpenVINO runtime lives in :mod:`transferkit.runtime.exported`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from transferkit.runtime.exported import ExportedModel
from transferkit.runtime.onnx_export import METADATA_KEY
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


class OnnxBackbone(ExportedModel):
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
        self._adopt_metadata(json.loads(raw) if raw is not None else None)
        self.threads = inference_threads(threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, batch: torch.Tensor | np.ndarray, outputs: list[str] | None = None
            ) -> dict[str, np.ndarray]:
        """Raw outputs by name for a normalised (N, 3, H, W) float batch."""
        names = outputs or self.output_names
        return dict(zip(names, self.session.run(names, {self.input_name: self._as_batch(batch)})))

    def __repr__(self) -> str:
        return f"OnnxBackbone({self.name!r}, path={str(self.path)!r}, threads={self.threads})"
