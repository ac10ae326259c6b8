"""Generators behind :func:`write_fixture` and :func:`write_composites` (one object per image).

Both write the user format of :mod:`transferkit.dense.data` into a temporary folder that is
renamed onto ``out`` only when every split is written, so a killed run never leaves a folder
that looks complete.
"""

from __future__ import annotations

import csv
import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from transferkit.errors import InvalidOptionError
from transferkit.utils import atomic_path, progress

SPLITS = ("train", "val", "test")
SUMMARY_NAME = "summary.json"
BOX_HEADER = ["path", "label", "x", "y", "w", "h"]
MIN_SIDE = 32  # pixels: smaller images leave no room for an object and its context

def box_from_mask(mask: np.ndarray) -> tuple[float, float, float, float]:
    """x, y, w, h of the non-background pixels in pixel-edge coordinates (COCO's: the box
    covers columns x .. x + w - 1), so a one-pixel object is 1 x 1, as in dense.boxes."""
    import torch
    from torchvision.ops import box_convert, masks_to_boxes

    xyxy = masks_to_boxes(torch.from_numpy((mask > 0) & (mask != 255))[None])
    xyxy = xyxy + torch.tensor([0.0, 0.0, 1.0, 1.0])  # last pixel index -> its far edge
    return tuple(float(v) for v in box_convert(xyxy, "xyxy", "xywh")[0])


def _check_target(out: Path) -> None:
    """Refuse to replace a non-empty folder that this module did not write."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / SUMMARY_NAME).exists())):
        raise InvalidOptionError(f"{out}: exists and is not a generated dataset (no "
                              f"{SUMMARY_NAME}); choose a new folder")


def _write_split(folder: Path, count: int, make: Callable[[int], tuple[np.ndarray, np.ndarray]],
                 classes: list[str], image_format: str, quality: Callable[[int], int],
                 desc: str) -> dict[str, int]:
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    (folder / "classes.txt").write_text("\n".join(classes) + "\n", encoding="utf-8")
    per_class = dict.fromkeys(classes[1:], 0)
    with open(folder / "boxes.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(BOX_HEADER)
        for index in progress(range(count), desc=desc, total=count, unit="img"):
            rgb, mask = make(index)
            name = f"{index:05d}"
            image_name = f"images/{name}.{image_format}"
            if image_format == "jpg":
                Image.fromarray(rgb).save(folder / image_name, quality=quality(index))
            else:
                Image.fromarray(rgb).save(folder / image_name)
            Image.fromarray(mask, mode="L").save(folder / "masks" / f"{name}.png")
            label = classes[int(mask[(mask > 0) & (mask != 255)].max())]
            per_class[label] += 1
            writer.writerow([image_name, label, *(f"{v:g}" for v in box_from_mask(mask))])
    return per_class


def _write_dataset(out: Path, counts: dict[str, int], make: Callable[[str, int], tuple],
                   classes: list[str], summary: dict, image_format: str = "png",
                   quality: Callable[[str, int], int] = lambda split, i: 90) -> dict:
    if summary["size"] < MIN_SIDE or min(counts.values()) < 0:
        raise InvalidOptionError(f"size must be >= {MIN_SIDE} px and image counts >= 0 "
                                 f"(got size {summary['size']}, counts {counts})")
    _check_target(out)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for split in SPLITS:
            per_class = _write_split(tmp / split, counts[split], lambda i, s=split: make(s, i),
                                     classes, image_format, lambda i, s=split: quality(s, i),
                                     f"{summary['kind']} {split}")
            summary["splits"][split].update(images=counts[split], path=str(out / split),
                                            per_class=per_class)
        for split, rows in summary.pop("sources", {}).items():  # where each image came from
            with open(tmp / split / "sources.csv", "w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerows([["image", "stamp", "background"], *(
                    [f"images/{i:05d}.{image_format}", *row] for i, row in enumerate(rows))])
        summary.update(root=str(out), classes=classes)
        (tmp / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    """One generator per image: any image can be made alone, in any order, identically."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


# ---------------------------------------------------------------- fixture (committed-safe)

