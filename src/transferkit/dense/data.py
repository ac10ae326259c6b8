"""Dense-prediction data in the formats people already have, plus demo and fixture sets.

Segmentation: ``DATA/images/*`` with ``DATA/masks/<same stem>.png`` (pixel = class index,
255 = ignore) and an optional ``DATA/classes.txt`` (one name per line, line 0 the background).
Boxes: a CSV ``path,label,x,y,w,h`` (pixels, paths relative to the CSV's folder) or a
COCO-style JSON. Bad files never stop a load: each one is skipped and listed in ``failures``
with a one-line reason naming it.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from transferkit.data import DEFAULT_MAX_PIXELS, ImageLoadError, list_images, load_image
from transferkit.errors import TransferkitError

__all__ = [
    "IGNORE_INDEX", "AnnotationError", "BoxData", "BoxSample", "MaskSample", "SegmentationData",
    "load_boxes", "load_pair", "load_segmentation_folder", "read_classes", "read_mask",
    "write_composites", "write_fixture",
]

IGNORE_INDEX = 255  # mask value that no loss or metric counts
BOX_TOLERANCE = 1.0  # pixels a box may overshoot the image (rounding) before it is refused
BINARY_CLASSES = ["background", "foreground"]


class AnnotationError(TransferkitError, ValueError):
    """An annotation file as a whole cannot be used (bad JSON, wrong structure)."""


@dataclass(frozen=True)
class MaskSample:
    """One image and its mask PNG (pixel = class index, 255 = ignore).

    ``white_foreground`` marks a binary 0/255 mask (no classes.txt): 255 then means
    foreground, not ignore; :func:`load_segmentation_folder` sets it.
    """

    image: Path
    mask: Path
    white_foreground: bool = False


@dataclass
class SegmentationData:
    root: Path
    samples: list[MaskSample]
    classes: list[str]  # classes[0] == background
    failures: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)


@dataclass(frozen=True)
class BoxSample:
    image: Path
    label: str
    box: tuple[float, float, float, float]  # x, y, w, h in pixels of the (upright) image


@dataclass
class BoxData:
    root: Path
    samples: list[BoxSample]
    classes: list[str]  # sorted label names
    failures: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)


# ---------------------------------------------------------------- segmentation folders


def read_classes(path: str | os.PathLike) -> list[str]:
    """Class names from ``classes.txt`` (one per line, line 0 the background)."""
    path = Path(path)
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    while names and not names[-1]:
        names.pop()
    if len(names) < 2 or any(not name for name in names):
        raise AnnotationError(f"{path}: needs one non-empty class name per line, line 0 the "
                              f"background, at least 2 lines (got {len(names)})")
    if len(names) > IGNORE_INDEX:
        raise AnnotationError(f"{path}: {len(names)} classes; at most {IGNORE_INDEX} fit a "
                              f"PNG mask (255 = ignore)")
    return names


def _mask_values(path: Path) -> np.ndarray:
    """The mask's pixel values as uint8 HxW: greyscale, palette index or a grey RGB."""
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == "1":
                return (np.asarray(image, dtype=np.uint8) * IGNORE_INDEX).astype(np.uint8)
            if mode in ("L", "P"):
                return np.asarray(image, dtype=np.uint8).copy()
            if mode in ("I", "I;16", "I;16B", "I;16L"):
                array = np.asarray(image).astype(np.int64)
                if array.max(initial=0) > 255 or array.min(initial=0) < 0:
                    raise ImageLoadError(path, f"mask values up to {array.max()} do not fit "
                                               f"0..255; save class indices as 8-bit PNG")
                return array.astype(np.uint8)
            if mode in ("LA", "RGB", "RGBA"):
                array = np.asarray(image.convert("RGB"))
                if not (np.array_equal(array[..., 0], array[..., 1])
                        and np.array_equal(array[..., 0], array[..., 2])):
                    raise ImageLoadError(path, "colour mask; save class indices as a "
                                               "greyscale or palette PNG")
                return array[..., 0].copy()
            raise ImageLoadError(path, f"unsupported mask mode {mode}")
    except ImageLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's fault
        raise ImageLoadError(path, f"unreadable mask ({exc.__class__.__name__}: "
                                   f"{str(exc)[:80]})") from exc


def _check_values(path: Path, mask: np.ndarray, n_classes: int) -> None:
    values = np.unique(mask)
    bad = values[(values >= n_classes) & (values != IGNORE_INDEX)]
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:8]) + (", ..." if bad.size > 8 else "")
        raise ImageLoadError(path, f"unknown class index {shown} (classes 0..{n_classes - 1}, "
                                   f"{IGNORE_INDEX} = ignore)")


