"""Fast CPU inference: backbones exported to ONNX and run by ONNX Runtime.

``onnx_backbone(backbone)`` gives an object with the Backbone inference API (``embed``,
``forward``/logits, ``predict_topk``, ``spec``) that runs several times faster than eager
PyTorch on CPU; exports are cached in ``cache_dir("onnx")`` keyed by weights and preprocessing.
"""

from transferkit.inference.cache import (
    backbone_fingerprint,
    cached_onnx_path,
    export_cached,
    is_cached,
    onnx_available,
    onnx_backbone,
)
from transferkit.inference.export import export_backbone, export_module, read_metadata
from transferkit.inference.runtime import OnnxBackbone, session_options
from transferkit.inference.threads import (
    available_cores,
    decode_threads,
    inference_threads,
    set_torch_threads,
    torch_threads,
)
from transferkit.inference.transfer import export_transfer_model, head_as_module

__all__ = [
    "OnnxBackbone", "available_cores", "backbone_fingerprint", "cached_onnx_path",
    "decode_threads", "export_backbone", "export_cached", "export_module", "export_transfer_model",
    "head_as_module", "inference_threads",
    "is_cached", "onnx_available", "onnx_backbone", "read_metadata", "session_options",
    "set_torch_threads", "torch_threads",
]
