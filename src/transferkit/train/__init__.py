"""Transfer learning on labelled images: data and splits, cached features, heads or
fine-tuning, saved model directories with reports, and an advisor.

    from transferkit.train import fit, load_model
    model = fit("photos/", strategy="logreg", output="my-model")
    load_model("my-model").predict_paths(["new.jpg"], top_k=3)
"""

from transferkit.errors import IncompatibleModelError
from transferkit.train.advise import advise, format_advice
from transferkit.train.data import (
    TUXPAINT_CLASSES,
    LabelledImages,
    Split,
    fashion_mnist_folder,
    load_csv,
    load_image_folder,
    load_labelled,
    stratified_split,
    tuxpaint_dataset,
)
from transferkit.train.export import export_transfer_model, head_as_module
from transferkit.train.features import cached_features, clear_feature_cache
from transferkit.train.finetune import FinetuneConfig, TrainingInterrupted
from transferkit.train.fit import FROZEN_STRATEGIES, STRATEGIES, fit
from transferkit.train.model import TransferModel, ensemble_models, load_model
from transferkit.train.report import classification_metrics, format_metrics, write_report

__all__ = [
    "FROZEN_STRATEGIES", "STRATEGIES", "TUXPAINT_CLASSES", "FinetuneConfig",
    "IncompatibleModelError", "LabelledImages", "Split", "TrainingInterrupted",
    "TransferModel", "advise", "cached_features", "classification_metrics",
    "clear_feature_cache", "ensemble_models", "export_transfer_model", "fashion_mnist_folder",
    "fit", "format_advice", "format_metrics", "head_as_module", "load_csv", "load_image_folder",
    "load_labelled", "load_model", "stratified_split", "tuxpaint_dataset", "write_report",
]
