"""The computations behind gallery pictures that no lower package owns: SVD of a photo, face
search precision, and side-by-side panels with captions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw


def svd_compress(image: Image.Image, k: int) -> tuple[Image.Image, float, float]:
    """Keep ``k`` singular values per colour channel: (image, compression ratio, MSE in
    [0, 1] units). The ratio counts stored numbers: H*W per channel against k*(H+W+1)."""
    pixels = np.asarray(image.convert("RGB"), np.float64) / 255.0
    h, w, _ = pixels.shape
    out = np.empty_like(pixels)
    for c in range(3):
        u, s, vt = np.linalg.svd(pixels[..., c], full_matrices=False)
        out[..., c] = (u[:, :k] * s[:k]) @ vt[:k]
    out = np.clip(out, 0, 1)
    ratio = (h * w) / (k * (h + w + 1))
    mse = float(np.mean((out - pixels) ** 2))
    return Image.fromarray((out * 255).round().astype(np.uint8)), ratio, mse


def precision_at_k(vectors: np.ndarray, labels: Sequence[int], k: int = 5,
                   metric: str = "cosine") -> tuple[float, np.ndarray]:
    """Mean share of each item's ``k`` nearest other items (exact search) that share its
    label, and the (N, k) neighbour ids."""
    from transferkit.search import VectorIndex

    labels = np.asarray(labels)
    index = VectorIndex(vectors.shape[1], metric=metric, method="exact")
    index.add(np.asarray(vectors, np.float32), [str(i) for i in range(len(vectors))])
    _, ids = index.search(np.asarray(vectors, np.float32), k + 1)
    neighbours = np.array([[j for j in row if j != i][:k] for i, row in enumerate(ids)])
    return float((labels[neighbours] == labels[:, None]).mean()), neighbours


def panel(images: Sequence[Image.Image], captions: Sequence[str], tile: int = 192,
          title: str | None = None) -> Image.Image:
    """Images side by side, ``tile`` px high (aspect kept), a caption under each, an
    optional title above."""
    top = 18 if title else 0
    widths = [max(1, round(tile * im.width / im.height)) for im in images]
    canvas = Image.new("RGB", (sum(widths) + 6 * (len(images) + 1), top + tile + 40), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((6, 3), title, fill=(0, 0, 0))
    x = 6
    for img, width, caption in zip(images, widths, captions):
        canvas.paste(img.convert("RGB").resize((width, tile)), (x, top + 4))
        for line_no, line in enumerate(caption.split("\n")[:2]):
            draw.text((x, top + tile + 8 + 14 * line_no), line, fill=(0, 0, 0))
        x += width + 6
    return canvas


def search_rows(images: Sequence[Image.Image], labels: Sequence[int], queries: Sequence[int],
                results: dict[str, np.ndarray], tile: int = 56) -> Image.Image:
    """Per query: the query, then its neighbours under each method, framed green when they
    share the query's label and red when not."""
    names = list(results)
    k = next(iter(results.values())).shape[1]
    width = 80 + (1 + len(names) * (k + 1)) * (tile + 4)
    canvas = Image.new("RGB", (width, 20 + len(queries) * (tile + 8)), "white")
    draw = ImageDraw.Draw(canvas)
    for m, name in enumerate(names):
        draw.text((80 + (1 + m * (k + 1)) * (tile + 4) + tile // 2, 4), name, fill=(0, 0, 0))
    for r, q in enumerate(queries):
        y = 20 + r * (tile + 8)
        draw.text((4, y + tile // 2 - 6), "face" if labels[q] else "non-face", fill=(0, 0, 0))
        canvas.paste(images[q].convert("RGB").resize((tile, tile)), (80, y))
        for m, name in enumerate(names):
            for j, hit in enumerate(results[name][q]):
                x = 80 + (1 + m * (k + 1) + 1 + j) * (tile + 4) - tile // 2
                colour = (40, 160, 40) if labels[hit] == labels[q] else (200, 40, 40)
                draw.rectangle((x - 2, y - 2, x + tile + 1, y + tile + 1), outline=colour,
                               width=2)
                canvas.paste(images[hit].convert("RGB").resize((tile, tile)), (x, y))
    return canvas
