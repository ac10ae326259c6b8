"""A contact-sheet PNG: the query, then its hits with distances, so results can be eyeballed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def _thumb(image_or_path, size: int):
    from PIL import Image

    from transferkit.data import ImageLoadError, load_image

    if isinstance(image_or_path, Image.Image):
        image = image_or_path.convert("RGB")
    else:
        try:
            image = load_image(image_or_path, draft_size=size)
        except ImageLoadError:
            return Image.new("RGB", (size, size), (200, 200, 200))  # file gone since indexing
    image = image.copy()
    image.thumbnail((size, size))
    return image


def contact_sheet(query_image, hits: Sequence, out_png: str | os.PathLike,
                  columns: int = 6, thumb: int = 160, title: str | None = None) -> Path:
    """Save query + hits as a grid PNG (atomic). ``query_image``: PIL image or file path;
    ``hits``: :class:`SearchHit` objects (or anything with ``path`` and ``distance``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from transferkit.utils import atomic_path

    tiles = [(_thumb(query_image, thumb), "query")]
    for rank, hit in enumerate(hits, 1):
        tiles.append((_thumb(hit.path, thumb), f"{rank}. {Path(hit.path).name[:22]}\n"
                                               f"d={hit.distance:.3f}"))
    cols = max(1, min(columns, len(tiles)))
    rows = (len(tiles) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.7 * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (image, label) in zip(axes.ravel(), tiles):
        ax.imshow(image)
        ax.set_title(label, fontsize=8, color="tab:red" if label == "query" else "black")
    if title:
        fig.suptitle(title, fontsize=10)
    out = Path(out_png)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out