def read_mask(path: str | os.PathLike, n_classes: int, *,
              white_foreground: bool = False) -> np.ndarray:
    """The mask as uint8 HxW class indices (255 = ignore); raises ImageLoadError naming it.

    ``white_foreground`` reads a 0/255 binary mask: 255 becomes class 1.
    """
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(path, "missing mask")
    mask = _mask_values(path)
    if white_foreground:
        mask = np.where(mask == IGNORE_INDEX, 1, mask).astype(np.uint8)
    _check_values(path, mask, n_classes)
    return mask


def _collapse(mask: np.ndarray) -> np.ndarray:
    """Every non-background class becomes 1; ignore stays 255."""
    return np.where(mask == IGNORE_INDEX, IGNORE_INDEX, mask > 0).astype(np.uint8)


def load_pair(sample: MaskSample, n_classes: int, binary: bool = False, *,
              max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Image.Image, np.ndarray]:
    """``(RGB image upright per EXIF, uint8 HxW mask)``; ImageLoadError names the bad file.

    ``binary=True`` collapses every class but 0 and 255 to 1, so ``n_classes`` may be the
    collapsed count (2) of a ``load_segmentation_folder(..., binary=True)`` set.
    """
    image = load_image(sample.image, max_pixels=max_pixels)
    mask = read_mask(sample.mask, IGNORE_INDEX if binary else n_classes,
                     white_foreground=sample.white_foreground)
    if mask.shape != (image.height, image.width):
        raise ImageLoadError(sample.mask, f"mask is {mask.shape[1]}x{mask.shape[0]} but its "
                                          f"image {sample.image.name} is "
                                          f"{image.width}x{image.height}")
    return image, (_collapse(mask) if binary else mask)


def load_segmentation_folder(root: str | os.PathLike, *, binary: bool = False,
                             max_pixels: int = DEFAULT_MAX_PIXELS) -> SegmentationData:
    """Pair ``root/images/*`` with ``root/masks/<stem>.png`` and check every pair.

    (Images in sub-folders pair with masks at the same relative path under ``masks/``.)

    With ``root/classes.txt`` a mask pixel is a class index (255 = ignore). Without it the
    masks must be binary: 0/1 (255 = ignore) when any mask holds a 1, else 0/255 (255 =
    foreground); classes are then ``["background", "foreground"]``. ``binary=True`` collapses
    every non-background class to 1. A missing or unreadable mask or image, a size mismatch or
    an unknown class index skips that pair and lists it in ``failures``.
    """
    root = Path(root)
    image_dir, mask_dir = root / "images", root / "masks"
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: no images/ folder (expected images/ and masks/ "
                                f"with the same file stems)")
    classes_file = root / "classes.txt"
    classes = read_classes(classes_file) if classes_file.exists() else None
    failures: list[tuple[Path, str]] = []
    # (image, mask, the mask's distinct values, its width x height): masks are not kept
    found: list[tuple[Path, Path, np.ndarray, tuple[int, int]]] = []
    for image_path in list_images(image_dir):
        mask_path = mask_dir / image_path.relative_to(image_dir).with_suffix(".png")
        if not mask_path.exists():
            failures.append((image_path, f"missing mask {mask_path}"))
            continue
        try:
            values = _mask_values(mask_path)
        except ImageLoadError as exc:
            failures.append((mask_path, exc.reason))
            continue
        found.append((image_path, mask_path, np.unique(values), (values.shape[1],
                                                                  values.shape[0])))
    white_foreground = False
    if classes is None:
        classes = list(BINARY_CLASSES)
        white_foreground = not any(1 in values for _, _, values, _ in found)
    samples = []
    for image_path, mask_path, values, mask_size in found:
        sample = MaskSample(image_path, mask_path, white_foreground)
        try:
            if white_foreground:
                values = np.where(values == IGNORE_INDEX, 1, values)
            _check_values(mask_path, values, len(classes))
            size = load_image(image_path, max_pixels=max_pixels).size
            if size != mask_size:
                raise ImageLoadError(mask_path, f"mask is {mask_size[0]}x{mask_size[1]} but its "
                                                f"image {image_path.name} is "
                                                f"{size[0]}x{size[1]}")
        except ImageLoadError as exc:
            failures.append((Path(exc.path), exc.reason))
            continue
        samples.append(sample)
    if binary:
        classes = [classes[0], "foreground"]
    return SegmentationData(root, samples, classes, failures)


