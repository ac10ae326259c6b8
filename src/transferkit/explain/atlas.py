"""A layer atlas: for each stage of a backbone, what a few channels "want" (activation
maximisation) beside the dataset images that excite them most, so the "early layers: edges and
colours, late layers: object parts" picture comes out of one call."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from transferkit.backbones import Backbone
from transferkit.explain._model import PixelModel, StopForward, channel_means
from transferkit.explain.featurevis import visualize_channels
from transferkit.utils import atomic_path, progress

TILE = 96  # side of a channel visualisation in the grid
THUMB = 32  # side of a top-activating image under it
LABEL_W = 70


def default_atlas_images() -> tuple[list[Image.Image], list[str]]:
    """scikit-image's photos plus the committed Fashion-MNIST fixture (a clone's
    tests/fixtures/fashion-mini) or, without it, 120 Fashion-MNIST test images."""
    from transferkit.data import (
        SAMPLE_PHOTOS,
        list_images,
        load_fashion_mnist,
        load_image,
        sample_photo,
    )

    images = [sample_photo(name) for name in SAMPLE_PHOTOS]
    names = list(SAMPLE_PHOTOS)
    fixture = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "fashion-mini"
    if fixture.is_dir():
        files = list_images(fixture)
        images += [load_image(f) for f in files]
        names += [f"{f.parent.name}/{f.name}" for f in files]
    else:
        arrays, _ = load_fashion_mnist("test", 120)
        images += [Image.fromarray(a).convert("RGB") for a in arrays]
        names += [f"fashion-mnist#{i}" for i in range(len(arrays))]
    return images, names


def load_atlas_images(source: str | os.PathLike | None) -> tuple[list[Image.Image], list[str]]:
    """The images of a folder (unreadable files skipped), or the defaults for None."""
    if source is None:
        return default_atlas_images()
    from transferkit.data import list_images, try_load_images

    files = list_images(source)
    loaded, _bad = try_load_images(files)
    if not loaded:
        raise FileNotFoundError(f"{source}: no readable image files")
    return [img for _, img in loaded], [str(p) for p, _ in loaded]


@torch.no_grad()  # not inference_mode: PixelModel may convert the weights here, and
# inference tensors could then never take part in a later visualisation's backward pass
def channel_scores(backbone: Backbone, images: Sequence[Image.Image], layers: Sequence[str],
                   batch_size: int = 16) -> dict[str, np.ndarray]:
    """(N, C) mean activation per image and channel for every layer, from one pass over the
    images through the standard eval preprocessing."""
    model = PixelModel(backbone)
    prep = backbone.preprocessing
    transform = prep.eval_transform()
    mean, std = torch.tensor(prep.mean).view(3, 1, 1), torch.tensor(prep.std).view(3, 1, 1)
    modules = [model.module(layer) for layer in layers]
    store: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}

    def make_hook(layer: str, last: bool):
        def hook(_module, _inputs, output):
            store[layer].append(channel_means(output).numpy())
            if last:
                raise StopForward

        return hook

    handles = [m.register_forward_hook(make_hook(layer, i == len(layers) - 1))
               for i, (layer, m) in enumerate(zip(layers, modules))]
    try:
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            batch = torch.stack([transform(img.convert("RGB")) * std + mean for img in chunk])
            try:
                model(batch)
            except StopForward:
                pass
    finally:
        for handle in handles:
            handle.remove()
    return {layer: np.concatenate(parts) for layer, parts in store.items()}


@dataclass
class LayerAtlas:
    """Per layer: the chosen channels, their visualisations and their top images."""

    layers: list[str]
    channels: dict[str, list[int]]
    visuals: dict[str, list[Image.Image]]
    top: dict[str, list[list[tuple[Image.Image, str, float]]]]

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(layers, channels per layer)."""
        return len(self.layers), max(len(c) for c in self.channels.values())

    def to_dict(self) -> dict:
        return {layer: [{"channel": c, "top": [{"name": n, "score": round(s, 4)}
                                               for _, n, s in tops]}
                        for c, tops in zip(self.channels[layer], self.top[layer])]
                for layer in self.layers}

    def render(self) -> Image.Image:
        """One picture: a row per layer; per channel its visualisation with its top images
        (best first) under it."""
        rows, cols = self.grid_shape
        cell_w, cell_h = TILE + 8, TILE + THUMB + 16
        canvas = Image.new("RGB", (LABEL_W + cols * cell_w, rows * cell_h + 4), "white")
        draw = ImageDraw.Draw(canvas)
        per_cell = TILE // THUMB
        for r, layer in enumerate(self.layers):
            y = r * cell_h + 4
            draw.text((4, y + TILE // 2 - 6), layer, fill=(0, 0, 0))
            for c, (channel, vis) in enumerate(zip(self.channels[layer], self.visuals[layer])):
                x = LABEL_W + c * cell_w
                canvas.paste(vis.resize((TILE, TILE)), (x, y))
                for t, (img, _, _) in enumerate(self.top[layer][c][:per_cell]):
                    thumb = img.convert("RGB").resize((THUMB, THUMB))
                    canvas.paste(thumb, (x + t * THUMB, y + TILE + 2))
                draw.text((x, y + TILE + THUMB + 3), f"ch {channel}", fill=(60, 60, 60))
        return canvas

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        with atomic_path(path, suffix=".png") as tmp:
            self.render().save(tmp, format="PNG")
        return path


def layer_atlas(backbone: Backbone, images: Sequence[Image.Image] | None = None,
                names: Sequence[str] | None = None, layers: Sequence[str] | None = None,
                channels_per_layer: int = 6, steps: int = 64, size: int = 96,
                input_size: int = 160, top_k: int = 3, seed: int = 0,
                show_progress: bool = True) -> LayerAtlas:
    """Visualise ``channels_per_layer`` channels of every stage (default
    ``backbone.block_names()``): the channels whose mean activation varies most across the
    images (the selective ones), each beside its ``top_k`` images."""
    if images is None:
        images, names = default_atlas_images()
    names = list(names) if names is not None else [f"#{i}" for i in range(len(images))]
    layers = list(layers or backbone.block_names())
    scores = channel_scores(backbone, images, layers)
    channels, visuals, top = {}, {}, {}
    for layer in (progress(layers, desc="layer atlas", unit="layer") if show_progress
                  else layers):
        spread = scores[layer].std(axis=0)
        picked = [int(c) for c in np.argsort(spread)[::-1][:channels_per_layer]]
        channels[layer] = picked
        visuals[layer] = visualize_channels(backbone, layer, picked, steps=steps, size=size,
                                            input_size=input_size, seed=seed,
                                            output_size=TILE, show_progress=False)
        top[layer] = []
        for c in picked:
            order = np.argsort(scores[layer][:, c])[::-1][:top_k]
            top[layer].append([(images[i], names[i], float(scores[layer][i, c]))
                               for i in order])
    return LayerAtlas(layers, channels, visuals, top)
