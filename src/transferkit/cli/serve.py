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
)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


@friendly_errors
def serve(
    model: Path | None = typer.Option(None, "--model", "-m",
                                      help="Trained model directory (from `transferkit train`)."),
    index: Path | None = typer.Option(None, "--index", "-i",
                                      help="Image index (from `transferkit index`) for search."),
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
    gallery: Path | None = typer.Option(None, "--gallery", help="Folder written by "
                                        "`transferkit gallery`, shown at /lab/."),
    engine: str = engine_option("torch"),
    precision: str = precision_option(),
) -> None:
    """Serve predict/embed/search (and text search) JSON endpoints and a web page (open
    http://HOST:PORT/)."""
    import uvicorn

    from transferkit.service import create_app

    for what, path in (("model", model), ("index", index), ("text index", text_index),
                       ("audio index", audio_index), ("audio model", audio_model),
                       ("gallery", gallery)):
        if path is not None and not path.exists():
            raise FileNotFoundError(f"{path}: {what} not found")
    if host not in LOOPBACK and not token:
        raise ValueError(f"--host {host}: refusing to serve beyond this machine without "
                         f"authentication; pass --token TOKEN (or set TRANSFERKIT_TOKEN)")
    if token and len(token) < 16:
        err_console.print("[yellow]warning:[/yellow] a token under 16 characters is easy to "
                          "guess")
    app = create_app(model_dir=model, index_path=index, backbone=backbone,
                     max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                     max_image_pixels=max_pixels, text_index_path=text_index, token=token,
                     engine=engine, precision=precision, audio_index_path=audio_index,
                     audio_model_dir=audio_model, gallery_dir=gallery)
    runs_on = app.state.service.engine
    print_runtime({"engine": runs_on.engine, "precision": runs_on.precision})
    shown = f"[{host}]" if ":" in host else host
    console.print(f"transferkit service on http://{shown}:{port}/  "
                  f"(API spec: /openapi.json; Ctrl+C to stop)", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
