"""`transferkit segment ...`: train, predict, evaluate and export per-pixel segmentation
models on folders of images with masks (``DATA/images/*`` + ``DATA/masks/<stem>.png``)."""

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

segment_app = typer.Typer(no_args_is_help=True, help="Semantic segmentation: a class for every "
                          "pixel (pretrained encoder + U-Net decoder).")
DATA_HELP = ("Folder with images/ and masks/ (same file stems; mask pixel = class index, 255 = "
             "ignore; classes.txt line 0 = background, else masks 0/255 or 0/1), or a folder "
             "holding train/ [val/] [test/] folders of that layout.")


def register(app: typer.Typer) -> None:
    app.add_typer(segment_app, name="segment")


def _load(folder: Path, binary: bool, max_pixels: int, what: str):
    from transferkit.dense import load_segmentation_folder

    data = load_segmentation_folder(folder, binary=binary, max_pixels=max_pixels)
    if not data.samples:
        report_failures(data.failures, what="bad image or mask")
        raise ValueError(f"{folder}: no usable {what} image+mask pairs")
    return data


def _splits(data: Path, val: Path | None, test: Path | None) -> tuple[Path, Path | None,
                                                                       Path | None]:
    """DATA itself, or DATA/train with DATA/val and DATA/test when those exist."""
    if not data.exists():
        raise FileNotFoundError(f"{data}: no such folder")
    if (data / "train").is_dir() and not (data / "images").is_dir():
        val = val or ((data / "val") if (data / "val").is_dir() else None)
        test = test or ((data / "test") if (data / "test").is_dir() else None)
        data = data / "train"
    return data, val, test


def _fine_tune_blocks(value: str) -> int | str:
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--fine-tune-blocks expects a number of top blocks or 'all', got "
                         f"{value!r}") from None


@segment_app.command("train")
@friendly_errors
def train(
    data: Path = typer.Argument(..., help=DATA_HELP),
    output: Path = typer.Option(Path("out/segmenter"), "--output", "-o",
                                help="Model directory (its report goes in OUTPUT/report)."),
    val: Path | None = typer.Option(None, "--val", help="Validation folder for early stopping "
                                    "and the threshold (default: DATA/val, else "
                                    "--val-fraction of DATA)."),
    test: Path | None = typer.Option(None, "--test", help="Test folder: the report is on it "
                                     "(default: DATA/test, else the validation images)."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-b"),
    unpool: str = typer.Option("nearest", "--unpool", help="Decoder un-pooling: nearest, "
                               "transposed or maxunpool (indices from the skip map)."),
    image_size: int = typer.Option(128, help="Square input size, a multiple of 32 (images "
                                   "and masks are resized; predictions come back at each "
                                   "image's own size)."),
    epochs: int = typer.Option(20, min=1, help="Epochs with the encoder frozen."),
    lr: float = typer.Option(1e-3),
    batch_size: int = typer.Option(16, min=2),
    patience: int = typer.Option(6, min=1, help="Early stopping: epochs without a better "
                                 "validation foreground IoU."),
    fine_tune_blocks: str = typer.Option("0", help="Then fine-tune the top N blocks of the "
                                         "encoder (or 'all') with a smaller learning rate."),
    fine_tune_epochs: int = typer.Option(8, min=1),
    fine_tune_lr_factor: float = typer.Option(0.1),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Mirrored copies "
                                 "(cached) or random crops/flips/colour (whole encoder "
                                 "trained); masks move with the images."),
    binary: bool = typer.Option(False, "--binary", help="Foreground vs background even when "
                                "classes.txt names several classes."),
    pretrained: bool = typer.Option(True, "--pretrained/--random-init"),
    val_fraction: float = typer.Option(0.2, help="Held-out share of DATA without a val set."),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(False, "--resume/--no-resume", help="Continue from "
                                "OUTPUT.ckpt after an interruption."),
    stop_after_epochs: int | None = typer.Option(None, help="Stop (resumably) after N epochs."),
    keep_checkpoint: bool = typer.Option(False, help="Keep OUTPUT.ckpt after saving."),
    keep_largest: str = typer.Option("auto", "--keep-largest", help="Binary models: keep only "
                                     "the largest foreground blob of each mask (one object "
                                     "per image): auto (when it helps on validation), yes, "
                                     "no."),
    max_pixels: int = MAX_PIXELS,
) -> None:
    """Train a segmentation model; saves it with a report (metrics, overlays, curves)."""
    from transferkit.dense.segment import SegmentationModel, format_metrics
    from transferkit.errors import TrainingInterrupted

    train_dir, val_dir, test_dir = _splits(data, val, test)
    train_data = _load(train_dir, binary, max_pixels, "training")
    val_data = _load(val_dir, binary, max_pixels, "validation") if val_dir else None
    test_data = _load(test_dir, binary, max_pixels, "test") if test_dir else None
    checkpoint = output.with_name(output.name + ".ckpt")
    model = SegmentationModel(
        backbone, unpool=unpool, image_size=image_size, epochs=epochs, lr=lr,
        batch_size=batch_size, patience=patience,
        fine_tune_blocks=_fine_tune_blocks(fine_tune_blocks), fine_tune_epochs=fine_tune_epochs,
        fine_tune_lr_factor=fine_tune_lr_factor, augment=augment, pretrained=pretrained,
        binary=True if binary else None, val_fraction=val_fraction, seed=seed,
        checkpoint=checkpoint, resume=resume, stop_after_epochs=stop_after_epochs,
        max_pixels=max_pixels, keep_largest=_keep_largest(keep_largest))
    err_console.print(f"training on {len(train_data)} images ({len(train_data.classes) - 1} "
                      f"foreground class(es)), {unpool} un-pooling, {backbone} encoder",
                      highlight=False)
    try:
        model.fit(train_data, val_data)
    except TrainingInterrupted as exc:
        err_console.print(f"[yellow]{exc}[/yellow]", highlight=False)
        raise typer.Exit(3) from None
    model.save(output)
    if not keep_checkpoint and checkpoint.exists():
        shutil.rmtree(checkpoint)
    split, report_data = ("test", test_data) if test_data is not None else ("val", val_data)
    if report_data is not None:
        metrics = model.evaluate(report_data, report=output / "report", split=split)
        console.print(f"[bold]{split}[/bold] ({metrics['n_images']} images):", highlight=False)
        console.print(format_metrics(metrics), highlight=False, markup=False)
    if model.binary_:
        console.print(f"threshold {model.threshold_} (chosen on validation), largest blob "
                      f"only: {'yes' if model.keep_largest_ else 'no'}", highlight=False)
    console.print(f"model saved to {output}"
                  + (f" (report in {output / 'report'})" if report_data is not None else ""),
                  highlight=False)
    write_and_report_failures(output, model.failures_, what="bad image or mask")


