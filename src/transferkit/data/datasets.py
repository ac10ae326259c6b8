"""Torch datasets over image files whose bad members are skipped and reported, not fatal."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from transferkit.data.images import ImageLoadError, load_image


class ImageFileDataset(Dataset):
    """Yields ``(tensor, index)`` or ``(None, index, reason)`` for a file that failed to load.

    Pair it with :func:`collate_skipping_failures`; a DataLoader with workers then decodes in
    parallel while bad files travel back as reasons instead of exceptions.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], transform: Callable,
                 draft_size: int | None = None, labels: Sequence[int] | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.transform = transform
        self.draft_size = draft_size
        self.labels = list(labels) if labels is not None else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image = load_image(self.paths[index], draft_size=self.draft_size)
            tensor = self.transform(image)
        except ImageLoadError as exc:
            return None, index, exc.reason
        except Exception as exc:  # noqa: BLE001 - a transform failure is a bad file too
            return None, index, f"could not preprocess ({exc.__class__.__name__}: {exc})"
        label = self.labels[index] if self.labels is not None else -1
        return tensor, index, label


def collate_skipping_failures(batch):
    """-> (images or None, indices, labels, failures[(index, reason)])."""
    good = [item for item in batch if item[0] is not None]
    failures = [(item[1], item[2]) for item in batch if item[0] is None]
    if not good:
        return None, torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), failures
    images = torch.stack([item[0] for item in good])
    indices = torch.tensor([item[1] for item in good], dtype=torch.long)
    labels = torch.tensor([item[2] for item in good], dtype=torch.long)
    return images, indices, labels, failures
