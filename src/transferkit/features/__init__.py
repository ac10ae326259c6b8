"""Images -> embeddings with a frozen backbone, and the on-disk embeddings table."""

from transferkit.features.embeddings import Embeddings
from transferkit.features.extract import (
    embed_arrays,
    embed_folder,
    embed_paths,
    preprocess_images,
    resolve_backbone,
)

__all__ = ["Embeddings", "embed_arrays", "embed_folder", "embed_paths", "preprocess_images",
           "resolve_backbone"]
