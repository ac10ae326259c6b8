"""`transferkit data segmentation`: demo data for `segment` and `localize` in the user format."""

from __future__ import annotations

from pathlib import Path

import typer

from transferkit.cli._common import console, friendly_errors

HELP = ("Write a segmentation + box dataset: OUT/{train,val,test}/ with images/, masks/ "
        "(pixel = class index, 0 = background), classes.txt and boxes.csv "
        "(path,label,x,y,w,h).\n\n"
        "Default: Tux Paint stamps pasted on real photos (generated here; the stamps are GPL-2: "
        "never redistribute the output), the test split holds unseen stamps on unseen scenes. "
        "--fixture: a tiny committed-safe set (Fashion-MNIST items and drawn shapes).\n\n"
        "boxes.csv is always written, so one folder feeds both `segment train OUT/train` and "
        "`localize train OUT/train/boxes.csv` (there is no separate `data boxes`).")


def register(app: typer.Typer) -> None:
    from transferkit.cli.audio import data_app  # the `data` sub-app shared by demo writers

    data_app.command("segmentation", help=HELP)(segmentation)


@friendly_errors
def segmentation(
    output: Path = typer.Argument(..., help="Folder to write (must be new, or written by "
                                            "this command before)."),
    train: int | None = typer.Option(None, "--train", min=1,
                                     help="Training images (default 800; fixture 24)."),
    val: int | None = typer.Option(None, "--val", min=1,
                                   help="Validation images (default 200; fixture 12)."),
    test: int | None = typer.Option(None, "--test", min=1,
                                    help="Test images (default 200; fixture 12)."),
    size: int | None = typer.Option(None, "--size", min=32,
                                    help="Image side in pixels (default 160; fixture 96)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same images."),
    fixture: bool = typer.Option(False, "--fixture",
                                 help="Fashion-MNIST items and drawn shapes instead of stamps."),
) -> None:
    from transferkit.dense import write_composites, write_fixture

    if fixture:
        n_train = train or 24
        summary = write_fixture(output, n=n_train, size=size or 96, seed=seed,
                                n_val=val or max(2, n_train // 2),
                                n_test=test or max(2, n_train // 2))
    else:
        summary = write_composites(output, n_train=train or 800, n_val=val or 200,
                                   n_test=test or 200, size=size or 160, seed=seed)
    say = lambda text: console.print(text, highlight=False, markup=False)  # noqa: E731
    say(f"wrote {summary['kind']} ({len(summary['classes']) - 1} classes + background, "
        f"{summary['size']} px) to {output}")
    for split, info in summary["splits"].items():
        origin = (f" ({info['stamps']} stamps on {info['backgrounds']} scenes)"
                  if "stamps" in info else "")
        say(f"  {split:5s} {info['images']:5d} images{origin}  {info['path']}")
    say(f"  summary  {Path(output) / 'summary.json'}")
