"""`transferkit gallery`: all lab pictures as PNGs plus one offline index.html."""

from __future__ import annotations

from pathlib import Path

import typer

from transferkit.cli._common import console, friendly_errors


def register(app: typer.Typer) -> None:
    app.command("gallery")(gallery)


@friendly_errors
def gallery(
    output: Path = typer.Option(Path("out/gallery"), "--output", "-o"),
    images: Path | None = typer.Option(None, "--images", help="Folder ranked for the atlas and "
                                       "top images (default: bundled photos + Fashion-MNIST)."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-b"),
    only: list[str] | None = typer.Option(None, "--only", help="Make just these pictures "
                                          "(keys: ideal-tabby, atlas, attack, svd, ...)."),
    quick: bool = typer.Option(False, "--quick", help="Tiny step counts: a smoke test, not "
                               "pictures to look at."),
) -> None:
    """Build the lab gallery (ideal classes, layer atlas, top images, adversarial flip, SVD,
    autoencoders, denoising, interpolation, face search); pictures whose parameters are
    unchanged are kept. Open OUT/index.html, or `transferkit serve --gallery OUT` -> /lab/."""
    from transferkit.lab import build_gallery, gallery_pictures

    keys = [p.key for p in gallery_pictures(quick)]
    unknown = [k for k in only or [] if k not in keys]
    if unknown:
        raise ValueError(f"--only {', '.join(unknown)}: unknown; choose from {', '.join(keys)}")
    if images is not None and not images.is_dir():
        raise FileNotFoundError(f"{images}: not a folder")
    result = build_gallery(output, quick, backbone, images, only or None)
    for key, entry in result["pictures"].items():
        console.print(f"{key:14s} {entry['seconds']:6.1f} s  "
                      f"{', '.join(f for f, _ in entry['figures'])}", highlight=False)
    console.print(f"wrote {output}/index.html", highlight=False)
