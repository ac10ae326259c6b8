"""Boxes: the metrics of single-object localisation, boxes from masks, and box overlays.

Conventions: boxes are ``x, y, w, h`` in pixels of the original image at the API edge (what
a CSV holds) and ``x1, y1, x2, y2`` inside (what ``torchvision.ops`` takes). Pixel edges, not
pixel centres: a mask filling columns 10..19 has ``x1 = 10``, ``x2 = 20`` (``w = 10``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_convert, box_iou, masks_to_boxes

from transferkit.dense.seg_report import save_figure

# Predicted vs true box colours in every overlay (Okabe-Ito orange and bluish green: they
# stay apart for colour-blind readers).
PREDICTED_COLOUR = (230, 159, 0)
TRUE_COLOUR = (0, 158, 115)


def xywh_to_xyxy(boxes: torch.Tensor | Sequence) -> torch.Tensor:
    return box_convert(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4), "xywh", "xyxy")


def xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    return box_convert(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4), "xyxy", "xywh")


def paired_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """IoU of ``boxes1[i]`` with ``boxes2[i]`` (xyxy), in chunks so N x N never gets big."""
    boxes1 = torch.as_tensor(boxes1, dtype=torch.float32).reshape(-1, 4)
    boxes2 = torch.as_tensor(boxes2, dtype=torch.float32).reshape(-1, 4)
    parts = [box_iou(boxes1[i:i + chunk], boxes2[i:i + chunk]).diagonal()
             for i in range(0, len(boxes1), chunk)]
    return torch.cat(parts) if parts else torch.zeros(0)


def box_metrics(pred_boxes: torch.Tensor, true_boxes: torch.Tensor,
                pred_labels: Sequence[str] | None = None,
                true_labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Mean box IoU, accuracy at IoU >= 0.5 and >= 0.75 and, with labels, class accuracy and
    correct localisation (class right and IoU >= 0.5). Boxes xyxy, one per image."""
    iou = paired_iou(pred_boxes, true_boxes).numpy()
    n = len(iou)
    metrics: dict[str, Any] = {"n": n}
    if n == 0:
        return metrics
    metrics.update(box_iou=float(iou.mean()), accuracy_iou50=float((iou >= 0.5).mean()),
                   accuracy_iou75=float((iou >= 0.75).mean()))
    if pred_labels is not None and true_labels is not None:
        right = np.asarray(pred_labels) == np.asarray(true_labels)
        metrics.update(class_accuracy=float(right.mean()),
                       correct_localisation=float((right & (iou >= 0.5)).mean()))
    return metrics


METRIC_NAMES = {"box_iou": "box IoU", "accuracy_iou50": "accuracy@IoU0.5",
                "accuracy_iou75": "accuracy@IoU0.75", "class_accuracy": "class accuracy",
                "correct_localisation": "correct localisation"}


def format_box_metrics(metrics: dict[str, Any]) -> str:
    """One line per metric: ``box IoU 0.812``, ``accuracy@IoU0.5 87.3%`` ..."""
    lines = []
    for key, name in METRIC_NAMES.items():
        if key in metrics:
            value = metrics[key]
            lines.append(f"{name} {value:.3f}" if key == "box_iou" else f"{name} {value:.1%}")
    lines.append(f"images {metrics.get('n', 0)}")
    return "\n".join(lines)


# -- boxes from masks -------------------------------------------------------------------------

def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (stray blobs dropped)."""
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(sizes.argmax()) + 1)


def boxes_from_masks(masks: np.ndarray | torch.Tensor | Sequence) -> torch.Tensor:
    """(N, 4) xyxy boxes (pixel edges) around the largest connected component of each
    foreground mask (N, H, W); an empty mask gives an all-zero box (IoU 0 with anything)."""
    boxes = torch.zeros(len(masks), 4)
    for i, mask in enumerate(masks):
        mask = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask) > 0
        if not mask.any():
            continue
        box = masks_to_boxes(torch.from_numpy(largest_component(mask))[None])[0]
        boxes[i] = box + torch.tensor([0.0, 0.0, 1.0, 1.0])  # last pixel index -> its far edge
    return boxes


# -- overlays ---------------------------------------------------------------------------------

def _font() -> str | None:
    """A scalable font for box labels (matplotlib ships DejaVu Sans); None: PIL's default."""
    try:
        from matplotlib import font_manager

        return font_manager.findfont("DejaVu Sans", fallback_to_default=True)
    except Exception:  # noqa: BLE001 - drawing still works with PIL's font
        return None


def draw_boxes(image, pred_box: torch.Tensor | None, pred_text: str = "",
               true_box: torch.Tensor | None = None, true_text: str = "",
               min_side: int = 320) -> torch.Tensor:
    """(3, H, W) uint8 overlay: the true box (green, labelled ``true_text`` if any) under the
    predicted one (orange, labelled ``pred_text``). Small images are enlarged to ``min_side``
    first so labels stay readable. Boxes are xyxy in ``image``'s pixels."""
    from torchvision.transforms.v2 import functional as F

    pixels = F.pil_to_tensor(image) if not isinstance(image, torch.Tensor) else image
    scale = max(1.0, min_side / min(pixels.shape[-2:]))
    if scale > 1:
        size = [round(pixels.shape[-2] * scale), round(pixels.shape[-1] * scale)]
        pixels = F.resize(pixels, size, antialias=True)
    for box, text, colour in ((true_box, true_text, TRUE_COLOUR),
                              (pred_box, pred_text, PREDICTED_COLOUR)):
        if box is not None:
            pixels = _draw_one(pixels, torch.as_tensor(box, dtype=torch.float32) * scale,
                               text, colour)
    return pixels


def _draw_one(pixels: torch.Tensor, box: torch.Tensor, text: str, colour) -> torch.Tensor:
    from torchvision.utils import draw_bounding_boxes

    side = min(pixels.shape[-2:])
    return draw_bounding_boxes(pixels, box.reshape(1, 4), labels=[text] if text else None,
                               colors=[colour], width=max(2, round(side / 128)),
                               font=_font(), font_size=max(11, round(side / 22)),
                               fill_labels=True, label_background_colors=[colour],
                               label_colors="black")


def contact_sheet(overlays: Sequence[torch.Tensor], path: str | Path, columns: int = 4,
                  cell: int = 256, title: str = "") -> Path:
    """Overlays side by side in a grid PNG (each fitted into a ``cell`` square), with a legend
    of the two box colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    columns = max(1, min(columns, len(overlays)))
    rows = max(1, -(-len(overlays) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * cell / 100, rows * cell / 100
                                                     + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, overlay in zip(axes.ravel(), overlays):
        ax.imshow(overlay.permute(1, 2, 0).numpy())
    fig.legend(handles=[Patch(color=np.array(PREDICTED_COLOUR) / 255, label="predicted"),
                        Patch(color=np.array(TRUE_COLOUR) / 255, label="true")],
               loc="upper center", ncol=2, frameon=False)
    if title:
        fig.suptitle(title, y=0.01, va="bottom", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.04, top=1 - 0.5 / fig.get_figheight(),
                        wspace=0.03, hspace=0.03)
    return save_figure(fig, path, dpi=100)
