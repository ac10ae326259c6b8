"""`transferkit serve`: the HTTP API and web page on localhost."""

from __future__ import annotations

from pathlib import Path

import typer

from transferkit.cli._common import (
    MAX_PIXELS,
    console,
    engine_option,
    err_console,
    friendly_errors,
    precision_option,
    print_runtime,
    write_and_report_failures,
)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


@friendly_errors
def serve(
    data_folder: Path | None = typer.Argument(
        None, metavar="[DATA_FOLDER]",
        help="Images to browse: indexed first when no index exists (written to --index, "
             "default DATA_FOLDER.tkindex beside the folder), then served."),
    model: list[Path] | None = typer.Option(
        None, "--model", "-m",
        help="Model directory: a classifier (`transferkit train`), a segmentation model "
             "(`segment train`: /api/segment) or a localiser (`localize train`: "
             "/api/localize); the kind is read from its manifest. Repeat for several kinds."),
    index: Path | None = typer.Option(None, "--index", "-i",
                                      help="Image index (from `transferkit index`) for search "
                                           "and the collection views."),
    text_index: Path | None = typer.Option(None, "--text-index", "-t",
                                           help="Text index (`index build --text`) for text "
                                                "search."),
    audio_index: Path | None = typer.Option(None, "--audio-index", help="Audio index (`index "
                                            "build --audio`) for /api/search-audio."),
    audio_model: Path | None = typer.Option(None, "--audio-model", help="Audio model (`train "
                                            "--audio`) for /api/predict-audio."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-b",
                                 help="Backbone for ImageNet predictions and /api/embed."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (default: this machine only)."),
    port: int = typer.Option(8000, min=0, max=65535),
    max_upload_mb: float = typer.Option(10.0, min=0.01, help="Largest accepted upload."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    max_pixels: int = MAX_PIXELS,
    token: str | None = typer.Option(None, "--token", envvar="TRANSFERKIT_TOKEN",
                                     help="Require 'Authorization: Bearer TOKEN' on the API "
                                          "(health stays open); needed to bind beyond "
                                          "loopback. Open the page as http://HOST:PORT/#token="
                                          "TOKEN."),
    map_method: str = typer.Option("auto", "--map", help="Projection for the Map tab: auto "
                                   "(UMAP when umap-learn is installed, else PCA), umap, pca."),
    gallery: Path | None = typer.Option(None, "--gallery", help="Folder written by "
                                        "`transferkit gallery`, shown at /lab/."),
    engine: str = engine_option("torch"),
    precision: str = precision_option(),
    model_nice: int = typer.Option(0, "--model-nice", min=0, max=19,
                                   help="Run the model's threads this much below the event "
                                        "loop (Linux nice); off by default: at 200 clients "
                                        "on 2 cores it measured worse (docs/service.md)."),
) -> None:
    """Serve predict/embed/search (and text search) JSON endpoints and a web page (open
    http://HOST:PORT/)."""
    import uvicorn

    from transferkit.service import create_app

    models = models_by_kind(model or [])
    checked = (("index", None if data_folder else index),
               ("text index", text_index), ("audio index", audio_index),
               ("audio model", audio_model), ("gallery", gallery))
    for what, path in checked:
        if path is not None and not path.exists():
            raise FileNotFoundError(f"{path}: {what} not found")
    if host not in LOOPBACK and not token:
        raise ValueError(f"--host {host}: refusing to serve beyond this machine without "
                         f"authentication; pass --token TOKEN (or set TRANSFERKIT_TOKEN)")
    if token and len(token) < 16:
        err_console.print("[yellow]warning:[/yellow] a token under 16 characters is easy to "
                          "guess")
    if data_folder is not None:
        index = index_for_folder(data_folder, index, backbone, engine, precision, max_pixels)
    app = create_app(model_dir=models.get("classifier"), index_path=index, backbone=backbone,
                     max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                     max_image_pixels=max_pixels, text_index_path=text_index, token=token,
                     engine=engine, precision=precision, audio_index_path=audio_index,
                     audio_model_dir=audio_model, gallery_dir=gallery,
                     segmenter_dir=models.get("segmenter"),
                     localizer_dir=models.get("localizer"), map_method=map_method)
    app.state.worker_nice = model_nice
    runs_on = app.state.service.engine
    print_runtime({"engine": runs_on.engine, "precision": runs_on.precision})
    shown = f"[{host}]" if ":" in host else host
    console.print(f"transferkit service on http://{shown}:{port}/  "
                  f"(API spec: /openapi.json; Ctrl+C to stop)", highlight=False)
    if gallery is not None:
        console.print(f"lab gallery on http://{shown}:{port}/lab/  (and the page's Lab tab)",
                      highlight=False)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def models_by_kind(paths: list[Path]) -> dict[str, Path]:
    """``--model`` folders by the kind their manifest names (classifier, segmenter,
    localizer); a missing folder, an unknown format or two of one kind is a usage error."""
    from transferkit.service.startup import model_kind

    found: dict[str, Path] = {}
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: model not found")
        kind = model_kind(path)
        if kind in found:
            raise ValueError(f"--model {path}: a second {kind} (already serving {found[kind]}); "
                             f"give one model of each kind")
        found[kind] = path
    return found


def index_for_folder(folder: Path, index: Path | None, backbone: str, engine: str,
                     precision: str, max_pixels: int) -> Path:
    """The index of ``folder``: ``index`` (default ``FOLDER.tkindex``) when it exists, else
    built now with the service's backbone, progress printed per chunk of files."""
    from transferkit.search import build_index, describe_spec

    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder of images")
    target = index or folder.parent / f"{folder.resolve().name}.tkindex"
    if target.exists():
        console.print(f"using the existing index {target} (add new files with `transferkit "
                      f"index add {target} {folder}`)", highlight=False)
        return target

    def show(done: int, total: int) -> None:
        err_console.print(f"indexing {folder}: {done:,}/{total:,} images", highlight=False)

    err_console.print(f"no index yet: indexing {folder} with {backbone} -> {target}",
                      highlight=False)
    built = build_index(folder, backbone, output=target, callback=show, engine=engine,
                        precision=precision, max_pixels=max_pixels)
    console.print(f"indexed {len(built)} images with {describe_spec(built.spec)} -> {target}",
                  highlight=False)
    write_and_report_failures(target, built.failures, built.ignored)
    return target
