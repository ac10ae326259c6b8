"""Image loading that survives real folders.

Every failure becomes an :class:`ImageLoadError` naming the file and a one-line reason, so
batch jobs can skip and report bad files instead of dying halfway.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from transferkit.errors import ImageLoadError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".ppm", ".pgm", ".pbm"})
# ~ a 16k x 11k photo; beyond this a single image would take gigabytes once decoded.
DEFAULT_MAX_PIXELS = 178_956_970

ORIENTATION_TAG = 0x0112  # EXIF "Orientation"
# Truncated files must fail loudly, not be silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False




def list_images(root: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` by extension, sorted for reproducible order."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or folder")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in root.glob(pattern)
                  if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def load_image(path: str | os.PathLike, draft_size: int | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS, background=(255, 255, 255)) -> Image.Image:
    """Open any image as 8-bit RGB, upright per EXIF, transparency flattened on ``background``.

    ``draft_size`` lets JPEG decode at 1/2, 1/4 or 1/8 scale when the image is much larger
    than needed (decoding is often the bottleneck, and this keeps it cheap).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageLoadError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageLoadError(path, "empty file (0 bytes)")
    return _decode(path, path, draft_size, max_pixels, background)


def load_image_bytes(data: bytes, name: str = "upload", draft_size: int | None = None,
                     max_pixels: int = DEFAULT_MAX_PIXELS,
                     background=(255, 255, 255)) -> Image.Image:
    """:func:`load_image` for bytes already in memory (uploads); errors name ``name``."""
    if not data:
        raise ImageLoadError(name, "empty file (0 bytes)")
    return _decode(io.BytesIO(data), name, draft_size, max_pixels, background)


def _decode(source, path, draft_size: int | None, max_pixels: int,
            background) -> Image.Image:
    """Decode ``source`` (a path or binary stream); every failure names ``path``."""
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below replaces PIL's warning threshold.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageLoadError(path, f"image too large ({width}x{height} = "
                                           f"{width * height:,} pixels > limit {max_pixels:,})")
            if draft_size and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image.load()
    except ImageLoadError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageLoadError(path, "not an image (unrecognised format)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(path, f"image too large (decompression-bomb limit): {exc}") from exc
    except OSError as exc:
        text = str(exc)
        reason = "truncated or corrupt image data" if "truncated" in text.lower() else (
            f"corrupt or unreadable image ({text.splitlines()[0][:120]})")
        raise ImageLoadError(path, reason) from exc
    except (ValueError, SyntaxError, EOFError) as exc:
        raise ImageLoadError(path, f"corrupt image ({exc.__class__.__name__}: "
                                   f"{str(exc)[:120]})") from exc
    return to_rgb(image, background)


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
    """Load what can be loaded; return the rest as errors (for small, eager batches)."""
    good, bad = [], []
    for path in paths:
        try:
            good.append((Path(path), load_image(path, **kwargs)))
        except ImageLoadError as exc:
            bad.append(exc)
    return good, bad
