"""PNG pictures of images: interpolation strips and labelled reconstruction grids."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from transferkit.utils import atomic_path


def save_strip(images: np.ndarray, path: str | os.PathLike, scale: int = 3) -> Path:
    """uint8 (N,H,W) -> one PNG row, upscaled ``scale``x with a 1-px gap between images."""
    return save_image_grid([list(images)], path, scale=scale)


def save_image_grid(rows: Sequence[Sequence[np.ndarray]], path: str | os.PathLike,
                    row_labels: Sequence[str] | None = None, scale: int = 3) -> Path:
    """Grid PNG of uint8 grayscale or RGB images; optional label left of each row."""
    from PIL import Image, ImageDraw

    if not rows or not rows[0]:
        raise ValueError(f"{path}: nothing to draw")
    first = np.asarray(rows[0][0])
    h, w = first.shape[:2]
    gap, label_w = 2, (150 if row_labels else 0)
    ncols = max(len(r) for r in rows)
    canvas = Image.new("RGB", (label_w + ncols * (w * scale + gap), len(rows) * (h * scale + gap)),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        y = r * (h * scale + gap)
        if row_labels:
            draw.text((4, y + h * scale // 2 - 6), str(row_labels[r]), fill=(0, 0, 0))
        for c, img in enumerate(row):
            tile = Image.fromarray(np.asarray(img, dtype=np.uint8)).convert("RGB")
            tile = tile.resize((w * scale, h * scale), Image.Resampling.NEAREST)
            canvas.paste(tile, (label_w + c * (w * scale + gap), y))
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        canvas.save(tmp, format="PNG")
    return path
