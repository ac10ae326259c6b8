"""Activation maximisation: the image a network "wants" to see for a class, layer or unit.

Plain pixel optimisation gives high-frequency noise. Following Olah et al. (Distill, 2017) the
image is parameterised in a decorrelated space (a scaled Fourier spectrum per decorrelated
colour channel), each step sees a randomly jittered/scaled/rotated copy, and total variation
is penalised, so what survives are features robust enough to be seen by people too.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from transferkit.backbones import Backbone, imagenet_index, imagenet_labels
from transferkit.explain._model import PixelModel, StopForward, centre_value, channels_first
from transferkit.utils import progress

# Square root of the ImageNet RGB covariance (rows: R, G, B), the colour decorrelation used by
# Olah et al.; optimising in this basis stops one colour channel from dominating.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR_SQRT = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


@dataclass(frozen=True)
class Target:
    """What to maximise: ``kind`` in {class, layer, channel, neuron}."""

    kind: str
    layer: str | None = None
    index: int | None = None

    def describe(self) -> str:
        if self.kind == "class":
            return f"class {self.index} ({imagenet_labels()[self.index]})"
        if self.kind == "layer":
            return f"layer {self.layer}"
        return f"{self.kind} {self.index} of {self.layer}"


def parse_target(spec: str) -> Target:
    """``class:tabby`` | ``class:281`` | ``layer:blocks.4`` | ``channel:blocks.4:12`` |
    ``neuron:blocks.4:12`` (centre position of channel 12). A bare word means a class."""
    parts = spec.split(":")
    kind = parts[0].lower() if len(parts) > 1 else "class"
    if kind == "class":
        return Target("class", index=imagenet_index(parts[-1]))
    if kind == "layer" and len(parts) == 2:
        return Target("layer", layer=parts[1])
    if kind in ("channel", "neuron") and len(parts) == 3 and parts[2].isdigit():
        return Target(kind, layer=parts[1], index=int(parts[2]))
    raise ValueError(f"target {spec!r}: expected class:NAME, layer:LAYER, channel:LAYER:C "
                     f"or neuron:LAYER:C")


class FourierImage(torch.nn.Module):
    """Image = sigmoid(colour_decorrelate(irfft2(spectrum / frequency))).

    Dividing the spectrum by frequency makes every frequency equally easy to change, so the
    optimiser is not biased towards the high frequencies that pixel gradients favour.
    """

    def __init__(self, size: int, batch: int = 1, std: float = 0.01, decay: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.size = size
        fy = torch.fft.fftfreq(size)[:, None]
        fx = torch.fft.rfftfreq(size)[None, :]
        freq = torch.sqrt(fx * fx + fy * fy).clamp_min(1.0 / size)
        # with the orthonormal inverse FFT this gives pixel std ~ std * sum(1/f) / size
        self.register_buffer("scale", 1.0 / freq ** decay)
        shape = (batch, 3, size, size // 2 + 1, 2)
        self.spectrum = torch.nn.Parameter(torch.randn(shape, generator=generator) * std)

    def forward(self) -> torch.Tensor:
        spec = torch.view_as_complex(self.spectrum) * self.scale
        img = torch.fft.irfft2(spec, s=(self.size, self.size), norm="ortho") / 4.0
        img = torch.einsum("bchw,rc->brhw", img, _COLOR_SQRT.to(img))
        return torch.sigmoid(img)


def random_view(img: torch.Tensor, out_size: int, gen: torch.Generator, jitter: float = 0.06,
                scale: tuple[float, float] = (0.85, 1.15), degrees: float = 10.0) -> torch.Tensor:
    """One random jitter + scale + rotation of ``img`` (a single affine resample)."""
    n = img.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(degrees)
    zoom = scale[0] + torch.rand(n, generator=gen) * (scale[1] - scale[0])
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * jitter * 2
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1).to(img)
    grid = F.affine_grid(theta, (n, 3, out_size, out_size), align_corners=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def total_variation(img: torch.Tensor) -> torch.Tensor:
    return ((img[..., 1:, :] - img[..., :-1, :]).abs().mean()
            + (img[..., :, 1:] - img[..., :, :-1]).abs().mean())


@dataclass
class Visualization:
    """Result of :func:`visualize`: the image plus how it scores on the network."""

    image: Image.Image
    target: Target
    objective: list[float] = field(default_factory=list)
    top5: list[tuple[str, float]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"target: {self.target.describe()}",
                 f"objective: {self.objective[0]:.3f} -> {self.objective[-1]:.3f} "
                 f"over {len(self.objective)} steps",
                 "network sees (re-classified from the saved 8-bit image):"]
        lines += [f"  {p:6.1%}  {name}" for name, p in self.top5]
        return "\n".join(lines)

    def save(self, path: str | os.PathLike) -> Path:
        """The image as PNG at ``path`` and the summary beside it (same name, ``.txt``)."""
        from transferkit.utils import atomic_path, atomic_write_text

        path = Path(path)
        with atomic_path(path, suffix=".png") as tmp:
            self.image.save(tmp, format="PNG")
        atomic_write_text(path.with_suffix(".txt"), self.summary() + "\n")
        return path

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target.describe(), "steps": len(self.objective),
                "objective_start": self.objective[0], "objective_end": self.objective[-1],
                "top5": [{"label": n, "probability": p} for n, p in self.top5]}


def _objective(model: PixelModel, target: Target, views: torch.Tensor,
               store: dict[str, torch.Tensor] | None) -> torch.Tensor:
    logits = _forward(model, views)
    if target.kind == "class":
        # the logit, plus a little log-softmax so rival classes are pushed down too
        return (logits[:, target.index] + 0.5 * logits.log_softmax(-1)[:, target.index]).mean()
    act = channels_first(store["out"])
    if target.kind == "layer":
        return act.pow(2).mean()
    if target.index >= act.shape[1]:
        raise ValueError(f"{target.layer} has {act.shape[1]} channels; got index {target.index}")
    channel = act[:, target.index]
    if target.kind == "channel":
        return channel.mean()
    return centre_value(channel).mean()


# The settings before issue 18 (kept so benchmarks/bench_explain.py can show before/after):
# lr 0.4 drove the pre-sigmoid values far past +-4 within a few dozen steps, so a third of the
# pixels ended at 0 or 255 and the image looked like static.
OLD_DEFAULTS: dict[str, Any] = {"steps": 64, "size": 128, "lr": 0.4, "tv_weight": 0.05,
                                "jitter": 0.06, "scale": (0.9, 1.1), "degrees": 10.0}


def visualize(backbone: Backbone, target: Target | str, steps: int = 256, size: int = 128,
              input_size: int | None = None, views: int = 1, lr: float = 0.05,
              tv_weight: float = 0.1, seed: int = 0, output_size: int | None = None,
              show_progress: bool = True, decay: float = 1.0, l2_weight: float = 0.0,
              jitter: float = 0.1, scale: tuple[float, float] = (0.8, 1.2),
              degrees: float = 15.0) -> Visualization:
    """Optimise an image to maximise ``target``; return it at ``output_size`` px (default the
    backbone's resize size, so the standard centre crop sees what was optimised).

    ``size`` is the resolution of the parameterisation (128 px, upsampled to what the network
    sees: fine noise cannot be represented, so it cannot blow up), ``input_size`` what the
    network sees each step (default its native size: features are not scale invariant).
    ``lr`` 0.05 is Lucid's Adam step on the 1/f-scaled spectrum; much larger steps saturate
    the sigmoid. Each step sees one random jitter (``jitter`` of the width), zoom (``scale``
    around the centre-crop zoom) and rotation (``degrees``): the wider these are, the larger
    and more coherent the structures that survive (±20 % zoom and ±15° give whole patches of
    fur where ±10 % and ±10° gave scattered tufts); ``views`` such copies are averaged
    per step (more robust, slower). ``tv_weight`` / ``l2_weight`` penalise total variation and
    distance from grey; ``decay`` > 1 favours low frequencies further.
    """
    target = parse_target(target) if isinstance(target, str) else target
    model = PixelModel(backbone)
    gen = torch.Generator().manual_seed(seed)
    param = FourierImage(size, decay=decay, generator=gen)
    with contextlib.ExitStack() as stack:
        store = None if target.kind == "class" else stack.enter_context(
            model.capture(target.layer, stop=True))

        def objective(batch: torch.Tensor) -> torch.Tensor:
            return _objective(model, target, batch, store)

        history = _optimise(backbone, param, objective, steps, views, input_size, lr,
                            tv_weight, l2_weight, gen, jitter, scale, degrees,
                            f"visualise {target.describe()}" if show_progress else None)
    image = _to_images(param, output_size or backbone.preprocessing.resize_size)[0]
    return Visualization(image, target, history, classify_image(backbone, image))


def visualize_channels(backbone: Backbone, layer: str, channels: list[int], steps: int = 96,
                       size: int = 96, input_size: int = 160, lr: float = 0.05,
                       tv_weight: float = 0.1, seed: int = 0, output_size: int = 128,
                       show_progress: bool = True) -> list[Image.Image]:
    """One image per channel of ``layer``, optimised together as one batch (one forward pass
    per step for all of them): the fast path for a layer atlas."""
    model = PixelModel(backbone)
    gen = torch.Generator().manual_seed(seed)
    param = FourierImage(size, batch=len(channels), generator=gen)
    picks = torch.tensor(channels)
    with model.capture(layer, stop=True) as store:

        def objective(batch: torch.Tensor) -> torch.Tensor:
            _forward(model, batch)
            act = channels_first(store["out"])
            if int(picks.max()) >= act.shape[1]:
                raise ValueError(f"{layer} has {act.shape[1]} channels; got {channels}")
            chosen = act[torch.arange(len(channels)), picks]  # item b maximises channel b
            return chosen.flatten(1).mean(1).sum()

        _optimise(backbone, param, objective, steps, 1, input_size, lr, tv_weight, 0.0, gen,
                  0.06, (0.9, 1.1), 10.0,
                  f"visualise {layer} x{len(channels)}" if show_progress else None)
    return _to_images(param, output_size)


def _forward(model: PixelModel, batch: torch.Tensor) -> torch.Tensor | None:
    """Run ``model``; a ``capture(stop=True)`` hook ends the pass early (None returned)."""
    try:
        return model(batch)
    except StopForward:
        return None


def _optimise(backbone: Backbone, param: FourierImage, objective, steps: int, views: int,
              input_size: int | None, lr: float, tv_weight: float, l2_weight: float,
              gen: torch.Generator, jitter: float, scale: tuple[float, float], degrees: float,
              desc: str | None) -> list[float]:
    """Adam on the spectrum to maximise ``objective(random views)``; the objective history."""
    net_size = input_size or backbone.preprocessing.input_size
    crop = backbone.preprocessing.crop_pct
    zoom = (scale[0] / crop, scale[1] / crop)  # around the zoom the standard centre crop applies
    opt = torch.optim.Adam(param.parameters(), lr=lr)
    history: list[float] = []
    steps_iter = range(steps) if desc is None else progress(range(steps), desc=desc,
                                                            unit="step")
    for _ in steps_iter:
        img = param()
        batch = random_view(img.repeat_interleave(views, 0), net_size, gen, jitter=jitter,
                            scale=zoom, degrees=degrees)
        value = objective(batch)
        loss = -value + tv_weight * total_variation(img) * param.size
        if l2_weight:
            loss = loss + l2_weight * (img - 0.5).pow(2).mean()
        # gradients for the image only: the backbone's weights stay untouched
        (param.spectrum.grad,) = torch.autograd.grad(loss, [param.spectrum])
        opt.step()
        history.append(float(value.detach()))
    return history


@torch.no_grad()
def _to_images(param: FourierImage, size: int) -> list[Image.Image]:
    out = F.interpolate(param(), size=(size, size), mode="bicubic", align_corners=False)
    pixels = (out.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(p) for p in pixels]


def saturated_fraction(image: Image.Image) -> float:
    """Share of pixels with a channel at <= 3 or >= 252: blown-out highlights and shadows."""
    pixels = np.asarray(image.convert("RGB"))
    return float(((pixels <= 3) | (pixels >= 252)).any(-1).mean())


def neighbour_difference(image: Image.Image) -> float:
    """Mean absolute difference to the right neighbour plus that to the one below (grey
    levels): ~12-20 for photos at 256 px, far more for static."""
    pixels = np.asarray(image.convert("RGB"), np.float32)
    return float(np.abs(np.diff(pixels, axis=0)).mean() + np.abs(np.diff(pixels, axis=1)).mean())


@torch.no_grad()
def classify_image(backbone: Backbone, image: Image.Image, k: int = 5) -> list[tuple[str, float]]:
    """Top-k ImageNet labels with the backbone's standard preprocessing."""
    from transferkit.features import preprocess_images

    labels = imagenet_labels()
    pairs = backbone.predict_topk(preprocess_images([image], backbone), k)[0]
    return [(labels[i], p) for i, p in pairs]
