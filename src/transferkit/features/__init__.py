"""Images -> embeddings with a frozen backbone, and the on-disk embeddings table."""

from transferkit.features.compat import IncompatibleModelError, describe_spec, ensure_compatible
from transferkit.features.embeddings import Embeddings
from transferkit.features.extract import (
    embed_arrays,
    embed_folder,
    embed_paths,
    preprocess_images,
    resolve_backbone,
)

__all__ = ["IncompatibleModelError", "describe_spec", "ensure_compatible", "Embeddings",
           "embed_arrays", "embed_folder", "embed_paths", "preprocess_images", "resolve_backbone"]
