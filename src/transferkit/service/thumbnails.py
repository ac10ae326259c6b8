"""Thumbnails of indexed images, addressed by index id only.

Clients never send a path: the id is looked up in the index's own list of files, so nothing
outside the index can be read, whatever the request looks like.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from transferkit.data import DEFAULT_MAX_PIXELS, load_image
from transferkit.errors import ImageLoadError, TransferkitError

THUMBNAIL_SIZES = (64, 96, 128, 160, 256)


class ThumbnailNotFound(TransferkitError, LookupError):
    """Unknown id, or the indexed file can no longer be read."""


class ThumbnailStore:
    """JPEG thumbnails of ``paths[id]``, cached (LRU) because result grids repeat images."""

    def __init__(self, paths: Mapping[int, str] | Sequence[str], max_cached: int = 512,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        items = paths.items() if isinstance(paths, Mapping) else enumerate(paths)
        self.paths = {int(i): str(p) for i, p in items}
        self.max_cached = max_cached
        self.max_pixels = max_pixels
        self._cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.paths)

    def cached(self, item_id: int, size: int) -> bytes | None:
        """The thumbnail if it was rendered before (cheap: callable on the event loop)."""
        with self._lock:
            data = self._cache.get((item_id, size))
            if data is not None:
                self._cache.move_to_end((item_id, size))
            return data

    def get(self, item_id: int, size: int = 128) -> bytes:
        if item_id not in self.paths:
            raise ThumbnailNotFound(f"no indexed image with id {item_id}")
        if size not in THUMBNAIL_SIZES:
            raise ValueError(f"size must be one of {list(THUMBNAIL_SIZES)}, got {size}")
        key = (item_id, size)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        data = self._render(self.paths[item_id], size, self.max_pixels)
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
        return data

    @staticmethod
    def _render(path: str, size: int, max_pixels: int) -> bytes:
        from PIL import Image

        try:
            image = load_image(path, draft_size=size, max_pixels=max_pixels)
        except ImageLoadError as exc:
            raise ThumbnailNotFound(f"indexed image {exc.reason}") from None
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        return buffer.getvalue()
