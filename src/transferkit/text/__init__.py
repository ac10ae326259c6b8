"""Text encoders behind the same interface as image backbones.

``create_text_encoder("tfidf" | "minilm" | "glove")`` -> ``.fit(texts)`` (when
``requires_fit``: TF-IDF, GloVe idf) ->
``.transform(texts)`` float32 rows; ``.spec()`` names the encoder in every saved artefact.
Plus readers for .txt/.csv and Debian fortunes, text classifiers with the shared heads, and
a text similarity index on the search package's ``VectorIndex``.
"""

from transferkit.errors import IncompatibleModelError
from transferkit.text.datasets import (
    FORTUNE_CATEGORIES,
    FORTUNES_DIR,
    TextDataset,
    fortune_categories,
    load_fortunes,
    read_fortune_file,
    read_texts,
)
from transferkit.text.embed import embed_texts
from transferkit.text.encoders import (
    SentenceEncoder,
    TfidfEncoder,
    minilm_model_dir,
)
from transferkit.text.glove import GloveEncoder, WordScore, WordVectors, tokenize
from transferkit.text.index import (
    TextHit,
    TextIndex,
    build_text_index,
    encoder_dir_for,
    is_text_index,
)
from transferkit.text.registry import (
    DEFAULT_TEXT_ENCODER,
    create_text_encoder,
    describe_text_encoders,
    encoder_from_spec,
    list_text_encoders,
    load_text_encoder,
    register_text_encoder,
)
from transferkit.text.train import (
    TextModel,
    is_text_model,
    load_text_model,
    split_indices,
    train_text_classifier,
)

__all__ = [
    "FORTUNE_CATEGORIES", "FORTUNES_DIR", "TextDataset", "fortune_categories", "load_fortunes",
    "read_fortune_file", "read_texts", "embed_texts", "IncompatibleModelError",
    "SentenceEncoder", "TfidfEncoder", "minilm_model_dir", "TextHit", "TextIndex",
    "build_text_index", "encoder_dir_for", "is_text_index", "DEFAULT_TEXT_ENCODER",
    "create_text_encoder", "describe_text_encoders", "encoder_from_spec", "list_text_encoders",
    "load_text_encoder", "register_text_encoder", "TextModel", "is_text_model",
    "load_text_model", "split_indices", "train_text_classifier", "GloveEncoder", "WordScore",
    "WordVectors", "tokenize",
]
