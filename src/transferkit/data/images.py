"""Image loading that survives real folders.

Every failure becomes an :class:`ImageLoadError` naming the file and a one-line reason, so
batch jobs can skip and report bad files instead of dying halfway.

One pixel limit guards every loader (files, uploads, thumbnails, training): the size is read
from the header and checked before any pixel is decoded. A JPEG over the limit is still read
when DCT-scaled decoding (1/2 .. 1/8) brings it under, since the models need far fewer
pixels; anything else over it is refused with its size in the reason.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin, UnidentifiedImageError

from transferkit.data import _tiff_messages
from transferkit.errors import ImageLoadError

# Pillow's own decompression-bomb warning threshold (a 9459 x 9459 image, ~268 MB as RGB).
DEFAULT_MAX_PIXELS = 89_478_485
JPEG_SCALES = (1, 2, 4, 8)  # what libjpeg's DCT scaling can divide each side by

ORIENTATION_TAG = 0x0112  # EXIF "Orientation"
# Truncated files must fail loudly, not be silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow's warnings (bomb threshold, odd palettes, EXIF quirks) are about files we either
# decode anyway or refuse with a reason; on a big folder they would flood stderr. The filter
# is process-wide because catch_warnings() is not thread-safe and decoding runs in threads.
warnings.filterwarnings("ignore", module=r"PIL\.")
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _register_plugins() -> frozenset[str]:
    """HEIC/HEIF through pillow-heif when installed (AVIF is Pillow's own)."""
    try:
        import pillow_heif
    except ImportError:
        return frozenset()
    pillow_heif.register_heif_opener()
    return frozenset({".heic", ".heif", ".hif"})


# Extensions tried as images without looking inside first. Any other file is accepted when
# Pillow identifies its header (see ``transferkit.data.inventory``).
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".dib", ".gif", ".tif",
    ".tiff", ".webp", ".avif", ".ppm", ".pgm", ".pbm", ".pnm", ".ico", ".cur", ".tga",
    ".jp2", ".j2k", ".jpx", ".jpf", ".psd", ".qoi", ".dds", ".pcx", ".sgi", ".ras", ".icns",
    ".mpo", ".blp", ".xbm", ".xpm",
}) | _register_plugins()
_tiff_messages.install()


def load_image(path: str | os.PathLike, draft_size: int | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS, background=(255, 255, 255)) -> Image.Image:
    """Open any image as 8-bit RGB, upright per EXIF, transparency flattened on ``background``.

    ``draft_size`` lets JPEG decode at 1/2, 1/4 or 1/8 scale when the image is much larger
    than needed (decoding is often the bottleneck, and this keeps it cheap). Images over
    ``max_pixels`` (after any such scaling) are refused before they are decoded.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            raise ImageLoadError(path, "empty file (0 bytes)")
        with open(path, "rb") as fh:
            return _decode(fh, path, draft_size, max_pixels, background)
    except OSError as exc:
        raise ImageLoadError(path, f"cannot read file ({exc.strerror or exc})") from exc


def load_image_bytes(data: bytes, name: str = "upload", draft_size: int | None = None,
                     max_pixels: int = DEFAULT_MAX_PIXELS,
                     background=(255, 255, 255)) -> Image.Image:
    """:func:`load_image` for bytes already in memory (uploads); errors name ``name``."""
    if not data:
        raise ImageLoadError(name, "empty file (0 bytes)")
    return _decode(io.BytesIO(data), name, draft_size, max_pixels, background)


def _decode(fh: BinaryIO, name, draft_size: int | None, max_pixels: int,
            background) -> Image.Image:
    """Header, size check, decode, RGB; every failure names ``name`` and says why."""
    with _tiff_messages.captured_tiff_messages() as tiff_messages:
        try:
            image = _open_header(fh)
            _shrink_or_refuse(image, name, draft_size, max_pixels)
            image.load()
            return to_rgb(image, background)
        except ImageLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's fault
            raise ImageLoadError(name, _reason(exc, tiff_messages)) from exc


def _open_header(fh: BinaryIO) -> Image.Image:
    """``Image.open`` (reads the header only), without Pillow's own pixel ceiling."""
    try:
        return Image.open(fh)
    except Image.DecompressionBombError:
        # Pillow refuses headers over twice its threshold before we see the size; identify
        # it ourselves so that the limit, and DCT scaling, are ours to apply.
        return _open_unchecked(fh)


