"""Foundation commands: backbones, classify, embed."""

from __future__ import annotations

from pathlib import Path

import typer

from transferkit.cli._common import (
    MAX_PIXELS,
    console,
    engine_option,
    friendly_errors,
    precision_option,
    print_runtime,
    print_topk_results,
    write_and_report_failures,
)


def register(app: typer.Typer) -> None:
    app.command("backbones")(backbones)
    app.command("classify")(classify)
    app.command("embed")(embed)


@friendly_errors
def backbones(
    all_tags: bool = typer.Option(False, "--all", help="Every pretrained tag timm knows "
                                  "(weights download on first use when online)."),
    pattern: str | None = typer.Option(None, "--filter", help="Shell-style name filter, "
                                       "e.g. 'resnet*'."),
    layers: str | None = typer.Option(None, "--layers", help="Print BACKBONE's blocks and "
                                      "feature taps (names for visualize / top-images)."),
) -> None:
    """Backbones ready offline (registered + found in the Hugging Face cache), or with --all
    every pretrained timm tag; any of these names works as --backbone everywhere."""
    from transferkit.backbones.catalog import available_backbones, pretrained_tags

    if layers is not None:
        return _print_layers(layers)
    if all_tags:
        rows = pretrained_tags(pattern)
        for row in rows:
            mark = "cached" if row["cached"] else ""
            console.print(f"{row['name']:<60} {row['input_size']:>4}px  {mark}",
                          highlight=False)
        console.print(f"{len(rows)} pretrained tags", highlight=False)
        return
    for row in available_backbones(pattern):
        console.print(f"[bold]{row['name']}[/bold]  {row['input_size']}px  "
                      f"{row['params_m']}M params  ready from {row['ready']}  "
                      f"{row['description']}", highlight=False)


def _print_layers(name: str) -> None:
    from transferkit.backbones import create

    model = create(name, pretrained=False)
    console.print(f"[bold]{name}[/bold] blocks (unfreeze units, shallow to deep): "
                  f"{', '.join(model.block_names())}", highlight=False)
    for tap in model.feature_taps():
        console.print(f"  feature tap {tap['module']}: {tap['num_chs']} channels, "
                      f"stride {tap['reduction']}", highlight=False)


@friendly_errors
def classify(
    images: list[Path] = typer.Argument(..., help="Image files (or folders) to classify."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-b"),
    checkpoint: Path | None = typer.Option(None, help="Local weights for a timm architecture."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    max_pixels: int = MAX_PIXELS,
    engine: str = engine_option(),
    precision: str = precision_option(),
) -> None:
    """ImageNet top-k with class names for each image."""
    from transferkit.backbones import create, imagenet_labels
    from transferkit.data import scan_images, try_load_images
    from transferkit.features import preprocess_images
    from transferkit.runtime import choose_engine, choose_precision, inference_model

    scan = scan_images(images)
    files = scan.images
    model = create(backbone, checkpoint=checkpoint)
    engine = choose_engine(engine, model, len(files), precision)
    net = inference_model(engine, model, precision)
    print_runtime({"engine": engine, "precision": choose_precision(engine, precision)})
    labels = imagenet_labels()
    results, failures = [], []
    for start in range(0, len(files), 32):  # decode per batch: a big folder never sits in RAM
        chunk, bad = try_load_images(files[start:start + 32],
                                     draft_size=model.preprocessing.resize_size,
                                     max_pixels=max_pixels)
        failures.extend(bad)
        if not chunk:
            continue
        topk = net.predict_topk(preprocess_images([img for _, img in chunk], model), top_k)
        for (path, _), pairs in zip(chunk, topk):
            results.append({"path": str(path), "top_k": [
                {"label": labels[i], "index": i, "probability": round(p, 4)} for i, p in pairs]})
    print_topk_results(results, [(e.path, e.reason) for e in failures], as_json, scan.ignored)


@friendly_errors
def embed(
    folder: Path | None = typer.Argument(None, help="Folder of images (searched recursively)."),
    output: Path = typer.Option(..., "--output", "-o", help="Parquet file to write."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-b"),
    checkpoint: Path | None = typer.Option(None, help="Local weights for a timm architecture."),
    image_size: int | None = typer.Option(None, help="Run the backbone at this resolution."),
    batch_size: int = typer.Option(32, min=1),
    workers: int | None = typer.Option(None, help="Decode threads (default: one per core)."),
    # -- speed: `embed --engine openvino|onnx|torch|ray --precision f32|bf16|auto` -----------
    engine: str = engine_option(more=" Or ray (Ray Data; cluster from RAY_ADDRESS)."),
    precision: str = precision_option(),
    threads: int | None = typer.Option(None, help="Model threads (default: all cores)."),
    # -- texts instead of images: `embed --text FILE.csv|.txt` -----------------------------
    text: Path | None = typer.Option(None, "--text", help="Embed texts from a .txt (one per "
                                     "line) or .csv file instead of images (rows: FILE:LINE)."),
    encoder: str | None = typer.Option(None, "--encoder", help="Text encoder: minilm "
                                       "(default), tfidf, glove or glove-idf; with --audio: "
                                       "mfcc, logmel (default), wavelet or spectrogram."),
    # -- sounds instead of images: `embed --audio FOLDER` ----------------------------------
    audio: Path | None = typer.Option(None, "--audio", help="Embed the audio clips under this "
                                      "folder instead of images."),
    text_column: str = typer.Option("text", help="CSV column holding the texts."),
    label_column: str = typer.Option("label", help="CSV column holding labels (optional)."),
    max_pixels: int = MAX_PIXELS,
) -> None:
    """Embed every image under FOLDER (or texts with --text FILE, clips with --audio FOLDER)
    into a parquet table.

    Unreadable files are skipped and non-images ignored; all of them are listed in
    OUTPUT.failures.csv (and in the table's metadata)."""
    if text is not None:
        from transferkit.cli.text import run_embed_text

        return run_embed_text(text, output, encoder or "minilm", text_column, label_column)
    if audio is not None:
        from transferkit.cli.audio import run_embed_audio

        return run_embed_audio(audio, output, encoder)
    if folder is None:
        raise ValueError("embed: give an image FOLDER, or --text FILE for texts")
    from transferkit.backbones import create
    from transferkit.features import embed_folder

    model = create(backbone, checkpoint=checkpoint, image_size=image_size)
    result = embed_folder(folder, model, batch_size=batch_size, num_workers=workers,
                          engine=engine, threads=threads, max_pixels=max_pixels,
                          precision=precision)
    print_runtime(result.runtime)
    result.save(output)
    console.print(f"wrote {len(result)} embeddings of dim {result.dim} to {output} "
                  f"({len(result.failures)} skipped, {len(result.ignored)} ignored)",
                  highlight=False)
    write_and_report_failures(output, result.failures, result.ignored)
