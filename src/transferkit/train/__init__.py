"""Transfer learning on labelled images: data and splits, cached features, heads or
fine-tuning, saved model directories with reports, and an advisor.

    from transferkit.train import fit, load_model
    model = fit("photos/", strategy="logreg", output="my-model")
    load_model("my-model").predict_paths(["new.jpg"], top_k=3)

Names load on first use, so the CLI can read :class:`FinetuneConfig` (its option list)
without importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "advisor": ("advise", "format_advice"),
    "config": ("FinetuneConfig",),
    "data": ("TUXPAINT_CLASSES", "LabelledImages", "Split", "fashion_mnist_folder", "load_csv",
             "load_image_folder", "load_labelled", "stratified_split", "tuxpaint_dataset"),
    "export": ("export_transfer_model", "head_as_module"),
    "features": ("cached_features", "clear_feature_cache"),
    "fitting": ("BODY_STRATEGIES", "FROZEN_STRATEGIES", "STRATEGIES", "fit"),
    "model": ("TransferModel", "ensemble_models", "load_model"),
    "report": ("classification_metrics", "format_metrics", "write_report"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
_ERRORS = ("IncompatibleModelError", "TrainingInterrupted")

__all__ = sorted([*_MODULE_OF, *_ERRORS])


def __getattr__(name: str) -> Any:
    if name in _ERRORS:
        value = getattr(import_module("transferkit.errors"), name)
    elif name in _MODULE_OF:
        value = getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