# ---------------------------------------------------------------- boxes


def _checked_box(image: Path, box: tuple[float, float, float, float],
                 max_pixels: int) -> tuple[float, float, float, float]:
    """The box clipped to the image (within BOX_TOLERANCE); ValueError says what is wrong."""
    x, y, w, h = box
    if not all(math.isfinite(v) for v in box):
        raise ValueError(f"box {box} is not finite")
    if w <= 0 or h <= 0:
        raise ValueError(f"box {box} has no area (w and h must be > 0)")
    width, height = load_image(image, max_pixels=max_pixels).size
    tol = BOX_TOLERANCE
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        raise ValueError(f"box x={x:g} y={y:g} w={w:g} h={h:g} is outside the "
                         f"{width}x{height} image")
    x0, y0 = max(x, 0.0), max(y, 0.0)
    return (x0, y0, min(x + w, width) - x0, min(y + h, height) - y0)


def _largest_per_image(rows: list[tuple[Path, str, tuple[float, float, float, float]]]
                       ) -> list[tuple[Path, str, tuple[float, float, float, float]]]:
    """One object per image: the one with the largest box area (first one on a tie)."""
    best: dict[Path, tuple[Path, str, tuple[float, float, float, float]]] = {}
    for row in rows:
        kept = best.get(row[0])
        if kept is None or row[2][2] * row[2][3] > kept[2][2] * kept[2][3]:
            best[row[0]] = row
    return list(best.values())


def _finish_boxes(root: Path, rows, failures, max_pixels: int,
                  classes: list[str] | None = None) -> BoxData:
    samples = []
    for image, label, box in _largest_per_image(rows):
        try:
            samples.append(BoxSample(image, label, _checked_box(image, box, max_pixels)))
        except ImageLoadError as exc:
            failures.append((Path(exc.path), exc.reason))
        except ValueError as exc:
            failures.append((image, str(exc)))
    names = sorted({s.label for s in samples} if classes is None else set(classes))
    return BoxData(root, samples, names, failures)


def _read_box_csv(path: Path) -> tuple[list, list[tuple[Path, str]]]:
    rows, failures = [], []
    with open(path, newline="", encoding="utf-8") as fh:
        for line_no, cells in enumerate(csv.reader(fh), start=1):
            if not cells or all(not c.strip() for c in cells):
                continue
            if line_no == 1 and cells[0].strip().lower() == "path":
                continue  # header
            where = Path(f"{path}:{line_no}")
            if len(cells) != 6:
                failures.append((where, f"bad CSV row: {len(cells)} fields, expected "
                                        f"path,label,x,y,w,h"))
                continue
            name, label = cells[0].strip(), cells[1].strip()
            try:
                box = tuple(float(c) for c in cells[2:])
            except ValueError:
                failures.append((where, f"bad CSV row: x,y,w,h must be numbers, got "
                                        f"{','.join(cells[2:])}"))
                continue
            if not name or not label:
                failures.append((where, "bad CSV row: empty path or label"))
                continue
            image = path.parent / name
            if not image.exists():
                failures.append((image, f"missing image (row {line_no} of {path.name})"))
                continue
            rows.append((image, label, box))
    return rows, failures


def _coco_image_path(root: Path, file_name: str) -> Path:
    for candidate in (root / file_name, root / "images" / file_name):
        if candidate.exists():
            return candidate
    return root / file_name


