"""A folder of real-format tricky files, written at run time (nothing binary is committed).

``write_tricky_folder(root)`` returns what a correct loader does with each file: ``embedded``,
``skipped`` (with a substring of the reason) or ``ignored`` (not an image at all).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, TiffImagePlugin


@dataclass(frozen=True)
class Expected:
    outcome: str  # "embedded", "skipped" or "ignored"
    reason: str = ""  # substring of the skip reason


EMBEDDED = Expected("embedded")


def _photo(size: tuple[int, int] = (160, 120), seed: int = 0) -> Image.Image:
    """Smooth colour gradients plus noise: compresses like a photo, decodes like one."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h)], axis=-1)
    noisy = base + rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _tiff_with_private_tag(image: Image.Image) -> bytes:
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[65000] = "vendor data"
    info.tagtype[65000] = 2  # ASCII
    return _encoded(image, "TIFF", compression="tiff_lzw", tiffinfo=info)


def _corrupt_lzw_tiff(image: Image.Image) -> bytes:
    """Strip data overwritten: libtiff prints 'Using code not yet in table' by itself."""
    data = bytearray(_encoded(image, "TIFF", compression="tiff_lzw"))
    for i in range(200, len(data) // 2, 7):
        data[i] = 0xFF
    return bytes(data)


def _animated_gif(photo: Image.Image) -> bytes:
    frames = [photo.rotate(angle) for angle in (0, 20, 40)]
    return _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80,
                    loop=0)


def _palette_with_transparency(photo: Image.Image) -> bytes:
    palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return _encoded(palette, "PNG", transparency=0)


def _odd_exif_jpeg(photo: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 9  # no such orientation: must be ignored, not crash
    return _encoded(photo, "JPEG", exif=exif)


def _sixteen_bit_png(photo: Image.Image) -> bytes:
    return _encoded(Image.fromarray(np.asarray(photo.convert("L"), np.uint16) * 257), "PNG")


def write_tricky_folder(root: Path, max_pixels: int = 89_478_485) -> dict[str, Expected]:
    """Write the files under ``root``; keys are paths relative to it."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    photo = _photo()
    jpeg = _encoded(photo, "JPEG", quality=90)
    png = _encoded(photo, "PNG")
    side = int(max_pixels ** 0.5) + 10  # just over the limit
    files: dict[str, tuple[bytes, Expected]] = {
        "photos/good.jpg": (jpeg, EMBEDDED),
        "photos/кошка 猫 ☕.png": (png, EMBEDDED),
        "photos/progressive.jpg": (_encoded(photo, "JPEG", progressive=True), EMBEDDED),
        "photos/odd-exif.jpg": (_odd_exif_jpeg(photo), EMBEDDED),
        "photos/cmyk.jpg": (_encoded(photo.convert("CMYK"), "JPEG"), EMBEDDED),
        "photos/grey.jpg": (_encoded(photo.convert("L"), "JPEG"), EMBEDDED),
        "photos/deep-16bit.png": (_sixteen_bit_png(photo), EMBEDDED),
        "photos/palette-transparent.png": (_palette_with_transparency(photo), EMBEDDED),
        "photos/rgba.png": (_encoded(photo.convert("RGBA"), "PNG"), EMBEDDED),
        "photos/animated.gif": (_animated_gif(photo), EMBEDDED),
        "photos/image.bmp": (_encoded(photo, "BMP"), EMBEDDED),
        "photos/icon.ico": (_encoded(photo.resize((64, 64)), "ICO"), EMBEDDED),
        "photos/image.tga": (_encoded(photo, "TGA"), EMBEDDED),
        "photos/image.ppm": (_encoded(photo, "PPM"), EMBEDDED),
        "photos/image.webp": (_encoded(photo, "WEBP"), EMBEDDED),
        "photos/image.avif": (_encoded(photo, "AVIF"), EMBEDDED),
        "photos/image.heic": (_encoded(photo, "HEIF"), EMBEDDED),
        "photos/image.jp2": (_encoded(photo, "JPEG2000"), EMBEDDED),
        "tiff/raw.tif": (_encoded(photo, "TIFF"), EMBEDDED),
        "tiff/lzw-private-tag.tif": (_tiff_with_private_tag(photo), EMBEDDED),
        "tiff/deflate.tiff": (_encoded(photo, "TIFF", compression="tiff_deflate"), EMBEDDED),
        "tiff/jpeg.tif": (_encoded(photo, "TIFF", compression="jpeg"), EMBEDDED),
        "tiff/group4.tif": (_encoded(photo.convert("1"), "TIFF", compression="group4"),
                            EMBEDDED),
        "tiff/corrupt-lzw.tif": (_corrupt_lzw_tiff(_photo((200, 200), seed=1)),
                                 Expected("skipped", "Using code not yet in table")),
        # a PNG without an extension and a JPEG named .dat: accepted because they decode
        "sniffed/no-extension": (png, EMBEDDED),
        "sniffed/photo.dat": (jpeg, EMBEDDED),
        # broken files: skipped, each with its reason
        "broken/truncated.jpg": (jpeg[: len(jpeg) // 2],
                                 Expected("skipped", "truncated or corrupt image data")),
        "broken/truncated.png": (png[: len(png) // 2],
                                 Expected("skipped", "truncated or corrupt image data")),
        "broken/zero-bytes.jpg": (b"", Expected("skipped", "empty file (0 bytes)")),
        "broken/text.jpg": (b"this is a text file\n" * 10,
                            Expected("skipped", "not an image (unrecognised format)")),
        "broken/junk.psd": (b"\x00\x01junk" * 40,
                            Expected("skipped", "not an image (unrecognised format)")),
        "broken/huge-header.png": (_encoded(Image.new("1", (side, side)), "PNG"),
                                   Expected("skipped", f"image too large ({side} x {side} = "
                                                       f"{side * side:,} pixels > limit "
                                                       f"{max_pixels:,})")),
        # not images at all: ignored, counted by extension
        "notes.txt": (b"shopping list\n", Expected("ignored")),
        "docs/readme.md": (b"# about these photos\n", Expected("ignored")),
        "docs/LICENSE": (b"MIT\n", Expected("ignored")),
        ".DS_Store": (b"\x00\x00\x00\x01Bud1", Expected("ignored")),
    }
    for relative, (data, _) in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return {relative: expected for relative, (_, expected) in files.items()}


def write_big_jpeg(path: Path, max_pixels: int = 89_478_485) -> tuple[int, int]:
    """A greyscale JPEG just over the pixel limit (draft decoding brings it far under)."""
    side = int(max_pixels ** 0.5) + 16
    Image.new("L", (side, side), 128).save(path, quality=50)
    return side, side
