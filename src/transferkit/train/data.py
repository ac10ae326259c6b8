"""Labelled image lists: from a class-per-folder tree, a CSV, or installed demo packages.

Splits are stratified and seeded so that re-running (or resuming) a job sees the same
train/validation/test images; user-given splits (``train/ val/ test/`` sub-folders or a CSV
``split`` column) are respected as they are.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transferkit.data import IMAGE_EXTENSIONS, scan_images

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test"}


@dataclass
class LabelledImages:
    """Image paths with class labels, and optionally a fixed split name per image."""

    paths: list[str]
    labels: list[str]
    splits: list[str] | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files found that are not images

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{self.source}: {len(self.paths)} paths but "
                             f"{len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    def counts(self) -> dict[str, int]:
        counter = Counter(self.labels)
        return {c: counter[c] for c in self.classes}

    def subset(self, indices) -> LabelledImages:
        idx = [int(i) for i in indices]
        return LabelledImages([self.paths[i] for i in idx], [self.labels[i] for i in idx],
                              [self.splits[i] for i in idx] if self.splits else None,
                              self.source)

    def fingerprint(self) -> str:
        """Hash of file names, sizes, mtimes and labels: keys the feature cache."""
        digest = hashlib.sha256()
        for path, label in zip(self.paths, self.labels):
            try:
                st = os.stat(path)
                stamp = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                stamp = "missing"
            digest.update(f"{os.path.abspath(path)}\0{stamp}\0{label}\n".encode())
        return digest.hexdigest()[:20]


def load_image_folder(root: str | os.PathLike) -> LabelledImages:
    """``root/<class>/*.png`` or ``root/{train,val,test}/<class>/*`` (user-given splits)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_dirs = [p for p in subdirs if p.name.lower() in SPLIT_NAMES]
    if split_dirs and len(split_dirs) == len(subdirs):
        paths, labels, splits, ignored = [], [], [], []
        for split_dir in split_dirs:
            part = load_image_folder(split_dir)
            paths += part.paths
            labels += part.labels
            splits += [SPLIT_NAMES[split_dir.name.lower()]] * len(part)
            ignored += part.ignored
        return LabelledImages(paths, labels, splits, str(root), ignored=ignored)
    paths, labels = [], []
    ignored = [str(p) for p in root.iterdir() if not p.is_dir() or p.name.startswith(".")]
    for class_dir in subdirs:
        scan = scan_images(class_dir)
        paths += [str(f) for f in scan.images]
        labels += [class_dir.name] * len(scan.images)
        ignored += [str(f) for f in scan.ignored]
    if not paths:
        raise ValueError(f"{root}: no images found; expected one sub-folder of images per class")
    if len(set(labels)) < 2:
        raise ValueError(f"{root}: found only {len(set(labels))} class folder(s) with images; "
                         f"need at least 2")
    return LabelledImages(paths, labels, None, str(root), ignored=sorted(ignored))


def load_csv(path: str | os.PathLike) -> LabelledImages:
    """CSV rows ``path,label[,split]`` (a header row is detected); relative paths are taken
    relative to the CSV's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CSV file")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r and any(cell.strip() for cell in r)]
    if rows and rows[0][0].strip().lower() in {"path", "file", "filename", "image"}:
        rows = rows[1:]
    paths, labels, splits = [], [], []
    for line, row in enumerate(rows, 1):
        if len(row) < 2:
            raise ValueError(f"{path}: row {line} needs 'path,label', got {row!r}")
        file = Path(row[0].strip())
        paths.append(str(file if file.is_absolute() else path.parent / file))
        labels.append(row[1].strip())
        if len(row) > 2 and row[2].strip():
            split = SPLIT_NAMES.get(row[2].strip().lower())
            if split is None:
                raise ValueError(f"{path}: row {line}: split must be train/val/test, "
                                 f"got {row[2]!r}")
            splits.append(split)
    if splits and len(splits) != len(paths):
        raise ValueError(f"{path}: give a split for every row or for none")
    if not paths:
        raise ValueError(f"{path}: no rows")
    return LabelledImages(paths, labels, splits or None, str(path))


def load_labelled(data: str | os.PathLike | LabelledImages) -> LabelledImages:
    """Folder, CSV file, or an existing :class:`LabelledImages`."""
    if isinstance(data, LabelledImages):
        return data
    path = Path(data)
    if path.is_file() and path.suffix.lower() in {".csv", ".tsv", ".txt"}:
        return load_csv(path)
    if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        raise ValueError(f"{path}: expected a folder of class folders or a CSV, got one image")
    return load_image_folder(path)


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def stratified_split(labels: list[str], val_fraction: float = 0.15, test_fraction: float = 0.15,
                     seed: int = 0, splits: list[str] | None = None) -> Split:
    """Seeded per-class shuffle; every class keeps at least one training image.

    With user-given ``splits`` those are used; a missing validation split is carved out of
    train, a missing test split stays empty (evaluate on other data later).
    """
    labels_arr = np.asarray(labels)
    if splits is not None:
        names = np.asarray(splits)
        train, val, test = (np.flatnonzero(names == s) for s in ("train", "val", "test"))
        if len(val) == 0 and val_fraction > 0:
            inner = stratified_split(list(labels_arr[train]), val_fraction, 0.0, seed)
            train, val = train[inner.train], train[inner.val]
        return Split(train, val, test)
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or \
            val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} "
                         f"must be in [0, 1) and sum to less than 1")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for cls in sorted(set(labels_arr.tolist())):
        idx = rng.permutation(np.flatnonzero(labels_arr == cls))
        n = len(idx)
        n_test = int(round(n * test_fraction)) if n >= 3 else 0
        n_val = int(round(n * val_fraction)) if n - n_test >= 2 else 0
        n_test = min(n_test, n - 1)
        n_val = min(n_val, n - n_test - 1)
        parts["test"] += idx[:n_test].tolist()
        parts["val"] += idx[n_test:n_test + n_val].tolist()
        parts["train"] += idx[n_test + n_val:].tolist()
    return Split(*(np.asarray(sorted(parts[k]), dtype=np.int64) for k in ("train", "val", "test")))


# -- demo data from Debian packages ---------------------------------------------------------

TUXPAINT_DIR = Path(os.environ.get("TRANSFERKIT_TUXPAINT", "/usr/share/tuxpaint/stamps"))
# The 8 top-level stamp folders with the most PNGs; rough, visually mixed classes.
TUXPAINT_CLASSES = ("animals", "food", "household", "plants", "seasonal", "symbols", "town",
                    "vehicles")


def tuxpaint_dataset(classes=TUXPAINT_CLASSES, root: str | os.PathLike | None = None,
                     max_per_class: int | None = None, seed: int = 0) -> LabelledImages:
    """Tux Paint stamp PNGs labelled by top-level folder (Debian ``tuxpaint-stamps-default``).

    ``*_mirror.png`` files (mirror images of another stamp) are left out so that no image
    and its mirror end up on both sides of a split. Nothing is copied: paths point at the
    installed package.
    """
    root = Path(root) if root else TUXPAINT_DIR
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: Tux Paint stamps not found; install the Debian "
                                f"package: apt-get install tuxpaint-stamps-default")
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for cls in classes:
        files = sorted(p for p in (root / cls).rglob("*.png")
                       if not p.stem.endswith("_mirror"))
        if max_per_class is not None and len(files) > max_per_class:
            files = [files[i] for i in sorted(rng.choice(len(files), max_per_class, False))]
        paths += [str(f) for f in files]
        labels += [cls] * len(files)
    return LabelledImages(paths, labels, None, f"tuxpaint:{root}")


def fashion_mnist_folder(dest: str | os.PathLike | None = None, train_per_class: int = 100,
                         test_per_class: int = 100) -> Path:
    """Write Fashion-MNIST (Debian ``dataset-fashion-mnist``) as ``train/`` + ``test/`` image
    folders, the official test images kept as the test split. Cached: re-use if present."""
    from transferkit.data import write_fashion_mnist_folder
    from transferkit.utils import cache_dir

    dest = Path(dest) if dest else cache_dir("datasets") / (
        f"fashion-mnist-{train_per_class}-{test_per_class}")
    marker = dest / ".complete"
    if not marker.exists():
        write_fashion_mnist_folder(dest / "train", "train", per_class=train_per_class)
        write_fashion_mnist_folder(dest / "test", "test", per_class=test_per_class)
        marker.write_text("ok\n")
    return dest
