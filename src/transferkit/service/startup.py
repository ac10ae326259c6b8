"""Load the model, the image index and the text index at start, and build the service state.

Everything is loaded before the first request, so a bad path fails at start (not on a query)
and the first request is not slow.
"""

from __future__ import annotations

import os
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import anyio

from transferkit.audio import AudioIndex, AudioModel
from transferkit.backbones import Backbone
from transferkit.dense.localize import FORMAT as LOCALIZER_FORMAT
from transferkit.dense.localize import Localizer
from transferkit.dense.segment import SegmentationModel
from transferkit.errors import IncompatibleModelError
from transferkit.features import resolve_backbone
from transferkit.search import ImageIndex, duplicate_groups
from transferkit.service.catalog import ItemCatalog
from transferkit.service.engine import InferenceEngine
from transferkit.service.mistakes import EvaluationPredictions
from transferkit.service.projection import MapStore
from transferkit.service.schemas import IndexInfo, ModelInfo
from transferkit.service.state import ServiceState
from transferkit.service.thumbnails import ThumbnailStore
from transferkit.text import TextIndex, is_text_index
from transferkit.train import TransferModel
from transferkit.train.model import FORMAT as CLASSIFIER_FORMAT
from transferkit.utils import peek_format

# What a served model directory may be, by the format its manifest records.
MODEL_KINDS = {CLASSIFIER_FORMAT: "classifier",
               SegmentationModel.FORMAT: "segmenter", LOCALIZER_FORMAT: "localizer"}


