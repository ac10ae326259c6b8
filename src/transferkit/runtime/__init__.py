"""Running backbones fast on the CPU: engines behind one interface (eager PyTorch, ONNX
Runtime), ONNX export with the model's identity inside, and the export cache.

``make_runner(choose_engine("auto", backbone, n), backbone)`` gives a :class:`Runner`;
``onnx_backbone(backbone)`` an object with the Backbone inference API (``embed``,
``forward``/logits, ``predict_topk``, ``spec``) on ONNX Runtime, exported once and cached in
``cache_dir("onnx")`` keyed by weights and preprocessing.
"""

from transferkit.runtime.engines import (
    ENGINES,
    Runner,
    choose_engine,
    engine_available,
    make_runner,
    onnx_runner,
    run_in_order,
    runs_files,
    session_runner,
    torch_runner,
)
from transferkit.runtime.onnx_cache import (
    backbone_fingerprint,
    cached_onnx_path,
    export_cached,
    is_cached,
    onnx_available,
    onnx_backbone,
)
from transferkit.runtime.onnx_export import export_backbone, export_module, read_metadata
from transferkit.runtime.onnx_session import OnnxBackbone, session_options

__all__ = [
    "ENGINES", "OnnxBackbone", "Runner", "backbone_fingerprint", "cached_onnx_path",
    "choose_engine", "engine_available", "export_backbone", "export_cached", "export_module",
    "is_cached", "make_runner", "onnx_available", "onnx_backbone", "onnx_runner",
    "read_metadata", "run_in_order", "runs_files", "session_options", "session_runner",
    "torch_runner",
]
