"""`transferkit localize ...`: train, predict, evaluate and export single-object localisers
(one class + one box per image) from a CSV ``path,label,x,y,w,h`` or a COCO JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import typer

from transferkit.cli._common import (
    MAX_PIXELS,
    console,
    err_console,
    friendly_errors,
    report_failures,
    write_and_report_failures,
)

localize_app = typer.Typer(no_args_is_help=True, help="Object classification + localisation: "
                           "one class and one box per image.")
BOXES_HELP = ("CSV path,label,x,y,w,h (pixels; paths relative to the CSV's folder) or COCO "
              "JSON (several objects on an image: the largest one).")


def register(app: typer.Typer) -> None:
    app.add_typer(localize_app, name="localize")


def _load_boxes(path: Path, max_pixels: int, what: str = "training"):
    from transferkit.dense.data import load_boxes

    data = load_boxes(path, max_pixels=max_pixels)
    if not data.samples:
        report_failures(data.failures, what="bad row or image")
        raise ValueError(f"{path}: no usable {what} boxes")
    return data


@localize_app.command("train")
@friendly_errors
def train(
    boxes: Path = typer.Argument(..., help=BOXES_HELP),
    output: Path = typer.Option(Path("out/localizer"), "--output", "-o",
                                help="Model directory (its report goes in OUTPUT/report)."),
    val: Path | None = typer.Option(None, "--val", help="Validation boxes for early stopping "
                                    "(default: --val-fraction of BOXES held out)."),
    test: Path | None = typer.Option(None, "--test", help="Test boxes: the report is on them "
                                     "(default: the validation images)."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-b"),
    image_size: int | None = typer.Option(None, help="Square input size (default: the "
                                          "backbone's); the whole image is resized, no crop."),
    head: str = typer.Option("grid", help="grid (a box and a centre score per stride-16 "
                             "cell, soft-argmax) or flat (the maps flattened into an MLP)."),
    epochs: int = typer.Option(60, min=1),
    lr: float = typer.Option(2e-3),
    batch_size: int = typer.Option(32, min=2),
    patience: int = typer.Option(12, min=1, help="Early stopping: epochs without a better "
                                 "validation score."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Cache a mirrored and "
                                 "randomly shifted/scaled/recoloured copy of each training image "
                                 "(boxes move with it)."),
    augment_views: int = typer.Option(4, min=1, help="Views per training image with --augment "
                                      "(original, mirror, random ones)."),
    fine_tune_blocks: int = typer.Option(0, min=0, help="After the head: train the top N "
                                         "blocks of the backbone with it (slower)."),
    fine_tune_epochs: int = typer.Option(8, min=1, help="Epochs of that phase."),
    val_fraction: float = typer.Option(0.15, help="Held-out share of BOXES without --val."),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(False, "--resume/--no-resume", help="Continue from "
                                "OUTPUT.ckpt after an interruption."),
    stop_after_epochs: int | None = typer.Option(None, help="Stop (resumably) after N epochs."),
    keep_checkpoint: bool = typer.Option(False, help="Keep OUTPUT.ckpt after saving."),
    max_pixels: int = MAX_PIXELS,
) -> None:
    """Train a class + box head on a frozen backbone; saves the model and a report."""
    from transferkit.dense.boxes import format_box_metrics
    from transferkit.dense.localize import Localizer
    from transferkit.errors import TrainingInterrupted

    data = _load_boxes(boxes, max_pixels)
    val_data = _load_boxes(val, max_pixels, "validation") if val else None
    test_data = _load_boxes(test, max_pixels, "test") if test else None
    checkpoint = output.with_name(output.name + ".ckpt")
    model = Localizer(backbone, image_size=image_size, head=head, epochs=epochs, lr=lr,
                      batch_size=batch_size, patience=patience, augment=augment,
                      augment_views=augment_views, val_fraction=val_fraction, seed=seed,
                      fine_tune_blocks=fine_tune_blocks, fine_tune_epochs=fine_tune_epochs,
                      checkpoint=checkpoint, resume=resume, stop_after_epochs=stop_after_epochs,
                      max_pixels=max_pixels)
    try:
        model.fit(data, val_data)
    except TrainingInterrupted as exc:
        err_console.print(f"[yellow]{exc}[/yellow]", highlight=False)
        raise typer.Exit(3) from None
    model.save(output)
    if not keep_checkpoint and checkpoint.exists():
        shutil.rmtree(checkpoint)
    report_on = test_data or model.val_data_
    failures = list(data.failures) + [f for part in (val_data, test_data) if part
                                      for f in part.failures] + list(model.failures_)
    last = model.history_[-1] if model.history_ else {}
    console.print(f"[bold]localizer[/bold] on {model.backbone_.name} at {model._size} px: "
                  f"{len(model.classes_)} classes, {model.n_train_} training images, best epoch "
                  f"{model.best_epoch_} of {last.get('epoch', 0)}", highlight=False)
    if report_on.samples:
        metrics = model.evaluate(report_on, report=output / "report")
        where = "test" if test_data else "validation"
        console.print(f"{where} ({metrics['n']} images):", highlight=False)
        console.print(format_box_metrics(metrics), highlight=False, markup=False)
    console.print(f"model saved to {output}" + (f" (report in {output / 'report'})"
                                                  if report_on.samples else ""),
                  highlight=False)
    write_and_report_failures(output, failures, what="bad row or image")


@localize_app.command("predict")
@friendly_errors
def predict(
    model_dir: Path = typer.Argument(..., help="Model directory written by `localize train`."),
    images: list[Path] = typer.Argument(..., help="Image files or folders."),
    output: Path = typer.Option(Path("out/localize"), "--output", "-o",
                                help="Folder for one overlay PNG per image and boxes.csv."),
    as_json: bool = typer.Option(False, "--json", help="Print the predictions as JSON."),
    max_pixels: int = MAX_PIXELS,
) -> None:
    """Class, probability and box (x, y, w, h in pixels) per image: an overlay PNG each,
    boxes.csv and predictions.json in OUTPUT."""
    import csv

    from transferkit.data import load_image, scan_images
    from transferkit.dense.boxes import draw_boxes, xywh_to_xyxy
    from transferkit.dense.localize import Localizer
    from transferkit.utils import atomic_write_text

    model = Localizer.load(model_dir)
    model.max_pixels = max_pixels
    scan = scan_images(images)
    done, failures = model.predict_paths(scan.images)
    output.mkdir(parents=True, exist_ok=True)
    rows = []
    for number, (path, result) in enumerate(done):
        overlay = draw_boxes(load_image(path, max_pixels=max_pixels),
                             xywh_to_xyxy(result.box)[0],
                             f"{result.label} {result.probability:.0%}")
        name = f"{number:05d}_{path.stem}.png"
        _save_png(overlay, output / name)
        rows.append({"path": str(path), "label": result.label,
                     "probability": round(result.probability, 4),
                     "box": [round(v, 1) for v in result.box], "overlay": name})
    lines = ["path,label,probability,x,y,w,h,overlay"]
    for row in rows:
        cells = [row["path"], row["label"], f"{row['probability']:.4f}",
                 *(f"{v:.1f}" for v in row["box"]), row["overlay"]]
        lines.append(_csv_line(cells, csv))
    atomic_write_text(output / "boxes.csv", "\n".join(lines) + "\n")
    document = json.dumps({"box_format": "x, y, w, h in pixels of the image", "results": rows,
                           "failures": [{"path": str(p), "reason": r} for p, r in failures]},
                          indent=2)
    atomic_write_text(output / "predictions.json", document + "\n")
    if as_json:
        print(document)
    else:
        for row in rows:
            x, y, w, h = row["box"]
            console.print(f"{row['path']}: {row['label']} {row['probability']:.1%}  box x={x:g} "
                          f"y={y:g} w={w:g} h={h:g}", highlight=False, markup=False)
        console.print(f"{len(rows)} overlays and boxes.csv in {output}", highlight=False)
    report_failures(failures, scan.ignored)
    if not rows:
        raise typer.Exit(1)


def _csv_line(cells: list[str], csv) -> str:
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue()


def _save_png(pixels, path: Path) -> None:
    from torchvision.transforms.v2 import functional as F

    from transferkit.utils import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        F.to_pil_image(pixels).save(tmp, format="PNG")


@localize_app.command("evaluate")
@friendly_errors
def evaluate(
    model_dir: Path = typer.Argument(..., help="Model directory written by `localize train`."),
    boxes: Path = typer.Argument(..., help=BOXES_HELP),
    output: Path = typer.Option(Path("out/localize-report"), "--output", "-o",
                                help="Report folder: metrics.json, predictions.csv, "
                                     "overlays.png, training_curve.png."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    max_pixels: int = MAX_PIXELS,
) -> None:
    """Box IoU, accuracy at IoU 0.5 / 0.75, class accuracy, correct localisation."""
    from transferkit.dense.boxes import format_box_metrics
    from transferkit.dense.localize import Localizer

    model = Localizer.load(model_dir)
    model.max_pixels = max_pixels
    data = _load_boxes(boxes, max_pixels, "evaluation")
    metrics = model.evaluate(data, report=output)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        console.print(format_box_metrics(metrics), highlight=False, markup=False)
        console.print(f"report written to {output}", highlight=False)
    write_and_report_failures(output, [(f["path"], f["reason"]) for f in metrics["failures"]],
                              what="bad row or image")


@localize_app.command("export")
@friendly_errors
def export(
    model_dir: Path = typer.Argument(..., help="Model directory written by `localize train`."),
    output: Path = typer.Option(..., "--output", "-o", help="ONNX file to write."),
) -> None:
    """One ONNX file: normalised pixels -> class probabilities and a box (xyxy in 0..1)."""
    from transferkit.dense.localize import Localizer

    path = Localizer.load(model_dir).export_onnx(output)
    console.print(f"ONNX localizer written to {path}", highlight=False)
