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

from transferkit.runtime.exported import ExportedModel
from transferkit.runtime.memo import BackboneMemo
from transferkit.runtime.onnx_cache import export_cached
from transferkit.runtime.onnx_export import METADATA_KEY
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


class OpenVinoBackbone(ExportedModel):
    """An exported backbone compiled by OpenVINO for the CPU; answers like ``OnnxBackbone``.

    ``precision``: ``f32``, ``bf16`` or ``auto`` (bf16 where the CPU has it). ``streams``
    requests can run at once (from different threads), each with ``threads / streams`` cores.
    """

    def __init__(self, source: str | os.PathLike | bytes, precision: str = "f32",
                 threads: int | None = None, streams: int = 1) -> None:
        requested = resolve_precision(precision, "openvino", OPENVINO_PRECISIONS)
        self.path = Path("<bytes>.onnx") if isinstance(source, bytes) else Path(source)
        model = self._read(source)
        self._adopt_metadata(self._metadata(model))
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

    def _read(self, source):
        if not isinstance(source, bytes) and not self.path.exists():
            raise FileNotFoundError(f"{self.path}: ONNX file not found")
        try:
            return _core().read_model(source if isinstance(source, bytes) else str(self.path))
        except Exception as exc:  # noqa: BLE001 - name the file
            raise ValueError(f"{self.path}: OpenVINO cannot read this model ({exc})") from exc

    @staticmethod
    def _metadata(model) -> dict[str, Any] | None:
        # OpenVINO keeps the ONNX file's metadata_props under rt_info "framework".
        if not model.has_rt_info(["framework", METADATA_KEY]):
            return None
        return json.loads(model.get_rt_info(["framework", METADATA_KEY]).astype(str))

    def _output_name(self, output) -> str:
        # An output tensor can carry several names; prefer the one the export gave it.
        names = output.get_names()
        return next((n for n in self.metadata.get("outputs", []) if n in names),
                    output.get_any_name())

    # -- running --------------------------------------------------------------------------
    def run(self, batch: torch.Tensor | np.ndarray, outputs: list[str] | None = None
            ) -> dict[str, np.ndarray]:
        """Outputs by name (default all) for a normalised (N, 3, S, S) float batch;
        thread-safe (one free request per call, waiting when all ``streams`` are busy)."""
        batch = self._as_batch(batch)
        wanted = outputs or self.output_names
        request = self._requests.get()
        try:
            request.infer({0: batch}, share_inputs=True)
            return {name: request.get_output_tensor(i).data.copy()
                    for i, name in enumerate(self.output_names) if name in wanted}
        finally:
            self._requests.put(request)

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