def model_kind(path: str | os.PathLike) -> str:
    """``classifier``, ``segmenter`` or ``localizer``: what the model folder ``path`` holds,
    read from its manifest; FileNotFoundError / ValueError naming the folder otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: model folder not found")
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(f"{path}: no manifest.json (not a saved model folder)")
    found = peek_format(path, ("manifest.json",))
    if found not in MODEL_KINDS:
        raise ValueError(f"{path}: not a model the service serves (manifest format {found!r}; "
                         f"expected one of {', '.join(MODEL_KINDS)})")
    return MODEL_KINDS[found]


def sort_models(model_dir: str | os.PathLike | None, segmenter_dir: str | os.PathLike | None,
                localizer_dir: str | os.PathLike | None) -> dict[str, str | os.PathLike | None]:
    """``model_dir`` moved to the slot its manifest names (a segmentation or localisation
    model may be given as the model), each slot checked to hold its kind."""
    slots = {"classifier": None, "segmenter": segmenter_dir, "localizer": localizer_dir}
    if model_dir is not None:
        kind = model_kind(model_dir)
        if slots[kind] is not None:
            raise ValueError(f"{model_dir}: a {kind} model, but {slots[kind]} is served as "
                             f"the {kind} already")
        slots[kind] = model_dir
    for kind in ("segmenter", "localizer"):
        if slots[kind] is not None and model_kind(slots[kind]) != kind:
            raise ValueError(f"{slots[kind]}: not a {kind} model "
                             f"(it is a {model_kind(slots[kind])})")
    return slots


def load_state(model_dir: str | os.PathLike | None, index_path: str | os.PathLike | None,
               backbone: str | Backbone, text_index_path: str | os.PathLike | None, *,
               max_upload_bytes: int, max_image_pixels: int, max_pending: int,
               decode_threads: int, engine: str = "torch", precision: str = "f32",
               audio_index_path: str | os.PathLike | None = None,
               audio_model_dir: str | os.PathLike | None = None,
               map_method: str = "pca", segmenter_dir: str | os.PathLike | None = None,
               localizer_dir: str | os.PathLike | None = None) -> ServiceState:
    """Load what the arguments name and wrap it, with the limits, in a :class:`ServiceState`.

    With an index, the collection's id/name/label arrays are built now (paging 60,000 items
    then costs milliseconds) and its 2-D map is read from its cache file if one matches.
    ``model_dir`` may hold a segmentation or localisation model (:func:`sort_models`)."""
    slots = sort_models(model_dir, segmenter_dir, localizer_dir)
    model_dir, segmenter_dir, localizer_dir = (slots["classifier"], slots["segmenter"],
                                               slots["localizer"])
    model = TransferModel.load(model_dir) if model_dir is not None else None
    segmenter = SegmentationModel.load(segmenter_dir) if segmenter_dir is not None else None
    localizer = Localizer.load(localizer_dir) if localizer_dir is not None else None
    net = resolve_backbone(backbone)
    index = _load_index(index_path, net) if index_path is not None else None
    text_index = _load_encoded_index(TextIndex, text_index_path, "text")
    audio_index = _load_encoded_index(AudioIndex, audio_index_path, "audio")
    audio_model = AudioModel.load(audio_model_dir) if audio_model_dir is not None else None
    engine = InferenceEngine(net, model=model, index=index, max_pending=max_pending,
                             text_index=text_index, engine=engine, precision=precision,
                             audio_index=audio_index, audio_model=audio_model,
                             segmenter=segmenter, localizer=localizer)
    thumbs = (ThumbnailStore(dict(zip((int(i) for i in index.ids), index.paths)),
                             max_pixels=max_image_pixels) if index is not None else None)
    catalog = ItemCatalog.from_index(index) if index is not None else None
    return ServiceState(
        catalog=catalog,
        map_store=MapStore(index, index_path, map_method) if index is not None else None,
        duplicate_groups=(lru_cache(maxsize=16)(partial(duplicate_groups, index.index))
                          if index is not None else None),
        predictions=(EvaluationPredictions.load(Path(model.directory or model_dir) / "report")
                     if model is not None else None),
        engine=engine, backbone_name=net.name, model_info=_model_info(model, model_dir),
        index_info=_index_info(index, index_path, thumbs),
        text_index_info=_encoded_index_info(text_index, text_index_path), thumbnails=thumbs,
        max_upload_bytes=max_upload_bytes, max_image_pixels=max_image_pixels,
        decode_limiter=anyio.CapacityLimiter(decode_threads),
        thumbnail_limiter=anyio.CapacityLimiter(2), max_pending=max_pending,
        audio_index_info=_encoded_index_info(audio_index, audio_index_path),
        audio_model_info=(ModelInfo(directory=str(audio_model_dir), classes=audio_model.classes,
                                    backbone=audio_model.encoder.name)
                          if audio_model is not None else None),
        segmenter_info=_dense_info(segmenter, segmenter_dir),
        localizer_info=_dense_info(localizer, localizer_dir))


def _dense_info(model: Any | None, directory: str | os.PathLike | None) -> ModelInfo | None:
    if model is None:
        return None
    net = getattr(model, "backbone_", None)
    spec = getattr(model, "spec_", None) or (net.spec() if net is not None else {})
    return ModelInfo(directory=str(directory), classes=[str(c) for c in model.classes_],
                     backbone=spec.get("name"))


def _load_encoded_index(index_class, path: str | os.PathLike | None, kind: str):
    """A text or audio index (``index_class``) with its encoder built now, so the first query
    is not slow; None without a path."""
    if path is None:
        return None
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {kind} index not found")
    index = index_class.load(path)
    _ = index.encoder
    return index


def _load_index(index_path: str | os.PathLike, backbone: Backbone):
    """Open the index, sharing the service's backbone when it is the one the index was
    built with; otherwise the index's own model is loaded now (not on the first query)."""
    path = Path(index_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: index not found")
    if is_text_index(path):
        raise ValueError(f"{path}: is a text index; serve it with --text-index "
                         f"(create_app(text_index_path=...))")
    index = ImageIndex.load(path)
    try:
        index.set_backbone(backbone)
    except IncompatibleModelError:
        _ = index.backbone
    return index


def _model_info(model: Any | None, model_dir: str | os.PathLike | None) -> ModelInfo | None:
    if model is None:
        return None
    directory = str(getattr(model, "directory", None) or model_dir)
    spec = getattr(model, "spec_", None) or {}
    return ModelInfo(directory=directory, classes=[str(c) for c in model.classes_],
                     backbone=spec.get("name"))


def _index_info(index: Any | None, path: str | os.PathLike | None,
                thumbs: ThumbnailStore | None) -> IndexInfo | None:
    if index is None or thumbs is None:
        return None
    return IndexInfo(path=str(path), size=len(thumbs),
                     backbone=(getattr(index, "spec", None) or {}).get("name"))


def _encoded_index_info(index: Any | None, path: str | os.PathLike | None) -> IndexInfo | None:
    if index is None:
        return None
    return IndexInfo(path=str(path), size=len(index), backbone=index.spec.get("name"))
