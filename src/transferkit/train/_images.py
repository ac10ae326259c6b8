"""Images for training through the body: decoded once, kept in memory, fed in batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from transferkit.backbones import Backbone, Preprocessing, TrunkSplit
from transferkit.data import DEFAULT_MAX_PIXELS
from transferkit.train.data import LabelledImages, Split
from transferkit.utils import progress

Transform = Callable[[Any], torch.Tensor]
Part = tuple[list, list[int]]  # (PIL images, class indices) of one split
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def load_parts(data: LabelledImages, split: Split, prep: Preprocessing,
               max_pixels: int = DEFAULT_MAX_PIXELS
               ) -> tuple[dict[str, Part], list[tuple[str, str]], dict[str, list[str]]]:
    """Train/val/test images and class indices, the files that could not be read, and each
    split's file paths (the report lists the evaluated images by path)."""
    class_index = {c: i for i, c in enumerate(data.classes)}
    all_idx = np.concatenate([split.train, split.val, split.test])
    max_side = max(prep.input_size, prep.resize_size) + 8
    images, kept, failures = preload(data, all_idx, max_side=max_side, max_pixels=max_pixels)
    image_of = dict(zip(kept, images))
    parts, paths = {}, {}
    for name, idx in (("train", split.train), ("val", split.val), ("test", split.test)):
        ok = [int(i) for i in idx if int(i) in image_of]
        parts[name] = ([image_of[i] for i in ok], [class_index[data.labels[i]] for i in ok])
        paths[name] = [str(data.paths[i]) for i in ok]
    if not parts["train"][0]:
        raise ValueError(f"{data.source}: no readable training images")
    return parts, failures, paths


def preload(data: LabelledImages, indices: np.ndarray, max_side: int,
            max_pixels: int = DEFAULT_MAX_PIXELS
            ) -> tuple[list, list[int], list[tuple[str, str]]]:
    """Decode once, shrink to what training needs, keep in memory (epochs re-use it)."""
    from transferkit.data import load_image
    from transferkit.errors import ImageLoadError

    images, kept, failures = [], [], []
    for i in progress(indices, desc="load images", unit="img"):
        try:
            img = load_image(data.paths[i], draft_size=max_side, max_pixels=max_pixels)
        except ImageLoadError as exc:
            failures.append((exc.path, exc.reason))
            continue
        images.append(Preprocessing.shrink(img, max_side))
        kept.append(int(i))
    return images, kept, failures


class ImageList(torch.utils.data.Dataset):
    """In-memory images, transformed (augmented) afresh every time an item is drawn."""

    def __init__(self, images: list, targets: list[int], transform: Transform) -> None:
        self.images, self.targets, self.transform = images, targets, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), self.targets[i]


def image_batches(part: Part, transform: Transform, batch_size: int) -> Batches:
    images, targets = part
    for start in range(0, len(images), batch_size):
        yield (torch.stack([transform(img) for img in images[start:start + batch_size]]),
               torch.as_tensor(targets[start:start + batch_size]))


def tensor_batches(x: torch.Tensor, targets: list[int], batch_size: int) -> Batches:
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size], torch.as_tensor(targets[start:start + batch_size])


class Replayable:
    """Re-iterable wrapper so validation batches can be walked every epoch."""

    def __init__(self, make: Callable[[], Batches]) -> None:
        self.make = make

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter(self.make())


@torch.inference_mode()
def trunk_outputs(backbone: Backbone, trunk: TrunkSplit, images: list, transform: Transform,
                  batch_size: int) -> torch.Tensor:
    """The frozen trunk's output for ``images``, computed once for every epoch to re-use."""
    backbone.model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.stack([transform(img) for img in images[start:start + batch_size]])
        out.append(trunk.run_trunk(x.contiguous(memory_format=torch.channels_last)).contiguous())
    if not out:
        return torch.zeros(0)
    return torch.cat(out).clone()  # a normal tensor (not an inference tensor) for autograd


@torch.inference_mode()
def top_embeddings(backbone: Backbone, trunk: TrunkSplit, trunk_out: torch.Tensor,
                   batch_size: int) -> np.ndarray:
    """Finish cached trunk outputs into pooled embeddings (instead of a second full pass)."""
    backbone.eval()
    out = [trunk.run_top(trunk_out[i:i + batch_size]).numpy()
           for i in range(0, len(trunk_out), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, backbone.num_features), np.float32)
