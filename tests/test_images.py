"""Image loading that survives real files: every bad file gets a one-line reason."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from transferkit.data import ImageLoadError, list_images, load_image, try_load_images


@pytest.fixture()
def photo() -> Image.Image:
    from transferkit.data import sample_photo

    return sample_photo("chelsea")  # 451 x 300 RGB


def test_exif_orientation_is_applied(photo, tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display needs a 90 degree clockwise turn
    photo.save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.size == (photo.height, photo.width)


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "1", "LA", "I;16"])
def test_other_modes_become_rgb(photo, tmp_path, mode):
    if mode == "I;16":
        array = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
        image = Image.fromarray(array)
        assert image.mode.startswith("I;16")
        path = tmp_path / "deep.png"
    else:
        image = photo.convert(mode)
        path = tmp_path / f"img_{mode}.{'jpg' if mode in ('L', 'CMYK') else 'png'}"
    image.save(path)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == photo.size
    if mode == "I;16":  # 16-bit is rescaled, not clipped to white
        assert 20 < np.asarray(loaded).mean() < 235


def test_transparency_is_flattened_on_white(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    rgba.save(tmp_path / "cutout.png")
    pixels = np.asarray(load_image(tmp_path / "cutout.png"))
    assert tuple(pixels[0, 0]) == (0, 0, 255)
    assert tuple(pixels[5, 5]) == (255, 255, 255)
    palette = rgba.convert("P")
    palette.info["transparency"] = palette.getpixel((5, 5))
    palette.save(tmp_path / "palette.png", transparency=palette.getpixel((5, 5)))
    assert tuple(np.asarray(load_image(tmp_path / "palette.png"))[5, 5]) == (255, 255, 255)


def test_bad_files_get_clear_reasons(photo, tmp_path):
    good = tmp_path / "good.jpg"
    photo.save(good)
    data = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("hello, I am a text file")
    reasons = {}
    for name in ("truncated.jpg", "empty.png", "notes.png"):
        with pytest.raises(ImageLoadError) as info:
            load_image(tmp_path / name)
        assert info.value.path.endswith(name)
        assert str(info.value).startswith(str(tmp_path / name) + ": ")
        assert "\n" not in str(info.value)
        reasons[name] = info.value.reason
    assert reasons == {"truncated.jpg": "truncated or corrupt image data",
                       "empty.png": "empty file (0 bytes)",
                       "notes.png": "not an image (unrecognised format)"}
    with pytest.raises(ImageLoadError, match="cannot read file"):
        load_image(tmp_path / "missing.jpg")


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (15000, 12000)).save(path)  # 180 M pixels, a few KB on disk
    with pytest.raises(ImageLoadError, match="image too large"):
        load_image(path)
    small = tmp_path / "small.png"
    Image.new("RGB", (100, 100)).save(small)
    with pytest.raises(ImageLoadError, match="limit 5,000"):
        load_image(small, max_pixels=5000)


def test_unicode_paths(photo, tmp_path):
    folder = tmp_path / "фото ☕"
    folder.mkdir()
    photo.save(folder / "кошка 猫.jpg")
    files = list_images(tmp_path)
    assert [f.name for f in files] == ["кошка 猫.jpg"]
    assert load_image(files[0]).size == photo.size


def test_large_jpeg_decodes_at_reduced_size(tmp_path):
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), np.uint8))
    path = tmp_path / "big.jpg"
    big.save(path, quality=80)
    reduced = load_image(path, draft_size=256)
    assert 256 <= min(reduced.size) < 1500  # DCT scaling: 1/2, 1/4 or 1/8
    assert load_image(path).size == (4000, 3000)


def test_try_load_keeps_good_files_and_reports_bad(photo, tmp_path):
    photo.save(tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff garbage")
    good, bad = try_load_images([tmp_path / "a.jpg", tmp_path / "b.jpg"])
    assert [p.name for p, _ in good] == ["a.jpg"]
    assert [e.path.rsplit("/", 1)[-1] for e in bad] == ["b.jpg"]


def test_list_images_filters_and_sorts(tmp_path):
    for name in ("b.PNG", "a.jpg", "c.txt", ".hidden.jpg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.webp").write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "d.webp"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.jpg", "b.PNG"]
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        list_images(tmp_path / "nope")


def test_bytes_in_memory_decode_like_files(photo, tmp_path):
    from transferkit.data import load_image_bytes

    path = tmp_path / "cat.png"
    photo.save(path)
    from_bytes = load_image_bytes(path.read_bytes(), "cat.png")
    assert np.array_equal(np.asarray(from_bytes), np.asarray(load_image(path)))
    with pytest.raises(ImageLoadError, match=r"^upload.txt: not an image"):
        load_image_bytes(b"plain text", "upload.txt")
    with pytest.raises(ImageLoadError, match=r"^x.jpg: empty file"):
        load_image_bytes(b"", "x.jpg")
