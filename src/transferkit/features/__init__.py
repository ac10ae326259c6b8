"""Images -> embeddings with a frozen backbone, and the on-disk embeddings table."""

from transferkit.features.embeddings import Embeddings
from transferkit.features.extract import (
    embed_arrays,
    embed_folder,
    embed_images,
    embed_paths,
    preprocess_images,
    resolve_backbone,
)
from transferkit.features.pipeline import decode_file, decode_or_reason, normalize_pixels

__all__ = ["Embeddings", "decode_file", "decode_or_reason", "embed_arrays", "embed_folder",
           "embed_images", "embed_paths", "normalize_pixels", "preprocess_images",
           "resolve_backbone"]
