"""Small shared helpers: atomic writes, cache locations, progress bars, thread counts,
manifests and the registry class. Imports nothing else from transferkit but ``errors``."""

from transferkit.utils.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from transferkit.utils.cache import cache_dir
from transferkit.utils.collector import existing_objects_frozen
from transferkit.utils.manifest import peek_format, read_manifest, write_manifest
from transferkit.utils.progress import progress
from transferkit.utils.registry import Entry, Registry, check_options
from transferkit.utils.threads import (
    available_cores,
    decode_threads,
    inference_threads,
    set_torch_threads,
    torch_threads,
)

__all__ = ["Entry", "Registry", "atomic_path", "atomic_write_bytes", "atomic_write_text",
           "available_cores", "cache_dir", "check_options", "decode_threads",
           "existing_objects_frozen",
           "inference_threads", "peek_format", "progress", "read_manifest", "set_torch_threads",
           "torch_threads", "write_manifest"]
