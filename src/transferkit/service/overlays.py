"""Dense predictions for one upload, drawn for a person: the segmentation mask or the
localiser's box over the image (torchvision's drawing utilities), as base64 PNGs.

Runs on the inference thread. The numbers (fractions, box) are at the uploaded image's own
size; only the pictures are resized, so a 40-megapixel upload does not come back as a
40-megapixel PNG.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import torch
from PIL import Image

from transferkit.dense.boxes import draw_boxes, xywh_to_xyxy

MAX_OVERLAY_SIDE = 1024  # longest side of a returned picture
MIN_BOX_SIDE = 320  # small images are enlarged so the box's label stays readable
# Okabe-Ito colours (colour-blind safe), one per foreground class, background left clear.
CLASS_COLOURS = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178),
                 (213, 94, 0), (204, 121, 167)]


def png_base64(pixels: np.ndarray | torch.Tensor) -> str:
    """(H, W) or (3, H, W) uint8 pixels as base64 PNG text (for JSON)."""
    array = pixels.permute(1, 2, 0).numpy() if isinstance(pixels, torch.Tensor) else pixels
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _fitted(image: Image.Image, longest: int = MAX_OVERLAY_SIDE) -> Image.Image:
    scale = longest / max(image.size)
    if scale >= 1:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.BILINEAR)


def mask_overlay(image: Image.Image, mask: np.ndarray, n_classes: int) -> torch.Tensor:
    """(3, H, W) uint8: ``image`` with every non-background class of ``mask`` tinted."""
    from torchvision.transforms.v2 import functional as F
    from torchvision.utils import draw_segmentation_masks

    shown = _fitted(image)
    if shown.size != image.size:
        mask = np.asarray(Image.fromarray(mask).resize(shown.size, Image.Resampling.NEAREST))
    pixels = F.pil_to_tensor(shown.convert("RGB"))
    classes = torch.from_numpy(mask.astype(np.int64))
    planes = torch.stack([classes == k for k in range(1, max(n_classes, 2))])
    colours = [CLASS_COLOURS[k % len(CLASS_COLOURS)] for k in range(len(planes))]
    return draw_segmentation_masks(pixels, planes, alpha=0.5, colors=colours)


def segment_image(model: Any, image: Image.Image) -> dict[str, Any]:
    """Mask, per-class pixel fractions and overlay of ``model`` (a SegmentationModel)."""
    mask = model.predict([image])[0]
    classes = [str(c) for c in model.classes_]
    counts = np.bincount(mask.ravel(), minlength=len(classes))[:len(classes)]
    total = max(int(mask.size), 1)
    return {"classes": classes,
            "fractions": [{"label": c, "fraction": float(n) / total}
                          for c, n in zip(classes, counts)],
            "threshold": (float(model.threshold_) if getattr(model, "binary_", False)
                          else None),
            "overlay_png": png_base64(mask_overlay(image, mask, len(classes))),
            "mask_png": png_base64(mask.astype(np.uint8))}


def localize_image(model: Any, image: Image.Image) -> dict[str, Any]:
    """Class, probability, box (x, y, w, h in the image's pixels) and overlay of ``model``
    (a Localizer)."""
    found = model.predict([image])[0]
    shown = _fitted(image)
    scale = shown.width / image.width
    box = xywh_to_xyxy(torch.tensor([found.box], dtype=torch.float32)) * scale
    text = f"{found.label} {100 * found.probability:.0f}%"
    overlay = draw_boxes(shown.convert("RGB"), box, text, min_side=MIN_BOX_SIDE)
    x, y, w, h = found.box
    return {"label": str(found.label), "probability": float(found.probability),
            "box": {"x": x, "y": y, "w": w, "h": h},
            "classes": [str(c) for c in model.classes_], "overlay_png": png_base64(overlay)}
