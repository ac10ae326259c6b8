"""Pictures and files that show what a segmentation model does: overlays, a contact sheet of
predictions next to the ground truth, training curves, a confusion matrix, metrics JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from transferkit.dense.data import IGNORE_INDEX
from transferkit.utils import atomic_path, atomic_write_text

# Foreground classes get these colours in turn: saturated magenta first (rare in photos, so a
# binary mask stands out on orange, green or blue objects alike), then Okabe-Ito colours.
PALETTE = ["#FF00CC", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#E69F00",
           "#999999"]


def overlay(image: Image.Image, mask: np.ndarray, n_classes: int = 2,
            alpha: float = 0.5) -> Image.Image:
    """``image`` with each foreground class of ``mask`` tinted (background and 255 left
    alone), drawn by ``torchvision.utils.draw_segmentation_masks``."""
    from torchvision.utils import draw_segmentation_masks

    pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()
    mask_t = torch.from_numpy(np.array(mask))
    if mask_t.shape != pixels.shape[-2:]:
        mask_t = torch.from_numpy(np.asarray(Image.fromarray(np.asarray(mask, np.uint8))
                                             .resize(image.size, Image.Resampling.NEAREST)))
    classes = list(range(1, max(n_classes, 2)))
    planes = torch.stack([mask_t == c for c in classes])
    colours = [PALETTE[(c - 1) % len(PALETTE)] for c in classes]
    drawn = draw_segmentation_masks(pixels, planes, alpha=alpha, colors=colours)
    return Image.fromarray(drawn.permute(1, 2, 0).numpy())


def save_mask_png(mask: np.ndarray, path: str | os.PathLike, binary: bool) -> Path:
    """A mask PNG in the input format: class indices, or 0/255 for a binary model."""
    values = np.asarray(mask, np.uint8)
    if binary:
        values = np.where(values == 1, 255, 0).astype(np.uint8)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(values).save(tmp, format="PNG")
    return path


def contact_sheet(images: Sequence[Image.Image], truths: Sequence[np.ndarray],
                  predictions: Sequence[np.ndarray], path: str | os.PathLike, *,
                  n_classes: int = 2, titles: Sequence[str] | None = None,
                  columns: int = 4, title: str = "") -> Path:
    """Pairs of tiles (ground truth | prediction overlays), ``columns`` pairs per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    columns = max(1, min(columns, n))
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(2.0 * 2 * columns, 2.25 * rows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (image, truth, pred) in enumerate(zip(images, truths, predictions)):
        r, c = divmod(i, columns)
        shown_truth = np.where(np.asarray(truth) == IGNORE_INDEX, 0, truth)
        axes[r, 2 * c].imshow(overlay(image, shown_truth, n_classes))
        axes[r, 2 * c].set_title("truth", fontsize=8)
        axes[r, 2 * c + 1].imshow(overlay(image, pred, n_classes))
        label = titles[i] if titles is not None else "prediction"
        axes[r, 2 * c + 1].set_title(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_training_curve(history: Sequence[dict[str, Any]], path: str | os.PathLike,
                        score_name: str = "val foreground IoU") -> Path:
    """Training and validation loss, and the validation score, per epoch (phases marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    steps = np.arange(1, len(history) + 1)
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax_loss.plot(steps, [h["train_loss"] for h in history], label="train loss")
    ax_loss.plot(steps, [h["val_loss"] for h in history], label="val loss")
    ax_loss.set_yscale("log")  # the first epochs' validation loss (fresh BatchNorm) is large
    ax_score.plot(steps, [h["val_score"] for h in history], color="C2",
                  label=score_name)
    phases = [h["phase"] for h in history]
    for i in range(1, len(phases)):
        if phases[i] != phases[i - 1]:
            for ax in (ax_loss, ax_score):
                ax.axvline(i + 0.5, color="grey", linestyle="--", linewidth=1)
            ax_score.text(i + 0.6, ax_score.get_ylim()[0], phases[i], fontsize=8,
                          color="grey", va="bottom")
    for ax, name in ((ax_loss, "loss"), (ax_score, "score")):
        ax.set_xlabel("epoch (all phases)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("segmentation training", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str],
                   path: str | os.PathLike) -> Path:
    """Row-normalised confusion matrix (true class rows, predicted columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion, dtype=float)
    rates = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    size = max(3.6, 1.2 + 0.5 * len(classes))
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    shown = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(rates):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="white" if value > 0.5 else "black")
    fig.colorbar(shown, ax=ax, fraction=0.046)
    ax.set_title("pixels (row-normalised)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write a matplotlib figure as PNG through a temporary name (a kill leaves no half
    picture) and close it; every dense report picture goes through here."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path


def write_report(model: Any, metrics: dict[str, Any], images: Sequence[Image.Image],
                 truths: Sequence[np.ndarray], predictions: Sequence[np.ndarray],
                 out: str | os.PathLike, *, split: str = "test", n_sheet: int = 16) -> Path:
    """``out/metrics.json``, ``per_class_iou.md``, ``contact_sheet.png`` (the first
    ``n_sheet`` images), ``training_curve.png`` and ``confusion.png`` for ``model``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps({"split": split, **metrics}, indent=2))
    lines = ["| class | IoU |", "|---|---|"]
    lines += [f"| {name} | {'-' if v is None else f'{v:.3f}'} |"
              for name, v in metrics["per_class_iou"].items()]
    atomic_write_text(out / "per_class_iou.md", "\n".join(lines) + "\n")
    shown = min(n_sheet, len(images))
    titles = [f"IoU {v:.2f}" for v in metrics["per_image_foreground_iou"][:shown]]
    contact_sheet(images[:shown], truths[:shown], predictions[:shown], out / "contact_sheet.png",
                  n_classes=len(model.classes_), titles=titles,
                  title=f"{split}: foreground IoU {metrics['foreground_iou']:.3f} "
                        f"({model.unpool} un-pooling)")
    if getattr(model, "history_", None):
        plot_training_curve(model.history_, out / "training_curve.png",
                            "val foreground IoU" if model.binary_ else "val mIoU")
    plot_confusion(metrics["confusion"], model.classes_, out / "confusion.png")
    return out
