"""Texts -> the same ``Embeddings`` parquet table image embeddings use.

Rows are named by ids ``FILE:LINE`` (the line where each text starts), not by the texts
themselves: ids are short, unique and lead back to the source; labels (CSV) are kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transferkit.text.datasets import TextDataset, read_texts
from transferkit.text.registry import TextEncoder, create_text_encoder


def embed_texts(source: str | os.PathLike | TextDataset, encoder: str | TextEncoder = "minilm",
                *, text_column: str = "text", label_column: str | None = "label",
                encoder_params: dict[str, Any] | None = None):
    """Embed a .txt/.csv file (or a dataset) into :class:`~transferkit.features.Embeddings`.

    A TF-IDF encoder given by name is fitted on these texts; save it with
    ``encoder.save(...)`` (the CLI writes ``<output>.encoder/``) to embed queries alike.
    Returns ``(embeddings, encoder)``.
    """
    from transferkit.features import Embeddings

    if isinstance(source, TextDataset):
        data = source
    else:
        data = read_texts(Path(source), text_column=text_column, label_column=label_column)
    if isinstance(encoder, str):
        encoder = create_text_encoder(encoder, **(encoder_params or {}))
        if encoder.requires_fit:
            encoder.fit(data.texts)
    vectors = encoder.transform(data.texts)
    emb = Embeddings(list(data.ids), vectors, encoder.spec(), data.labels, list(data.failures))
    return emb, encoder
