"""Adversarial examples: FGSM and PGD under an L-inf budget in [0, 1] pixel space.

The budget is in the pixels people see and save (8/255 = at most 8 grey levels per channel);
normalisation happens inside :class:`PixelModel`. The adversarial image is rounded to 8 bits
and re-scored, so what is reported is what a saved PNG does, not a float tensor that no file
can hold. The attacked image is the photo resized (not cropped) to the backbone's resize size
and only its centre crop is perturbed, so ``transferkit classify adversarial.png`` sees
exactly the pixels that were attacked.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from transferkit.backbones import Backbone, imagenet_index, imagenet_labels
from transferkit.explain._model import PixelModel
from transferkit.utils import atomic_path, atomic_write_text, progress

METHODS = ("fgsm", "pgd")


def parse_eps(value: str | float) -> float:
    """``0.03``, ``8/255`` or ``8`` (grey levels, when > 1) -> budget in [0, 1] units."""
    if isinstance(value, str):
        text = value.strip()
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    value = float(value)
    if value > 1:
        value /= 255.0
    if not 0 <= value <= 1:
        raise ValueError(f"eps must be in [0, 1] (or grey levels 0..255), got {value}")
    return value


def _crop_box(height: int, width: int, size: int) -> tuple[slice, slice]:
    """The centre crop the standard preprocessing applies after its resize."""
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return slice(top, top + size), slice(left, left + size)


def _loss(logits: torch.Tensor, label: int, targeted: bool) -> torch.Tensor:
    """The quantity to *increase*: -CE(target) when targeted, CE(true label) otherwise."""
    ce = F.cross_entropy(logits, torch.tensor([label]))
    return -ce if targeted else ce


def fgsm(model: torch.nn.Module, x: torch.Tensor, label: int, eps: float,
         targeted: bool = False) -> torch.Tensor:
    """One signed-gradient step of size ``eps`` (Goodfellow et al. 2015)."""
    x_adv = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_loss(model(x_adv), label, targeted), x_adv)
    return (x + eps * grad.sign()).clamp(0, 1).detach()


def pgd(model: torch.nn.Module, x: torch.Tensor, label: int, eps: float, steps: int = 20,
        step_size: float | None = None, targeted: bool = False, random_start: bool = True,
        seed: int = 0, show_progress: bool = False) -> torch.Tensor:
    """Projected gradient ascent inside the L-inf ball of radius ``eps`` (Madry et al. 2018)."""
    step_size = step_size if step_size is not None else max(eps / 4, 1 / 255)
    gen = torch.Generator().manual_seed(seed)
    delta = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps if random_start \
        else torch.zeros_like(x)
    x_adv = (x + delta).clamp(0, 1)
    iters = range(steps)
    for _ in (progress(iters, desc="pgd", unit="step") if show_progress else iters):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(_loss(model(x_adv), label, targeted), x_adv)
        with torch.no_grad():
            x_adv = x_adv + step_size * grad.sign()
            x_adv = (x + (x_adv - x).clamp(-eps, eps)).clamp(0, 1)
    return x_adv.detach()


def to_pil(x: torch.Tensor) -> Image.Image:
    arr = (x[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr)


def _pil_to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


@dataclass
class AttackResult:
    """What an attack did, with the pictures; ``success`` is judged on the 8-bit image."""

    method: str
    eps: float
    eps_used: float
    steps: int
    target: int | None
    original: Image.Image
    adversarial: Image.Image
    original_top1: tuple[str, float]
    adversarial_top1: tuple[str, float]
    target_probability: float | None
    success: bool

    @property
    def perturbation(self) -> Image.Image:
        """Difference image amplified to the full range (grey = unchanged)."""
        diff = (np.asarray(self.adversarial, np.float32) - np.asarray(self.original, np.float32))
        scale = max(self.eps * 255.0, 1.0)
        return Image.fromarray(np.clip(127.5 + 127.5 * diff / scale, 0, 255).astype(np.uint8))

    def to_dict(self) -> dict[str, Any]:
        labels = imagenet_labels()
        return {"method": self.method, "eps": self.eps, "eps_255": round(self.eps * 255, 2),
                "eps_used": self.eps_used, "eps_used_255": round(self.eps_used * 255, 2),
                "steps": self.steps, "targeted": self.target is not None,
                "target": None if self.target is None else labels[self.target],
                "original_top1": {"label": self.original_top1[0],
                                  "probability": self.original_top1[1]},
                "adversarial_top1": {"label": self.adversarial_top1[0],
                                     "probability": self.adversarial_top1[1]},
                "target_probability": self.target_probability, "success": self.success}

    def summary(self) -> str:
        d = self.to_dict()
        goal = f"targeted -> {d['target']}" if d["targeted"] else "untargeted"
        lines = [f"{self.method.upper()} {goal}, L-inf budget {self.eps:.4f} "
                 f"({d['eps_255']}/255), used {self.eps_used:.4f} ({d['eps_used_255']}/255)",
                 f"original top-1:    {self.original_top1[0]} ({self.original_top1[1]:.1%})",
                 f"adversarial top-1: {self.adversarial_top1[0]} "
                 f"({self.adversarial_top1[1]:.1%})  [8-bit PNG]"]
        if self.target_probability is not None:
            lines.append(f"target probability: {self.target_probability:.1%}")
        lines.append("success" if self.success else "FAILED (try a larger eps or more steps)")
        return "\n".join(lines)

    def save(self, directory: str | os.PathLike) -> Path:
        """original.png, adversarial.png, perturbation.png, summary.txt, attack.json."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, image in (("original", self.original), ("adversarial", self.adversarial),
                            ("perturbation", self.perturbation)):
            with atomic_path(directory / f"{name}.png", suffix=".png") as tmp:
                image.save(tmp, format="PNG")
        atomic_write_text(directory / "summary.txt", self.summary() + "\n")
        atomic_write_text(directory / "attack.json", json.dumps(self.to_dict(), indent=2))
        return directory


