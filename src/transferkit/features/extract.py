"""Files -> embeddings with a frozen backbone: parallel decode, batching, skip-and-report."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from transferkit.backbones import Backbone, create
from transferkit.data import ImageFileDataset, collate_skipping_failures, list_images
from transferkit.features.embeddings import Embeddings
from transferkit.utils import progress


def resolve_backbone(backbone: str | Backbone, image_size: int | None = None) -> Backbone:
    if isinstance(backbone, Backbone):
        if image_size is not None:
            backbone.with_preprocessing(backbone.preprocessing.with_size(image_size, 1.0))
        return backbone
    return create(backbone, image_size=image_size)


def default_workers() -> int:
    return min(4, max(0, (os.cpu_count() or 1) - 1))


@torch.inference_mode()
def embed_paths(paths: Sequence[str | os.PathLike], backbone: str | Backbone = "efficientnet_lite0",
                batch_size: int = 32, num_workers: int | None = None,
                image_size: int | None = None, labels: Sequence | None = None,
                show_progress: bool = True) -> Embeddings:
    """Embed image files; unreadable ones are skipped and listed in ``failures``."""
    model = resolve_backbone(backbone, image_size).eval()
    model.to(memory_format=torch.channels_last)
    prep = model.preprocessing
    dataset = ImageFileDataset(paths, prep.eval_transform(), draft_size=prep.resize_size)
    workers = default_workers() if num_workers is None else num_workers
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                         collate_fn=collate_skipping_failures)
    kept_idx: list[int] = []
    chunks: list[np.ndarray] = []
    failures: list[tuple[str, str]] = []
    batches = progress(loader, desc=f"embed ({model.name})", total=len(loader), unit="batch") \
        if show_progress else loader
    for images, indices, _, bad in batches:
        failures.extend((str(dataset.paths[i]), reason) for i, reason in bad)
        if images is None:
            continue
        feats = model.embed(images.contiguous(memory_format=torch.channels_last))
        chunks.append(feats.float().numpy())
        kept_idx.extend(indices.tolist())
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, model.num_features), np.float32)
    kept_labels = [labels[i] for i in kept_idx] if labels is not None else None
    return Embeddings([str(dataset.paths[i]) for i in kept_idx], vectors, model.spec(),
                      kept_labels, failures)


def embed_folder(folder: str | os.PathLike, backbone: str | Backbone = "efficientnet_lite0",
                 **kwargs) -> Embeddings:
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(f"{folder}: no image files found")
    return embed_paths(files, backbone, **kwargs)


@torch.inference_mode()
def embed_arrays(images: np.ndarray, backbone: str | Backbone = "efficientnet_lite0",
                 batch_size: int = 64, image_size: int | None = None,
                 show_progress: bool = True) -> np.ndarray:
    """Embed in-memory uint8 images (N,H,W) or (N,H,W,3), e.g. Fashion-MNIST arrays."""
    model = resolve_backbone(backbone, image_size).eval()
    model.to(memory_format=torch.channels_last)
    size = model.preprocessing.input_size
    mean = torch.tensor(model.preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.preprocessing.std).view(1, 3, 1, 1)
    out = []
    steps = range(0, len(images), batch_size)
    for start in (progress(steps, desc="embed arrays", unit="batch") if show_progress else steps):
        batch = torch.from_numpy(np.asarray(images[start:start + batch_size])).float() / 255.0
        batch = batch.unsqueeze(1).expand(-1, 3, -1, -1) if batch.ndim == 3 \
            else batch.permute(0, 3, 1, 2)
        batch = torch.nn.functional.interpolate(batch, size=(size, size), mode="bilinear",
                                                align_corners=False, antialias=True)
        batch = ((batch - mean) / std).contiguous(memory_format=torch.channels_last)
        out.append(model.embed(batch).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_features), np.float32)


def preprocess_images(images, backbone: Backbone) -> torch.Tensor:
    """PIL images -> one normalised batch, exactly as the file pipeline does it."""
    transform = backbone.preprocessing.eval_transform()
    return torch.stack([transform(img) for img in images])


def relative_paths(embeddings: Embeddings, root: str | os.PathLike) -> list[str]:
    root = Path(root)
    return [str(Path(p).relative_to(root)) if Path(p).is_relative_to(root) else p
            for p in embeddings.paths]
