"""Preprocessing that travels with every backbone, index and saved model.

A query embedded with a different size or normalisation than the index it searches gives
silently wrong neighbours, so this object is serialised next to every artefact.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
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

    def resize_crop(self) -> ResizeCenterCrop:
        """The PIL half of :meth:`eval_transform`: shorter side to ``resize_size``, centre crop."""
        return ResizeCenterCrop(self.resize_size, self.input_size, self.pil_interpolation)

    def eval_transform(self):
        """PIL image -> normalised CHW float tensor: resize shorter side, centre crop."""
        from torchvision import transforms as T

        return T.Compose([
            self.resize_crop(),
            T.ToTensor(),
            T.Normalize(self.mean, self.std),
        ])

    def arrays_to_pixels(self, images: np.ndarray):
        """uint8 arrays (N, H, W) or (N, H, W, 3) -> (N, 3, S, S) floats in [0, 1].

        For in-memory data sets whose images are already framed (Fashion-MNIST): resized
        straight to ``input_size`` (bilinear, antialiased), no centre crop, since cropping a
        28 px item would cut it.
        """
        import torch

        batch = torch.from_numpy(np.asarray(images)).float() / 255.0
        batch = batch.unsqueeze(1).expand(-1, 3, -1, -1) if batch.ndim == 3 \
            else batch.permute(0, 3, 1, 2)
        size = (self.input_size, self.input_size)
        return torch.nn.functional.interpolate(batch, size=size, mode="bilinear",
                                               align_corners=False, antialias=True)

    def arrays_to_batch(self, images: np.ndarray):
        """:meth:`arrays_to_pixels`, normalised: the model's input for in-memory arrays."""
        return self.normalize(self.arrays_to_pixels(images))

    def train_transform(self, augment: bool = True, hflip: bool = True):
        """PIL image -> normalised tensor for training: random resized crops (60-100% of the
        area), flips, small rotations and colour jitter; a plain square resize without
        ``augment``."""
        from torchvision import transforms as T

        size, interpolation = self.input_size, T.InterpolationMode(self.interpolation)
        if not augment:
            return T.Compose([T.Resize((size, size), interpolation=interpolation), T.ToTensor(),
                              T.Normalize(self.mean, self.std)])
        steps = [T.RandomResizedCrop(size, scale=(0.6, 1.0), interpolation=interpolation)]
        if hflip:
            steps.append(T.RandomHorizontalFlip())
        steps += [T.RandomApply([T.RandomRotation(12, interpolation=T.InterpolationMode.BILINEAR,
                                                  fill=0)], p=0.5),
                  T.ColorJitter(0.3, 0.3, 0.3, 0.02), T.ToTensor(),
                  T.Normalize(self.mean, self.std)]
        return T.Compose(steps)

    @staticmethod
    def shrink(image: Image.Image, max_side: int) -> Image.Image:
        """``image`` with its shorter side at most ``max_side`` (bicubic): what training keeps in
        memory, since its crops never need more."""
        if min(image.size) <= max_side:
            return image
        scale = max_side / min(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return image.resize(size, Image.Resampling.BICUBIC)

    def normalize(self, batch, inplace: bool = False):
        """(N, 3, H, W) floats in [0, 1] -> normalised, the arithmetic of ``eval_transform``."""
        import torch

        mean = torch.as_tensor(self.mean, dtype=batch.dtype).view(1, 3, 1, 1)
        std = torch.as_tensor(self.std, dtype=batch.dtype).view(1, 3, 1, 1)
        return batch.sub_(mean).div_(std) if inplace else (batch - mean) / std


@dataclass(frozen=True)
class ResizeCenterCrop:
    """Resize the shorter side to ``resize_size``, then centre-crop ``crop_size``.

    The geometry of torchvision's ``Resize`` + ``CenterCrop`` on a PIL image (same output size,
    crop offset and sampling positions, antialiased like Pillow), computed faster, because on a
    small machine resizing costs as much as decoding and both compete with the model for the
    same cores: bilinear and bicubic run torch's vectorised uint8 antialiased kernel (the
    Pillow-SIMD algorithm, ~2x Pillow here); other filters resample, in one Pillow call, only
    the region the crop keeps. Against Pillow's two-step result: the torch path differs by one
    grey level on ~0.2% of values; the Pillow-box path (its passes run in another order) on a
    few percent, by a few levels (~10 at most, at hard edges). Tested; see docs/speed.md.
    """

    resize_size: int
    crop_size: int
    resample: Image.Resampling = Image.Resampling.BICUBIC

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) with the shorter side at ``resize_size``, rounded as torchvision does."""
        short, long = sorted((width, height))
        new_long = int(self.resize_size * long / short)
        return (self.resize_size, new_long) if width <= height else (new_long, self.resize_size)

    def crop_offset(self, width: int, height: int) -> tuple[int, int]:
        """(left, top) of the crop in the resized image."""
        new_w, new_h = self.resized_size(width, height)
        return (int(round((new_w - self.crop_size) / 2.0)),
                int(round((new_h - self.crop_size) / 2.0)))

    def __call__(self, image: Image.Image) -> Image.Image:
        if image.mode == "RGB" and self.resample in _TORCH_MODES:
            return Image.fromarray(self.pixels(image), mode="RGB")
        self._check()
        return self._pillow_box(image)

    def pixels(self, image: Image.Image) -> np.ndarray:
        """The (crop, crop, C) uint8 array of ``self(image)``, without a round trip via PIL."""
        self._check()
        if image.mode != "RGB" or self.resample not in _TORCH_MODES:
            return np.asarray(self._pillow_box(image))
        import torch

        pixels = _rgbx_view(image)  # zero-copy; resizing 4 channels is the kernel's native case
        height, width = pixels.shape[:2]
        new_w, new_h = self.resized_size(width, height)
        left, top = self.crop_offset(width, height)
        batch = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)  # channels_last view
        if (new_w, new_h) != (width, height):
            batch = torch.nn.functional.interpolate(batch, size=(new_h, new_w),
                                                    mode=_TORCH_MODES[self.resample],
                                                    antialias=True)
        crop = batch[0, :3, top:top + self.crop_size, left:left + self.crop_size]
        # numpy makes the final copy: a torch copy could start an OpenMP team in each of the
        # decoder threads that call this.
        return np.ascontiguousarray(crop.permute(1, 2, 0).numpy())

    def _check(self) -> None:
        if self.crop_size > self.resize_size:
            raise ValueError(f"crop {self.crop_size} is larger than the resized image "
                             f"({self.resize_size})")

    def _pillow_box(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        new_w, new_h = self.resized_size(width, height)
        left, top = self.crop_offset(width, height)
        scale_x, scale_y = width / new_w, height / new_h
        box = (left * scale_x, top * scale_y, (left + self.crop_size) * scale_x,
               (top + self.crop_size) * scale_y)
        return image.resize((self.crop_size, self.crop_size), self.resample, box=box)


_TORCH_MODES = {Image.Resampling.BILINEAR: "bilinear", Image.Resampling.BICUBIC: "bicubic"}
# torch warns (once per process) that it cannot stop writes to a read-only array; the resize
# only reads its input.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable",
                        category=UserWarning, module=__name__)


def _rgbx_view(image: Image.Image) -> np.ndarray:
    """(H, W, 4) view of an RGB image's own memory (Pillow keeps RGB as RGBX), via the Arrow
    C interface; a (H, W, 3) copy when the image is not one block (very large images)."""
    try:
        import pyarrow

        flat = pyarrow.array(image).values.to_numpy(zero_copy_only=True)
        return flat.reshape(image.height, image.width, 4)
    except Exception:  # noqa: BLE001 - older Pillow, several memory blocks: copy instead
        return np.asarray(image)