@torch.no_grad()
def _top1(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, float, torch.Tensor]:
    probs = model(x).softmax(-1)[0]
    idx = int(probs.argmax())
    return idx, float(probs[idx]), probs


def attack(backbone: Backbone, image: Image.Image | str | os.PathLike,
           target: str | int | None = None, method: str = "pgd", eps: float | str = 8 / 255,
           steps: int = 20, step_size: float | None = None, seed: int = 0,
           show_progress: bool = True) -> AttackResult:
    """Attack ``image``: towards class ``target`` if given, else away from its top-1."""
    from transferkit.data import load_image

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    eps = parse_eps(eps)
    if not isinstance(image, Image.Image):
        image = load_image(image)
    prep = backbone.preprocessing
    size = prep.resize_crop().resized_size(*image.size)  # the eval resize, before its crop
    original = image.convert("RGB").resize(size, prep.pil_interpolation)
    model = PixelModel(backbone)
    full = _pil_to_tensor(original)
    rows, cols = _crop_box(full.shape[-2], full.shape[-1], prep.input_size)
    x = full[..., rows, cols].clone()  # only what the network sees is perturbed
    labels = imagenet_labels()
    orig_idx, orig_p, _ = _top1(model, x)
    target_idx = None if target is None else (
        int(target) if isinstance(target, int) else imagenet_index(str(target)))
    label = orig_idx if target_idx is None else target_idx
    targeted = target_idx is not None
    if method == "fgsm":
        x_adv, steps = fgsm(model, x, label, eps, targeted), 1
    else:
        x_adv = pgd(model, x, label, eps, steps, step_size, targeted, seed=seed,
                    show_progress=show_progress)
    adv_full = full.clone()
    adv_full[..., rows, cols] = x_adv
    adversarial = to_pil(adv_full)  # 8 bits: still inside the budget since x is on the grid
    x_q = _pil_to_tensor(adversarial)[..., rows, cols]
    adv_idx, adv_p, probs = _top1(model, x_q)
    used = float((x_q - x).abs().max())
    success = adv_idx == target_idx if targeted else adv_idx != orig_idx
    return AttackResult(method, eps, used, steps, target_idx, original, adversarial,
                        (labels[orig_idx], orig_p), (labels[adv_idx], adv_p),
                        float(probs[target_idx]) if targeted else None, success)
