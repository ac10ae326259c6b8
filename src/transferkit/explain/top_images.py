"""Which dataset images excite a unit most: the data-driven complement of activation
maximisation (what a channel responds to among real images, not an invented one)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from transferkit.backbones import Backbone
from transferkit.explain._model import PixelModel, StopForward, channel_means
from transferkit.utils import atomic_path, progress


@dataclass
class TopImages:
    layer: str
    channel: int
    indices: list[int]
    scores: list[float]
    images: list[Image.Image]
    names: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"top {len(self.indices)} images for channel {self.channel} of {self.layer} "
                 f"(mean activation):"]
        lines += [f"  {s:8.3f}  {n}" for s, n in zip(self.scores, self.names)]
        return "\n".join(lines)

    def save_grid(self, path: str | os.PathLike, tile: int = 112) -> Path:
        """All top images as one PNG grid, best first, score written under each."""
        from PIL import ImageDraw

        cols = int(np.ceil(np.sqrt(len(self.images)))) or 1
        rows = int(np.ceil(len(self.images) / cols)) or 1
        canvas = Image.new("RGB", (cols * (tile + 4), rows * (tile + 18)), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        for i, (img, score) in enumerate(zip(self.images, self.scores)):
            x, y = (i % cols) * (tile + 4), (i // cols) * (tile + 18)
            canvas.paste(img.convert("RGB").resize((tile, tile)), (x, y))
            draw.text((x + 2, y + tile + 2), f"{score:.2f}", fill=(0, 0, 0))
        path = Path(path)
        with atomic_path(path, suffix=".png") as tmp:
            canvas.save(tmp, format="PNG")
        return path


def _batches_from_files(paths: Sequence[Path], backbone: Backbone, batch_size: int):
    from transferkit.data import try_load_images

    transform = backbone.preprocessing.eval_transform()
    mean = torch.tensor(backbone.preprocessing.mean).view(3, 1, 1)
    std = torch.tensor(backbone.preprocessing.std).view(3, 1, 1)
    for start in range(0, len(paths), batch_size):
        loaded, bad = try_load_images(paths[start:start + batch_size],
                                      draft_size=backbone.preprocessing.resize_size)
        tensors = [transform(img) * std + mean for _, img in loaded]  # back to [0, 1]
        yield ([str(p) for p, _ in loaded], torch.stack(tensors) if tensors else None,
               [(e.path, e.reason) for e in bad])


def _batches_from_arrays(images: np.ndarray, prep, batch_size: int):
    for start in range(0, len(images), batch_size):
        chunk = prep.arrays_to_pixels(images[start:start + batch_size])
        yield [f"#{start + i}" for i in range(len(chunk))], chunk, []


@torch.no_grad()  # not inference_mode: PixelModel may convert the weights here, and
# inference tensors could then never take part in a later visualisation's backward pass
def top_activating(backbone: Backbone, images: str | os.PathLike | np.ndarray, layer: str,
                   channel: int, k: int = 9, batch_size: int = 32, image_size: int | None = None,
                   show_progress: bool = True) -> TopImages:
    """Rank a folder of image files, or uint8 arrays (N,H,W[,3]) such as Fashion-MNIST, by the
    mean activation of ``channel`` in ``layer``; keep the ``k`` best."""
    from transferkit.data import list_images, load_image

    model = PixelModel(backbone)
    if isinstance(images, np.ndarray):
        prep = backbone.with_image_size(image_size).preprocessing
        batches = _batches_from_arrays(images, prep, batch_size)
        total = -(-len(images) // batch_size)
    else:
        files = list_images(images)
        if not files:
            raise FileNotFoundError(f"{images}: no image files found")
        batches = _batches_from_files(files, backbone, batch_size)
        total = -(-len(files) // batch_size)
    names: list[str] = []
    scores: list[float] = []
    failures: list[tuple[str, str]] = []
    with model.capture(layer, stop=True) as store:
        for batch_names, batch, bad in (progress(batches, desc=f"rank {layer}:{channel}",
                                                 total=total, unit="batch")
                                        if show_progress else batches):
            failures.extend(bad)
            if batch is None:
                continue
            try:
                model(batch)
            except StopForward:
                pass
            means = channel_means(store["out"])
            if channel >= means.shape[1]:
                raise ValueError(f"{layer} has {means.shape[1]} channels; got channel {channel}")
            scores.extend(means[:, channel].tolist())
            names.extend(batch_names)
    order = np.argsort(scores)[::-1][:k]
    if isinstance(images, np.ndarray):
        picked = [Image.fromarray(np.asarray(images[i])) for i in order]
    else:
        picked = [load_image(names[i]) for i in order]
    return TopImages(layer, channel, [int(i) for i in order], [scores[i] for i in order],
                     picked, [names[i] for i in order], failures)
