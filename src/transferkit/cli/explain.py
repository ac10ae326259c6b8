"""`transferkit visualize | top-images | attack`: look inside a backbone and fool it."""

from __future__ import annotations

from pathlib import Path

import typer

from transferkit.cli._common import console, friendly_errors, report_failures


def register(app: typer.Typer) -> None:
    app.command("visualize")(visualize)
    app.command("top-images")(top_images)
    app.command("attack")(attack)
    app.command("atlas")(atlas)


@friendly_errors
def visualize(
    target: str = typer.Argument(..., help="class:tabby | layer:blocks.4 | channel:blocks.4:12 "
                                 "| neuron:blocks.4:12 (a bare word is a class; `transferkit "
                                 "backbones --layers NAME` lists a model's layers)."),
    output: Path = typer.Option(Path("out/visualization.png"), "--output", "-o"),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-b"),
    steps: int = typer.Option(256, min=1),
    size: int = typer.Option(128, min=16, help="Resolution of the image parameterisation."),
    input_size: int | None = typer.Option(None, help="Network input per step (default native)."),
    views: int = typer.Option(1, min=1, help="Random transforms averaged per step."),
    tv: float = typer.Option(0.1, min=0.0, help="Total-variation weight."),
    lr: float = typer.Option(0.05, help="Adam step on the Fourier coefficients."),
    seed: int = typer.Option(0),
) -> None:
    """Activation maximisation from noise (Fourier/decorrelated parameterisation, jitter,
    scale, rotation, TV). Writes the PNG and a .txt summary of how the network sees it."""
    from transferkit.backbones import create
    from transferkit.explain import visualize as run

    model = create(backbone)
    result = run(model, target, steps=steps, size=size, input_size=input_size, views=views,
                 tv_weight=tv, lr=lr, seed=seed)
    result.save(output)
    console.print(result.summary(), highlight=False, markup=False)
    console.print(f"wrote {output}", highlight=False)


@friendly_errors
def top_images(
    layer: str = typer.Argument(..., help="Layer name, e.g. blocks.5 (see Backbone.layer_names)."),
    channel: int = typer.Argument(..., min=0),
    source: Path | None = typer.Argument(None, help="Folder of images (default: Fashion-MNIST)."),
    fashion_mnist: int = typer.Option(2000, help="Fashion-MNIST test images when no folder."),
    k: int = typer.Option(9, "--top-k", "-k", min=1),
    output: Path = typer.Option(Path("out/top-images.png"), "--output", "-o"),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-b"),
    image_size: int = typer.Option(96, help="Network input size for Fashion-MNIST arrays."),
) -> None:
    """The k dataset images that excite a channel most (mean activation), as a PNG grid."""
    from transferkit.backbones import create
    from transferkit.explain import top_activating

    model = create(backbone)
    if source is None:
        from transferkit.data import load_fashion_mnist

        images, _ = load_fashion_mnist("test", fashion_mnist)
        result = top_activating(model, images, layer, channel, k, image_size=image_size)
    else:
        result = top_activating(model, source, layer, channel, k)
    result.save_grid(output)
    console.print(result.summary(), highlight=False, markup=False)
    console.print(f"wrote {output}", highlight=False)
    report_failures(result.failures)


@friendly_errors
def attack(
    image: str = typer.Argument(..., help="Image file, or a bundled sample name (coffee, "
                                "chelsea, astronaut, rocket, camera)."),
    target: str | None = typer.Option(None, "--target", "-t",
                                      help="Class to turn it into (omit: untargeted)."),
    method: str = typer.Option("pgd", help="pgd | fgsm"),
    eps: str = typer.Option("8/255", help="L-inf budget in [0,1] pixels: 0.03, 8/255 or 8."),
    steps: int = typer.Option(20, min=1, help="PGD iterations."),
    step_size: float | None = typer.Option(None, help="PGD step (default eps/4)."),
    output: Path = typer.Option(Path("out/attack"), "--output", "-o", help="Directory for PNGs."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-b"),
) -> None:
    """Adversarial example: FGSM/PGD, targeted or not; saves original, adversarial and
    amplified perturbation PNGs plus a summary. Success is judged on the 8-bit PNG."""
    from transferkit.backbones import create
    from transferkit.data import SAMPLE_PHOTOS, sample_photo
    from transferkit.explain import attack as run

    source = sample_photo(image) if image in SAMPLE_PHOTOS and not Path(image).exists() \
        else Path(image)
    result = run(create(backbone), source, target, method, eps, steps, step_size)
    result.save(output)
    console.print(result.summary(), highlight=False, markup=False)
    console.print(f"wrote {output}/ (original.png, adversarial.png, perturbation.png, "
                  f"summary.txt, attack.json)", highlight=False)
    if not result.success:
        raise typer.Exit(1)


@friendly_errors
def atlas(
    output: Path = typer.Option(Path("out/atlas.png"), "--output", "-o", help="PNG to write."),
    source: Path | None = typer.Option(None, "--images", help="Folder of images for the top "
                                       "activations (default: scikit-image photos + "
                                       "Fashion-MNIST)."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-b"),
    channels: int = typer.Option(6, min=1, help="Channels shown per stage."),
    steps: int = typer.Option(64, min=1, help="Optimisation steps per stage."),
    top_k: int = typer.Option(3, min=1, max=3, help="Top images under each channel."),
) -> None:
    """Layer atlas: for each stage, channel visualisations with the images that excite those
    channels most under them (one PNG, plus a .json of channels and top images)."""
    import json

    from transferkit.backbones import create
    from transferkit.explain import layer_atlas, load_atlas_images
    from transferkit.utils import atomic_write_text

    images, names = load_atlas_images(source)
    result = layer_atlas(create(backbone), images, names, channels_per_layer=channels,
                         steps=steps, top_k=top_k)
    result.save(output)
    atomic_write_text(output.with_suffix(".json"), json.dumps(result.to_dict(), indent=2))
    console.print(f"wrote {output} ({result.grid_shape[0]} stages x {result.grid_shape[1]} "
                  f"channels, {len(images)} images ranked)", highlight=False)
