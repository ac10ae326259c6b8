"""Small shared helpers: atomic writes, cache locations, progress bars."""

from transferkit.utils.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from transferkit.utils.cache import cache_dir
from transferkit.utils.manifest import read_manifest
from transferkit.utils.progress import progress

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "cache_dir", "progress",
           "read_manifest"]