def _read_coco(path: Path) -> tuple[list, list[tuple[Path, str]], list[str]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        images = {int(im["id"]): str(im["file_name"]) for im in doc["images"]}
        categories = {int(c["id"]): str(c["name"]) for c in doc["categories"]}
        annotations = list(doc["annotations"])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: bad COCO JSON ({exc})") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise AnnotationError(f"{path}: bad COCO JSON (needs images[id, file_name], "
                              f"categories[id, name] and annotations; {exc!r})") from exc
    rows, failures, seen = [], [], set()
    for number, ann in enumerate(annotations):
        where = Path(f"{path}:annotations[{number}]")
        try:
            if ann.get("iscrowd", 0):
                continue
            image_id, category = int(ann["image_id"]), int(ann["category_id"])
            bbox = [float(v) for v in ann["bbox"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            failures.append((where, f"bad COCO annotation: needs image_id, category_id and "
                                    f"bbox ({exc!r:.60})"))
            continue
        problem = ("" if category in categories else f"unknown category_id {category}") or (
            "" if image_id in images else f"unknown image_id {image_id}") or (
            "" if len(bbox) == 4 else f"bbox has {len(bbox)} numbers, expected x,y,w,h")
        if problem:
            failures.append((where, f"bad COCO annotation: {problem}"))
            continue
        label, file_name = categories[category], images[image_id]
        image = _coco_image_path(path.parent, file_name)
        seen.add(image_id)
        if not image.exists():
            failures.append((image, "missing image"))
            continue
        rows.append((image, label, tuple(bbox)))
    for image_id, file_name in images.items():
        if image_id not in seen:
            failures.append((_coco_image_path(path.parent, file_name), "no object annotated"))
    return rows, failures, sorted(set(categories.values()))


def load_boxes(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> BoxData:
    """One labelled box per image from a CSV ``path,label,x,y,w,h`` or a COCO JSON.

    CSV paths are relative to the CSV's folder (an optional header row starting with
    ``path`` is skipped). COCO ``file_name`` is looked up beside the JSON, then in its
    ``images/`` folder; crowd annotations (``iscrowd``) are skipped. The task is single-object
    localisation, so an image with several objects (several CSV rows, several annotations)
    keeps the **largest one by box area w*h** (the first on a tie). A box may overshoot the
    image by a pixel of rounding (it is clipped); further out it is refused. Bad rows, missing
    or unreadable images and out-of-image boxes are listed in ``failures``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such box file (CSV path,label,x,y,w,h or COCO "
                                f"JSON)")
    if path.suffix.lower() == ".json":
        rows, failures, classes = _read_coco(path)
        return _finish_boxes(path.parent, rows, failures, max_pixels, classes)
    rows, failures = _read_box_csv(path)
    return _finish_boxes(path.parent, rows, failures, max_pixels)


# ---------------------------------------------------------------- generated sets


def write_fixture(out: str | os.PathLike, *, n: int = 24, size: int = 96, seed: int = 0,
                  n_val: int | None = None, n_test: int | None = None) -> dict:
    """A small committed-safe set: Fashion-MNIST items and drawn shapes on textured canvases.

    ``n`` training images, ``n_val``/``n_test`` (default ``n // 2``, at least 2) in the
    layout of :func:`write_composites`; generated in well under a second for tests.
    """
    from transferkit.dense._composite import write_fixture_set

    return write_fixture_set(Path(out), n=n, size=size, seed=seed,
                             n_val=max(2, n // 2) if n_val is None else n_val,
                             n_test=max(2, n // 2) if n_test is None else n_test)


def write_composites(out: str | os.PathLike, *, n_train: int = 800, n_val: int = 200,
                     n_test: int = 200, size: int = 160, seed: int = 0,
                     tuxpaint_dir: str | os.PathLike | None = None) -> dict:
    """Tux Paint stamps pasted on real background photos, in the user format.

    Writes ``out/{train,val,test}/`` with ``images/``, ``masks/`` (class index = stamp
    category + 1, 0 = background), ``classes.txt`` and ``boxes.csv``, plus
    ``out/summary.json``. Stamps and backgrounds are split so that the test set holds unseen
    objects on unseen scenes; each split's ``sources.csv`` names the stamp and scene of every
    image. ``tuxpaint_dir`` (default /usr/share/tuxpaint or $TRANSFERKIT_TUXPAINT) holds
    ``stamps/`` and ``templates/``. Generated at run time (the stamps are GPL-2: never commit
    the output); seeded and deterministic (an image depends on seed, split and index only).

    How: stamps that are single-colour glyphs (``colorable``), letters, smaller than 96 px,
    wire-thin or an opaque rectangle are skipped, as are categories left with fewer than 3
    stamps. Each image picks a category uniformly (balanced classes), then a stamp of that
    category from its split, scales it to 30-75 % of the side, mirrors it now and then and
    pastes it with its soft alpha (premultiplied resize: no fringe) on a random crop of a
    photo; a quarter of the stamps run off an edge (at least half stays visible). Mask =
    alpha >= 128 without the stamp's drop shadow; box = the mask's (torchvision
    masks_to_boxes). A mild blur, pixel noise and a JPEG round trip (quality 70-95) follow.
    Returns the summary also written to ``summary.json``: ``classes`` and per split its
    ``images``, ``stamps`` and ``backgrounds`` counts (with their names), ``per_class`` and
    ``path``.
    """
    from transferkit.dense._composite import write_composite_set

    return write_composite_set(Path(out), n_train=n_train, n_val=n_val, n_test=n_test,
                               size=size, seed=seed, tuxpaint_dir=tuxpaint_dir)
