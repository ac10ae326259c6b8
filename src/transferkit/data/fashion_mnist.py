"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (MIT), read offline."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path(os.environ.get("TRANSFERKIT_FASHION_MNIST",
                                        "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    if data[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file (bad magic)")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def load_fashion_mnist(split: str = "train", limit: int | None = None,
                       root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images uint8 [N, 28, 28], labels int64 [N])``.

    ``limit`` takes a class-balanced-in-expectation prefix (the files are shuffled already).
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root) if root else FASHION_MNIST_DIR
    image_file, label_file = (root / name for name in _FILES[split])
    if not image_file.exists():
        raise FileNotFoundError(f"{image_file}: Fashion-MNIST not found; install the Debian "
                                f"package: apt-get install dataset-fashion-mnist")
    images = _read_idx(image_file)
    labels = _read_idx(label_file).astype(np.int64)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


def write_fashion_mnist_folder(dest: str | os.PathLike, split: str = "train",
                               per_class: int = 50, image_format: str = "png") -> Path:
    """Write ``per_class`` images of each class as an image folder (one sub-folder per class)."""
    from PIL import Image

    images, labels = load_fashion_mnist(split)
    dest = Path(dest)
    for cls, name in enumerate(FASHION_MNIST_CLASSES):
        folder = dest / name.replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        for idx in np.flatnonzero(labels == cls)[:per_class]:
            image = Image.fromarray(images[idx], mode="L")
            image.save(folder / f"{split}_{idx:05d}.{image_format}")
    return dest
