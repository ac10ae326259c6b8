"""Generators behind :func:`write_fixture` and :func:`write_composites` (one object per image).

Both write the user format of :mod:`transferkit.dense.data` into a temporary folder that is
renamed onto ``out`` only when every split is written, so a killed run never leaves a folder
that looks complete.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from transferkit.utils import atomic_path, progress

SPLITS = ("train", "val", "test")
SUMMARY_NAME = "summary.json"
BOX_HEADER = ["path", "label", "x", "y", "w", "h"]

def box_from_mask(mask: np.ndarray) -> tuple[float, float, float, float]:
    """x, y, w, h of the non-background pixels, as torchvision's masks_to_boxes + xywh."""
    import torch
    from torchvision.ops import box_convert, masks_to_boxes

    xyxy = masks_to_boxes(torch.from_numpy((mask > 0) & (mask != 255))[None])
    return tuple(float(v) for v in box_convert(xyxy, "xyxy", "xywh")[0])


def _check_target(out: Path) -> None:
    """Refuse to replace a non-empty folder that this module did not write."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / SUMMARY_NAME).exists())):
        raise FileExistsError(f"{out}: exists and is not a generated dataset (no "
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
    _check_target(out)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for split in SPLITS:
            per_class = _write_split(tmp / split, counts[split], lambda i, s=split: make(s, i),
                                     classes, image_format, lambda i, s=split: quality(s, i),
                                     f"{summary['kind']} {split}")
            summary["splits"][split].update(images=counts[split], path=str(out / split),
                                            per_class=per_class)
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


def write_fixture_set(out: Path, *, n: int, size: int, seed: int, n_val: int,
                      n_test: int) -> dict:
    from transferkit.data import load_fashion_mnist

    train_images, train_labels = load_fashion_mnist("train", limit=2000)
    test_images, test_labels = load_fashion_mnist("test", limit=2000)
    # val and test draw from disjoint halves of the test file: unseen items in each
    sources = {"train": (train_images, train_labels),
               "val": (test_images[:1000], test_labels[:1000]),
               "test": (test_images[1000:], test_labels[1000:])}
    pools = {split: {name: images[labels == number] for name, number in _FASHION_LABELS.items()}
             for split, (images, labels) in sources.items()}

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
