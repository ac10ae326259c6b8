"""`transferkit serve`: the HTTP API and web page on localhost."""

from __future__ import annotations

from pathlib import Path

import typer

from transferkit.cli._common import console, err_console, friendly_errors

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
) -> None:
    """Serve predict/embed/search (and text search) JSON endpoints and a web page (open
    http://HOST:PORT/)."""
    import uvicorn

    from transferkit.service import create_app

    for what, path in (("model", model), ("index", index), ("text index", text_index),
                       ("audio index", audio_index), ("audio model", audio_model)):
        if path is not None and not path.exists():
            raise FileNotFoundError(f"{path}: {what} not found")
    if host not in LOOPBACK:
        err_console.print(f"[yellow]warning:[/yellow] binding {host}: the service has no "
                          "authentication; anyone who can reach this address can use it")
    app = create_app(model_dir=model, index_path=index, backbone=backbone,
                     max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                     text_index_path=text_index, audio_index_path=audio_index,
                     audio_model_dir=audio_model)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"transferkit service on http://{shown}:{port}/  "
                  f"(API spec: /openapi.json; Ctrl+C to stop)", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
