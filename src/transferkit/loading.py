"""``transferkit.load(path)``: open any saved artefact by the format it records.

Every artefact names its format (``transferkit-<kind>/<version>``) in its manifest, parquet
metadata, index header or ONNX metadata; this module maps each format to its class's
``load``. It sits above every capability, beside the CLI and the service.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transferkit.audio import AudioIndex, AudioModel
from transferkit.autoencoders import load_autoencoder
from transferkit.backbones import Backbone
from transferkit.dense.localize import Localizer
from transferkit.dense.segment import SegmentationModel
from transferkit.features import Embeddings
from transferkit.heads import ArrayHead
from transferkit.runtime import OnnxBackbone, read_metadata
from transferkit.search import ImageIndex, VectorIndex
from transferkit.text import TextIndex, TextModel, load_text_encoder
from transferkit.train import TransferModel
from transferkit.utils import peek_format

# The manifest file names a saved directory may hold, most specific first.
MANIFEST_FILES = ("manifest.json", "backbone.json", "head.json", "autoencoder.json",
                  "text_encoder.json")

DIRECTORY_FORMATS: dict[str, Callable[[Path], Any]] = {
    "transferkit-model/1": TransferModel.load,
    "transferkit-text-model/1": TextModel.load,
    "transferkit-audio-model/1": AudioModel.load,
    "transferkit-backbone/1": Backbone.load,
    "transferkit-head/1": ArrayHead.load,
    "transferkit-autoencoder/1": load_autoencoder,
    "transferkit-text-encoder/1": load_text_encoder,
    "transferkit-localizer/1": Localizer.load,
    SegmentationModel.FORMAT: SegmentationModel.load,
}


def artefact_format(path: str | os.PathLike) -> str:
    """The format string ``path`` records; ValueError naming the path when it has none."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        found = peek_format(path, MANIFEST_FILES)
    elif path.suffix == ".parquet":
        found = Embeddings.FORMAT
    elif path.suffix == ".onnx":
        found = read_metadata(path).get("format")
    else:
        found = VectorIndex.read_header(path).get("format")
    if not found:
        raise ValueError(f"{path}: not a transferkit artefact (no manifest with a format; "
                         f"expected one of {', '.join(MANIFEST_FILES)})")
    return found


def load(path: str | os.PathLike) -> Any:
    """The object saved at ``path``: a TransferModel, TextModel, AudioModel,
    SegmentationModel, Backbone, head,
    autoencoder, text encoder, Embeddings table, ImageIndex / TextIndex / AudioIndex, or an
    ONNX session."""
    path = Path(path)
    fmt = artefact_format(path)
    if path.is_dir():
        if fmt not in DIRECTORY_FORMATS:
            raise ValueError(f"{path}: format {fmt!r} is not one this transferkit version reads"
                             f" ({', '.join(sorted(DIRECTORY_FORMATS))})")
        return DIRECTORY_FORMATS[fmt](path)
    if path.suffix == ".parquet":
        return Embeddings.load(path)
    if path.suffix == ".onnx":
        return OnnxBackbone(path)
    kind = VectorIndex.kind_of(path)
    if kind == "image":
        return ImageIndex.load(path)
    if kind == "text":
        return TextIndex.load(path)
    if kind == "audio":
        return AudioIndex.load(path)
    return VectorIndex.load(path)