def _keep_largest(choice: str) -> bool | None:
    choices = {"auto": None, "yes": True, "no": False}
    if choice not in choices:
        raise typer.BadParameter(f"--keep-largest {choice}: choose auto, yes or no")
    return choices[choice]


@segment_app.command("predict")
@friendly_errors
def predict(
    model_dir: Path = typer.Argument(..., help="Model directory written by `segment train`."),
    images: list[Path] = typer.Argument(..., help="Image files or folders."),
    output: Path = typer.Option(Path("out/segment-predict"), "--output", "-o",
                                help="Folder for STEM.mask.png (class index; 0/255 for a "
                                     "binary model) and STEM.overlay.png per image."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
    max_pixels: int = MAX_PIXELS,
) -> None:
    """Mask PNG + overlay PNG per image (unreadable files skipped and listed)."""
    from transferkit.data import load_image, scan_images
    from transferkit.dense.seg_report import overlay, save_mask_png
    from transferkit.dense.segment import SegmentationModel

    model = SegmentationModel.load(model_dir)
    model.max_pixels = max_pixels
    scan = scan_images(images)
    if not scan.images:
        report_failures([], scan.ignored)
        raise ValueError(f"{', '.join(map(str, images))}: no images found")
    done, failures = model.predict_paths(scan.images)
    output.mkdir(parents=True, exist_ok=True)
    rows, used = [], set()
    for path, mask in done:
        stem = _unique(path.stem, used)
        save_mask_png(mask, output / f"{stem}.mask.png", model.binary_)
        picture = overlay(load_image(path, max_pixels=max_pixels), mask, len(model.classes_))
        picture.save(output / f"{stem}.overlay.png")
        found = {model.classes_[c]: int((mask == c).sum()) for c in range(1, len(model.classes_))}
        rows.append({"path": str(path), "mask": str(output / f"{stem}.mask.png"),
                     "overlay": str(output / f"{stem}.overlay.png"),
                     "foreground_fraction": float((mask > 0).mean()), "pixels": found})
    if as_json:
        print(json.dumps({"results": rows, "failures": [{"path": str(p), "reason": r}
                                                        for p, r in failures]}, indent=2))
    else:
        for row in rows:
            console.print(f"{row['path']}: foreground {row['foreground_fraction']:.1%} -> "
                          f"{row['overlay']}", highlight=False, markup=False)
        report_failures(failures, scan.ignored)
    if not rows:
        raise typer.Exit(1)


def _unique(stem: str, used: set[str]) -> str:
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}-{n}"
    used.add(name)
    return name


@segment_app.command("evaluate")
@friendly_errors
def evaluate(
    model_dir: Path = typer.Argument(..., help="Model directory written by `segment train`."),
    data: Path = typer.Argument(..., help="Folder with images/ and masks/ (as for train)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Report folder (metrics."
                                       "json, contact sheet, curves; default MODEL/evaluation)."),
    max_pixels: int = MAX_PIXELS,
) -> None:
    """One line per metric (foreground IoU, Dice, pixel accuracy, mIoU) plus a report."""
    from transferkit.dense.segment import SegmentationModel, format_metrics

    model = SegmentationModel.load(model_dir)
    model.max_pixels = max_pixels
    test = _load(data, model.binary_, max_pixels, "evaluation")
    output = output or model_dir / "evaluation"
    metrics = model.evaluate(test, report=output, split=data.name)
    console.print(format_metrics(metrics), highlight=False, markup=False)
    console.print(f"{metrics['n_images']} images, {metrics['ms_per_image']:.1f} ms/image; "
                  f"report in {output}", highlight=False)
    report_failures([(f["path"], f["reason"]) for f in metrics["failures"]],
                    what="bad image or mask")


@segment_app.command("export")
@friendly_errors
def export(
    model_dir: Path = typer.Argument(..., help="Model directory written by `segment train`."),
    output: Path = typer.Option(Path("out/segmenter.onnx"), "--output", "-o"),
) -> None:
    """Write the model (encoder + decoder) as one ONNX file: normalised images -> logits."""
    from transferkit.dense.segment import SegmentationModel

    path = SegmentationModel.load(model_dir).export_onnx(output)
    console.print(f"ONNX model written to {path}", highlight=False)