def _open_unchecked(fh: BinaryIO) -> Image.Image:
    fh.seek(0)
    prefix = fh.read(16)
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        if accept is not None and accept(prefix) is not True:
            continue
        fh.seek(0)
        try:
            return factory(fh, "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
    raise UnidentifiedImageError("cannot identify image file")


def _shrink_or_refuse(image: Image.Image, name, draft_size: int | None,
                      max_pixels: int) -> None:
    """DCT-scale a JPEG as far as the model allows (or the limit needs), else refuse."""
    width, height = image.size
    if isinstance(image, JpegImagePlugin.JpegImageFile):
        scale = max(_scale_for_draft(width, height, draft_size),
                    _scale_for_limit(width, height, max_pixels))
        if scale > 1:
            image.draft("RGB", (max(1, width // scale), max(1, height // scale)))
    if image.width * image.height > max_pixels:
        at_most = ", even decoded at 1/8 scale" if image.size != (width, height) else ""
        raise ImageLoadError(name, f"image too large ({width} x {height} = "
                                   f"{width * height:,} pixels > limit {max_pixels:,}"
                                   f"{at_most})")


def _scale_for_draft(width: int, height: int, draft_size: int | None) -> int:
    """The largest DCT scale that keeps both sides at least ``draft_size``."""
    if not draft_size:
        return 1
    fits = min(width // draft_size, height // draft_size)
    return max(s for s in JPEG_SCALES if s <= max(fits, 1))


def _scale_for_limit(width: int, height: int, max_pixels: int) -> int:
    """The smallest DCT scale that brings the image under ``max_pixels`` (8 if none does)."""
    for s in JPEG_SCALES:
        if -(-width // s) * -(-height // s) <= max_pixels:
            return s
    return JPEG_SCALES[-1]


def _reason(exc: Exception, tiff_messages: list[str]) -> str:
    """One line a person can act on, with libtiff's own words when it had any."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image (unrecognised format)"
    if isinstance(exc, MemoryError):
        return "image too large to decode (out of memory)"
    text = (str(exc).splitlines() or [""])[0][:120]
    detail = f"; libtiff: {'; '.join(tiff_messages)[:160]}" if tiff_messages else ""
    if isinstance(exc, OSError):
        if "truncated" in text.lower() and not detail:
            return "truncated or corrupt image data"
        return f"corrupt or unreadable image ({text}{detail})"
    return f"corrupt image ({exc.__class__.__name__}: {text}{detail})"


def to_rgb(image: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """Normalise orientation, bit depth, palette, CMYK and alpha to plain RGB."""
    try:
        # Most files are upright; skipping the no-op transpose saves a copy of every image.
        if image.getexif().get(ORIENTATION_TAG, 1) != 1:
            image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the pixels
        pass
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        lo, hi = float(array.min()), float(array.max())
        scaled = (array - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(array)
        image = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
        mode = "L"
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "RGB" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return image if mode == "RGB" else image.convert("RGB")


def try_load_images(paths: Iterable[str | os.PathLike], **kwargs
                    ) -> tuple[list[tuple[Path, Image.Image]], list[ImageLoadError]]:
    """Load what can be loaded; return the rest as errors (for small, eager batches).

    ``kwargs`` go to :func:`load_image` (``draft_size``, ``max_pixels``, ``background``).
    """
    good, bad = [], []
    for path in paths:
        try:
            good.append((Path(path), load_image(path, **kwargs)))
        except ImageLoadError as exc:
            bad.append(exc)
    return good, bad
