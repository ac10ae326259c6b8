"""OpenVINO: the exported ONNX file compiled for this CPU, in f32 (PyTorch's outputs) or bf16.

The same file ``export_cached`` writes for ONNX Runtime is read by OpenVINO directly (no
conversion step to keep on disk) and compiled with ``INFERENCE_PRECISION_HINT`` f32 or bf16.
Compiled models are remembered in memory per backbone weights, preprocessing, precision,
threads and streams, like ONNX Runtime sessions. A model compiled with several streams runs
that many requests at once, each on its own cores; callers split a batch across them.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import queue
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit.backbones import Preprocessing
from transferkit.runtime.memo import BackboneMemo
from transferkit.runtime.onnx_cache import export_cached
from transferkit.runtime.onnx_export import FORMAT, METADATA_KEY
from transferkit.runtime.precision import resolve_precision
from transferkit.utils import inference_threads

OPENVINO_PRECISIONS = ("f32", "bf16")
_COMPILED: BackboneMemo[OpenVinoBackbone] = BackboneMemo()


def openvino_available() -> bool:
    """True when OpenVINO and the ONNX exporter's dependency (``onnx``) are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("openvino", "onnx"))


@functools.lru_cache(maxsize=1)
def _core():
    import openvino as ov

    # OpenVINO's bindings set up their numpy bridge lazily, on the first array they convert;
    # two threads doing that first conversion at once deadlock (a pybind11 one-time guard
    # against the GIL). Convert one array here, on the thread that builds the engine, before
    # any parallel inference.
    ov.Tensor(np.zeros((1,), np.float32))
    return ov.Core()


class OpenVinoBackbone:
    """An exported backbone compiled by OpenVINO for the CPU; answers like ``OnnxBackbone``.

    ``precision``: ``f32``, ``bf16`` or ``auto`` (bf16 where the CPU has it). ``streams``
    requests can run at once (from different threads), each with ``threads / streams`` cores.
    """

    def __init__(self, source: str | os.PathLike | bytes, precision: str = "f32",
                 threads: int | None = None, streams: int = 1) -> None:
        requested = resolve_precision(precision, "openvino", OPENVINO_PRECISIONS)
        self.path = Path("<bytes>.onnx") if isinstance(source, bytes) else Path(source)
        model = self._read(source)
        self.metadata = self._metadata(model)
        self.threads, self.streams = inference_threads(threads), max(1, int(streams))
        self.compiled = _core().compile_model(model, "CPU", {
            "INFERENCE_PRECISION_HINT": requested, "NUM_STREAMS": self.streams,
            "INFERENCE_NUM_THREADS": max(self.threads, self.streams)})
        # What the plugin will really use (it may refuse bf16 on some CPUs): report that.
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.output_names = [self._output_name(o) for o in self.compiled.outputs]
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(self.streams):
            self._requests.put(self.compiled.create_infer_request())
        self._spec = dict(self.metadata.get("spec", {}))
        self.preprocessing = Preprocessing.from_dict(self._spec.get("preprocessing", {}))
        self.name = self._spec.get("name", self.path.stem)

    def _read(self, source):
        if not isinstance(source, bytes) and not self.path.exists():
            raise FileNotFoundError(f"{self.path}: ONNX file not found")
        try:
            return _core().read_model(source if isinstance(source, bytes) else str(self.path))
        except Exception as exc:  # noqa: BLE001 - name the file
            raise ValueError(f"{self.path}: OpenVINO cannot read this model ({exc})") from exc

    def _metadata(self, model) -> dict[str, Any]:
        # OpenVINO keeps the ONNX file's metadata_props under rt_info "framework".
        if not model.has_rt_info(["framework", METADATA_KEY]):
            raise ValueError(f"{self.path}: ONNX file was not exported by transferkit")
        meta = json.loads(model.get_rt_info(["framework", METADATA_KEY]).astype(str))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{self.path}: unsupported format {meta.get('format')!r}")
        return meta

    def _output_name(self, output) -> str:
        # An output tensor can carry several names; prefer the one the export gave it.
        names = output.get_names()
        return next((n for n in self.metadata.get("outputs", []) if n in names),
                    output.get_any_name())

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
    def run(self, batch: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
        """Every output by name for a normalised (N, 3, S, S) float batch; thread-safe (one
        free request per call, waiting when all ``streams`` are busy)."""
        if isinstance(batch, torch.Tensor):
            batch = batch.detach().float().contiguous().numpy()
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        size = self.metadata.get("input_size")
        if batch.ndim != 4 or batch.shape[1] != 3 or (size and batch.shape[2:] != (size, size)):
            raise ValueError(f"{self.path.name}: expected a batch of shape (N, 3, {size}, {size}),"
                             f" got {tuple(batch.shape)}")
        request = self._requests.get()
        try:
            request.infer({0: batch}, share_inputs=True)
            return {name: request.get_output_tensor(i).data.copy()
                    for i, name in enumerate(self.output_names)}
        finally:
            self._requests.put(request)

    def _output(self, name: str, batch) -> torch.Tensor:
        if name not in self.output_names:
            raise ValueError(f"{self.path.name}: this model has no {name!r} output "
                             f"(it has {', '.join(self.output_names)})")
        return torch.from_numpy(self.run(batch)[name])

    def embed(self, batch: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Pooled penultimate features (N, num_features) in float32, as ``Backbone.embed``."""
        return self._output("embedding", batch)

    def forward(self, batch: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Class logits, as ``Backbone.forward``."""
        return self._output("logits", batch)

    __call__ = forward
    logits = forward

    def predict_topk(self, batch, k: int = 5) -> list[list[tuple[int, float]]]:
        probs = self.forward(batch).softmax(dim=-1)
        top = probs.topk(min(k, probs.shape[-1]), dim=-1)
        return [list(zip(idx.tolist(), p.tolist())) for p, idx in zip(top.values, top.indices)]

    def eval(self) -> OpenVinoBackbone:
        return self

    def __repr__(self) -> str:
        return (f"OpenVinoBackbone({self.name!r}, precision={self.precision!r}, "
                f"threads={self.threads}, streams={self.streams})")


def openvino_backbone(backbone, precision: str = "f32", threads: int | None = None,
                      streams: int = 1) -> OpenVinoBackbone:
    """An OpenVINO twin of ``backbone``: exported once (the ONNX cache), compiled once per
    precision, threads and streams while its weights are unchanged."""
    resolved = resolve_precision(precision, "openvino", OPENVINO_PRECISIONS)
    config = (backbone.preprocessing, backbone.num_classes, resolved,
              inference_threads(threads), max(1, int(streams)))
    return _COMPILED.get_or_build(backbone, config, lambda: OpenVinoBackbone(
        export_cached(backbone), resolved, threads, streams))
