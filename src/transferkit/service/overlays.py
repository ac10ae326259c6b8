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
from transferkit.dense.seg_report import overlay

MAX_OVERLAY_SIDE = 1024  # longest side of a returned picture
MIN_BOX_SIDE = 320  # small images are enlarged so the box's label stays readable


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


def mask_overlay(image: Image.Image, mask: np.ndarray, n_classes: int) -> np.ndarray:
    """(H, W, 3) uint8: ``image``, at most MAX_OVERLAY_SIDE a side, tinted where ``mask``
    has a foreground class, by the overlay `segment predict` draws."""
    return np.asarray(overlay(_fitted(image), mask, n_classes))


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
    drawn = draw_boxes(shown.convert("RGB"), box, text, min_side=MIN_BOX_SIDE)
    x, y, w, h = found.box
    return {"label": str(found.label), "probability": float(found.probability),
            "box": {"x": x, "y": y, "w": w, "h": h},
            "classes": [str(c) for c in model.classes_], "overlay_png": png_base64(drawn)}
