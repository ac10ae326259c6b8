"""Similar-image search: a persistent ANN index (faiss HNSW or exact), dedupe, contact sheets.

``VectorIndex`` works on plain vectors (any embedder, e.g. the text encoders); ``ImageIndex``
adds the image model so queries are embedded exactly like the indexed files.
"""

from transferkit.search.dedupe import (
    DEFAULT_THRESHOLD,
    DuplicateGroup,
    DuplicateReport,
    duplicate_groups,
    find_duplicates,
)
from transferkit.search.image_index import (
    ImageIndex,
    SearchHit,
    backbone_from_spec,
    build_index,
    image_spec,
)
from transferkit.search.kind_index import KindIndex
from transferkit.search.sheet import contact_sheet
from transferkit.search.vector_index import METHODS, METRICS, VectorIndex
from transferkit.spec import IncompatibleModelError, describe_spec, ensure_compatible

__all__ = [
    "KindIndex", "VectorIndex", "ImageIndex", "SearchHit", "build_index", "backbone_from_spec",
    "image_spec",
    "IncompatibleModelError", "ensure_compatible", "describe_spec", "find_duplicates",
    "duplicate_groups", "DuplicateGroup", "DuplicateReport", "DEFAULT_THRESHOLD",
    "contact_sheet", "METRICS", "METHODS",
]
