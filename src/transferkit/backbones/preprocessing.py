"""Preprocessing that travels with every backbone, index and saved model.

A query embedded with a different size or normalisation than the index it searches gives
silently wrong neighbours, so this object is serialised next to every artefact.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from PIL import Image

_PIL_INTERPOLATION = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class Preprocessing:
    input_size: int = 224
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        if self.interpolation not in _PIL_INTERPOLATION:
            raise ValueError(f"interpolation must be one of {sorted(_PIL_INTERPOLATION)}, "
                             f"got {self.interpolation!r}")
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def resize_size(self) -> int:
        """Shorter side before the centre crop (timm's convention)."""
        return int(math.floor(self.input_size / self.crop_pct))

    def with_size(self, input_size: int, crop_pct: float | None = None) -> Preprocessing:
        """Same normalisation at another resolution (e.g. 28 px Fashion-MNIST run at 96 px)."""
        return replace(self, input_size=int(input_size),
                       crop_pct=self.crop_pct if crop_pct is None else crop_pct)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        known = {k: data[k] for k in ("input_size", "interpolation", "crop_pct", "mean", "std")
                 if k in data}
        return cls(**known)

    @classmethod
    def from_timm_config(cls, cfg: dict[str, Any]) -> Preprocessing:
        size = cfg.get("input_size", (3, 224, 224))
        return cls(input_size=int(size[-1]), interpolation=cfg.get("interpolation", "bicubic"),
                   crop_pct=float(cfg.get("crop_pct", 0.875)), mean=tuple(cfg["mean"]),
                   std=tuple(cfg["std"]))

    @property
    def pil_interpolation(self) -> Image.Resampling:
        return _PIL_INTERPOLATION[self.interpolation]

    def eval_transform(self):
        """PIL image -> normalised CHW float tensor: resize shorter side, centre crop."""
        from torchvision import transforms as T

        return T.Compose([
            T.Resize(self.resize_size, interpolation=_torchvision_mode(self.interpolation)),
            T.CenterCrop(self.input_size),
            T.ToTensor(),
            T.Normalize(self.mean, self.std),
        ])

    def normalize(self, batch, inplace: bool = False):
        """(N, 3, H, W) floats in [0, 1] -> normalised, the arithmetic of ``eval_transform``."""
        import torch

        mean = torch.as_tensor(self.mean, dtype=batch.dtype).view(1, 3, 1, 1)
        std = torch.as_tensor(self.std, dtype=batch.dtype).view(1, 3, 1, 1)
        return batch.sub_(mean).div_(std) if inplace else (batch - mean) / std

    def normalize_transform(self):
        """For tensors already in [0, 1] at the right size (attacks, visualisation)."""
        from torchvision import transforms as T

        return T.Normalize(self.mean, self.std)


def _torchvision_mode(name: str):
    from torchvision.transforms import InterpolationMode

    return {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR,
            "bicubic": InterpolationMode.BICUBIC, "lanczos": InterpolationMode.LANCZOS}[name]
