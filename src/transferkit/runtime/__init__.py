"""Running backbones fast on the CPU: engines behind one interface (eager PyTorch, ONNX
Runtime, OpenVINO in f32 or bf16), ONNX export with the model's identity inside, and the
export cache.

``make_runner(choose_engine("auto", backbone, n), backbone)`` gives a :class:`Runner`;
``onnx_backbone(backbone)`` / ``openvino_backbone(backbone, precision)`` an object with the
Backbone inference API (``embed``, ``forward``/logits, ``predict_topk``, ``spec``), exported
once and cached in ``cache_dir("onnx")`` keyed by weights and preprocessing.
"""

from transferkit.runtime.engines import (
    AUTO_ORDER,
    ENGINES,
    Runner,
    choose_engine,
    choose_precision,
    compiled_runner,
    engine_available,
    engine_precisions,
    inference_model,
    make_runner,
    onnx_runner,
    openvino_runner,
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
from transferkit.runtime.openvino_engine import (
    OPENVINO_PRECISIONS,
    OpenVinoBackbone,
    openvino_available,
    openvino_backbone,
)
from transferkit.runtime.precision import (
    BF16_FLAGS,
    PRECISIONS,
    check_precision,
    cpu_bf16_flags,
    cpu_flags,
    cpu_has_bf16,
    cpu_model,
    resolve_precision,
)

__all__ = [
    "AUTO_ORDER", "BF16_FLAGS", "ENGINES", "OPENVINO_PRECISIONS", "OnnxBackbone",
    "OpenVinoBackbone", "PRECISIONS", "Runner", "backbone_fingerprint", "cached_onnx_path",
    "check_precision", "choose_engine", "choose_precision", "compiled_runner",
    "cpu_bf16_flags", "cpu_flags", "cpu_has_bf16", "cpu_model", "engine_available",
    "engine_precisions", "export_backbone", "export_cached", "export_module",
    "inference_model", "is_cached", "make_runner", "onnx_available", "onnx_backbone",
    "onnx_runner", "openvino_available", "openvino_backbone", "openvino_runner",
    "read_metadata", "resolve_precision", "run_in_order", "runs_files", "session_options",
    "session_runner", "torch_runner",
]