FIXTURE_CLASSES = ["background", "trouser", "bag", "ellipse", "triangle"]
_FASHION_LABELS = {"trouser": 1, "bag": 8}  # Fashion-MNIST class numbers


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Stripes at a random angle and period in two random colours, with pixel noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
    wave = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period
                              + rng.uniform(0, 2 * np.pi))
    low, high = rng.uniform(20, 140, 3), rng.uniform(60, 200, 3)
    canvas = low + (high - low) * wave[..., None] + rng.normal(0, 8, (size, size, 3))
    return np.clip(canvas, 0, 255)


def _fixture_object(rng: np.random.Generator, label: str, side: int,
                    items: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(intensity float HxW in 0..1, bool mask) of one object, ``side`` pixels tall."""
    if label in items:
        pool = items[label]
        item = Image.fromarray(pool[rng.integers(len(pool))])
        width = side
        shade = np.asarray(item.resize((width, side), Image.BILINEAR), np.float32) / 255
        mask = np.asarray(item.point(lambda v: 255 if v > 0 else 0).resize(
            (width, side), Image.NEAREST)) > 0
        return 0.35 + 0.65 * shade, mask
    width = max(8, int(side * rng.uniform(0.6, 1.0)))
    canvas = Image.new("L", (width, side), 0)
    draw = ImageDraw.Draw(canvas)
    if label == "ellipse":
        draw.ellipse((0, 0, width - 1, side - 1), fill=255)
    else:
        apex = rng.uniform(0.2, 0.8) * (width - 1)
        draw.polygon([(apex, 0), (0, side - 1), (width - 1, side - 1)], fill=255)
    mask = np.asarray(canvas) > 0
    ramp = np.linspace(0.7, 1.0, side, dtype=np.float32)[:, None] * np.ones((1, width))
    return ramp, mask


@functools.lru_cache(maxsize=1)
def _fashion_pools() -> dict[str, dict[str, np.ndarray]]:
    """Fashion-MNIST items per split and fixture class (small; kept for repeated calls)."""
    from transferkit.data import load_fashion_mnist

    train_images, train_labels = load_fashion_mnist("train", limit=2000)
    test_images, test_labels = load_fashion_mnist("test", limit=2000)
    # val and test draw from disjoint halves of the test file: unseen items in each
    sources = {"train": (train_images, train_labels),
               "val": (test_images[:1000], test_labels[:1000]),
               "test": (test_images[1000:], test_labels[1000:])}
    return {split: {name: images[labels == number] for name, number in _FASHION_LABELS.items()}
            for split, (images, labels) in sources.items()}


def write_fixture_set(out: Path, *, n: int, size: int, seed: int, n_val: int,
                      n_test: int) -> dict:
    pools = _fashion_pools()

    def make(split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = _rng(seed, split, index)
        label_index = int(rng.integers(1, len(FIXTURE_CLASSES)))
        side = int(size * rng.uniform(0.35, 0.7))
        shade, obj = _fixture_object(rng, FIXTURE_CLASSES[label_index], side, pools[split])
        height, width = obj.shape
        top, left = int(rng.integers(0, size - height + 1)), int(rng.integers(0, size - width + 1))
        canvas = _texture(rng, size)
        colour = rng.uniform(120, 255, 3)
        window = canvas[top:top + height, left:left + width]
        window[obj] = shade[obj][:, None] * colour
        mask = np.zeros((size, size), np.uint8)
        mask[top:top + height, left:left + width][obj] = label_index
        return canvas.astype(np.uint8), mask

    summary = {"kind": "fixture", "format": "transferkit-dense-data", "size": size, "seed": seed,
               "source": "Fashion-MNIST (MIT) items and drawn shapes on drawn textures",
               "splits": {split: {} for split in SPLITS}}
    return _write_dataset(out, {"train": n, "val": n_val, "test": n_test}, make,
                          list(FIXTURE_CLASSES), summary)


# ---------------------------------------------------------------- Tux Paint composites (GPL-2)

TUXPAINT_DIR = Path(os.environ.get("TRANSFERKIT_TUXPAINT", "/usr/share/tuxpaint"))
# scikit-image's bundled (offline) photos and textures usable as scenes
SKIMAGE_BACKGROUNDS = ("astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins",
                       "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "moon",
                       "rocket", "stereo_motorcycle")
MIN_STAMP_SIDE = 96          # longest side in pixels: smaller stamps blur when scaled up
OPAQUE_FILL = (0.15, 0.95)   # opaque share of the alpha box: wire-thin below, a rectangle above
MIN_STAMPS_PER_CATEGORY = 3  # one each for train, val and test
SPLIT_SHARES = {"val": 0.2, "test": 0.2}
SCALE_RANGE = (0.3, 0.75)    # stamp's longest side as a share of the image side
BORDER_CUT_CHANCE = 0.25     # how often a stamp runs off an image edge
MIN_VISIBLE = 0.5            # a cut stamp keeps at least this share of its pixels
JPEG_QUALITY = (70, 95)
SKIP_FOLDERS = ("symbols/alphabets/",)  # letters are glyphs, not objects
NO_MIRROR_FOLDERS = ("symbols/", "town/roadsigns/")  # their text would read backwards


@dataclass(frozen=True)
class Stamp:
    name: str            # path under stamps/, e.g. "animals/mammals/cat.png"
    category: str        # first folder under stamps/
    rgba: Image.Image    # cropped to its alpha box, at most 2x the image side
    solid: Image.Image   # alpha without drop shadows: the mask source
    mirrorable: bool


def _stamp_flags(path: Path) -> set[str]:
    dat = path.with_suffix(".dat")
    if not dat.exists():
        return set()
    return set(dat.read_text(encoding="utf-8", errors="replace").split())


def _load_stamp(path: Path, stamps_dir: Path, size: int) -> Stamp | None:
    """The stamp cropped and shrunk, or None when it is a glyph, tiny, thin or a rectangle."""
    flags = _stamp_flags(path)
    if ("colorable" in flags or path.stem.endswith("_mirror")
            or path.relative_to(stamps_dir).as_posix().startswith(SKIP_FOLDERS)):
        return None  # single-colour glyphs for the user to tint / a mirrored duplicate
    try:
        with Image.open(path) as image:
            if max(image.size) < MIN_STAMP_SIDE:
                return None  # decided from the header, before decoding
            rgba = image.convert("RGBA")
    except Exception:  # noqa: BLE001 - a broken stamp is skipped like any bad file
        return None
    alpha = np.asarray(rgba)[..., 3]
    opaque = alpha >= 128
    if not opaque.any():
        return None
    rows, cols = np.flatnonzero(opaque.any(1)), np.flatnonzero(opaque.any(0))
    fill = opaque.sum() / ((rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1))
    if not OPAQUE_FILL[0] <= fill <= OPAQUE_FILL[1]:
        return None
    rgba = rgba.crop(Image.fromarray(alpha).getbbox())
    limit = 2 * size
    if max(rgba.size) > limit:
        rgba = _resize_rgba(rgba, limit / max(rgba.size))
    solid = _without_shadow(np.asarray(rgba))
    name = path.relative_to(stamps_dir).as_posix()
    mirrorable = "nomirror" not in flags and not name.startswith(NO_MIRROR_FOLDERS)
    return Stamp(name, name.split("/")[0], rgba, solid, mirrorable)


def _without_shadow(rgba: np.ndarray) -> Image.Image:
    """The alpha channel with drop shadows cleared (some cartoon stamps carry one).

    A shadow is a blob of dark, half-transparent pixels: an opening keeps the blobs' cores
    (the thin anti-aliased rim of black outlines drops out, so outlines stay in the mask),
    then each core grows back over the dark soft pixels connected to it.
    """
    from scipy import ndimage

    alpha = rgba[..., 3]
    dark_and_soft = (alpha >= 128) & (alpha < 230) & (rgba[..., :3].max(-1) < 70)
    if dark_and_soft.sum() < 0.005 * alpha.size:  # too few to hold a shadow: skip the opening
        return Image.fromarray(alpha)
    core = ndimage.binary_opening(dark_and_soft, iterations=2)
    shadow = ndimage.binary_propagation(core, mask=dark_and_soft)  # and its soft rim
    return Image.fromarray(np.where(shadow, 0, alpha).astype(np.uint8))


def _resize_rgba(rgba: Image.Image, scale: float) -> Image.Image:
    """Resize with premultiplied alpha, so no dark or white fringe bleeds in at the edges."""
    size = (max(1, round(rgba.width * scale)), max(1, round(rgba.height * scale)))
    return rgba.convert("RGBa").resize(size, Image.LANCZOS).convert("RGBA")


@functools.lru_cache(maxsize=1)  # a second run in one process (tests, notebooks) skips 2 s
def _load_stamps(tuxpaint_dir: Path, size: int) -> dict[str, list[Stamp]]:
    """Usable stamps per category (read-only: callers resize and flip copies)."""
    stamps_dir = tuxpaint_dir / "stamps"
    if not stamps_dir.is_dir():
        raise FileNotFoundError(f"{stamps_dir}: Tux Paint stamps not found; install them: "
                                f"apt-get install tuxpaint-stamps-default tuxpaint-data")
    by_category: dict[str, list[Stamp]] = {}
    paths = sorted(stamps_dir.glob("*/**/*.png"))
    for path in progress(paths, desc="stamps", unit="stamp"):
        stamp = _load_stamp(path, stamps_dir, size)
        if stamp is not None:
            by_category.setdefault(stamp.category, []).append(stamp)
    return {cat: found for cat, found in sorted(by_category.items())
            if len(found) >= MIN_STAMPS_PER_CATEGORY}


def _load_backgrounds(tuxpaint_dir: Path, size: int) -> dict[str, Image.Image]:
    """Real photos and textures by name, shrunk to about 3x the image side (crops zoom in)."""
    import skimage.data

    from transferkit.data import load_image, to_rgb

    found: dict[str, Image.Image] = {}
    for path in sorted((tuxpaint_dir / "templates").glob("*.jpg")):
        found[f"tuxpaint/{path.stem}"] = load_image(path, draft_size=3 * size)
    for name in SKIMAGE_BACKGROUNDS:
        array = getattr(skimage.data, name)()
        array = array[0] if isinstance(array, tuple) else array  # stereo pair: left view
        found[f"skimage/{name}"] = to_rgb(Image.fromarray(array))
    for name, image in found.items():
        image = found[name] = _trim_flat_borders(image)
        scale = 3 * size / min(image.size)
        if scale < 1:
            found[name] = image.resize((round(image.width * scale), round(image.height * scale)),
                                       Image.LANCZOS)
    return found


def _trim_flat_borders(image: Image.Image) -> Image.Image:
    """Cut letterbox bands (rows or columns of one flat colour) off a photo's edges."""
    grey = np.asarray(image.convert("L"), np.float32)
    rows, cols = grey.std(1) > 3, grey.std(0) > 3
    if rows.sum() < grey.shape[0] // 2 or cols.sum() < grey.shape[1] // 2:
        return image
    top, bottom = np.flatnonzero(rows)[[0, -1]]
    left, right = np.flatnonzero(cols)[[0, -1]]
    return image.crop((int(left), int(top), int(right) + 1, int(bottom) + 1))


def _split_items(items: list, rng: np.random.Generator) -> dict[str, list]:
    """Shuffle and cut into train/val/test, at least one item in each."""
    order = [items[i] for i in rng.permutation(len(items))]
    n_val = max(1, round(SPLIT_SHARES["val"] * len(items)))
    n_test = max(1, round(SPLIT_SHARES["test"] * len(items)))
    return {"test": order[:n_test], "val": order[n_test:n_test + n_val],
            "train": order[n_test + n_val:]}


def _scene(rng: np.random.Generator, photo: Image.Image, size: int) -> np.ndarray:
    """A random square crop (35-100% of the short side), randomly mirrored, as float RGB."""
    side = int(min(photo.size) * rng.uniform(0.35, 1.0))
    left = int(rng.integers(0, photo.width - side + 1))
    top = int(rng.integers(0, photo.height - side + 1))
    crop = photo.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(crop, np.float32)


def _placement(rng: np.random.Generator, width: int, height: int, size: int) -> tuple[int, int]:
    """Top-left corner: inside the image, or now and then running off one or two edges."""
    if rng.random() < BORDER_CUT_CHANCE:
        cut = 1 - MIN_VISIBLE ** 0.5  # cutting this share of each side keeps MIN_VISIBLE
        return (int(rng.integers(-int(cut * width), size - int((1 - cut) * width) + 1)),
                int(rng.integers(-int(cut * height), size - int((1 - cut) * height) + 1)))
    return (int(rng.integers(0, max(1, size - width + 1))),
            int(rng.integers(0, max(1, size - height + 1))))


def _paste(scene: np.ndarray, stamp: Stamp, rng: np.random.Generator,
           class_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Blend the stamp with its soft alpha; the mask is alpha >= 128 (what a person sees)."""
    size = scene.shape[0]
    scale = size * rng.uniform(*SCALE_RANGE) / max(stamp.rgba.size)
    rgba = _resize_rgba(stamp.rgba, scale)
    solid = stamp.solid.resize(rgba.size, Image.BILINEAR)
    if stamp.mirrorable and rng.random() < 0.5:
        rgba, solid = (im.transpose(Image.FLIP_LEFT_RIGHT) for im in (rgba, solid))
    left, top = _placement(rng, rgba.width, rgba.height, size)
    layer = np.zeros((size, size, 5), np.float32)
    src = np.dstack([np.asarray(rgba, np.float32), np.asarray(solid, np.float32)])
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + rgba.width, size), min(top + rgba.height, size)
    layer[y0:y1, x0:x1] = src[y0 - top:y1 - top, x0 - left:x1 - left]
    alpha = layer[..., 3:4] / 255
    colour = layer[..., :3] * rng.uniform(0.85, 1.15)  # a little light change
    blended = scene * (1 - alpha) + colour * alpha
    mask = np.where(layer[..., 4] >= 128, class_index, 0).astype(np.uint8)
    return blended, mask


def _finish(rng: np.random.Generator, blended: np.ndarray) -> np.ndarray:
    """Mild blur and noise over the whole picture so the paste edge looks like the rest."""
    image = Image.fromarray(np.clip(blended, 0, 255).round().astype(np.uint8))
    if rng.random() < 0.6:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    sigma = np.float32(rng.uniform(0, 4))
    noisy = np.asarray(image, np.float32) + sigma * rng.standard_normal(blended.shape,
                                                                        np.float32)
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def write_composite_set(out: Path, *, n_train: int, n_val: int, n_test: int, size: int,
                        seed: int, tuxpaint_dir: str | os.PathLike | None = None) -> dict:
    tuxpaint_dir = Path(tuxpaint_dir) if tuxpaint_dir else TUXPAINT_DIR
    stamps = _load_stamps(tuxpaint_dir, size)
    if not stamps:
        raise FileNotFoundError(f"{tuxpaint_dir / 'stamps'}: no usable stamp category")
    photos = _load_backgrounds(tuxpaint_dir, size)
    rng = np.random.default_rng(seed)
    stamp_splits = {cat: _split_items(found, rng) for cat, found in stamps.items()}
    scene_splits = _split_items(sorted(photos), rng)
    categories = list(stamps)
    sources: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}

    def make(split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = _rng(seed, split, index)
        category = categories[int(rng.integers(len(categories)))]
        pool = stamp_splits[category][split]
        stamp = pool[int(rng.integers(len(pool)))]
        scene_name = scene_splits[split][int(rng.integers(len(scene_splits[split])))]
        scene = _scene(rng, photos[scene_name], size)
        for _ in range(20):  # a stamp cut to nothing at a border is placed again
            blended, mask = _paste(scene, stamp, rng, categories.index(category) + 1)
            if mask.any():
                break
        sources[split].append((stamp.name, scene_name))
        return _finish(rng, blended), mask

    summary = {
        "kind": "composites", "format": "transferkit-dense-data", "size": size, "seed": seed,
        "source": "Tux Paint stamps (GPL-2: generated here, never redistribute) on Tux Paint "
                  "templates and scikit-image photos",
        "splits": {split: {"stamps": sum(len(s[split]) for s in stamp_splits.values()),
                           "backgrounds": len(scene_splits[split]),
                           "background_names": scene_splits[split],
                           "stamp_names": sorted(st.name for s in stamp_splits.values()
                                                 for st in s[split])}
                   for split in SPLITS},
        "sources": sources}
    return _write_dataset(out, {"train": n_train, "val": n_val, "test": n_test}, make,
                          ["background", *categories], summary, image_format="jpg",
                          quality=lambda split, i: int(_rng(seed + 1, split, i).integers(
                              JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
