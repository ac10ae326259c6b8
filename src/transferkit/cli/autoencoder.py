"""`transferkit autoencoder ...`: train, compare, interpolate, embed with autoencoders."""

from __future__ import annotations

from pathlib import Path

import typer

from transferkit.cli._common import console, friendly_errors, report_failures

ae_app = typer.Typer(no_args_is_help=True, help="Autoencoders on Fashion-MNIST: PCA baseline, "
                     "conv AE (nearest / maxunpool / transposed un-pooling), denoising.")


def register(app: typer.Typer) -> None:
    app.add_typer(ae_app, name="autoencoder")


@ae_app.command("train")
@friendly_errors
def train(
    output: Path = typer.Option(..., "--output", "-o", help="Directory to save the model in."),
    unpool: str = typer.Option("nearest", help="nearest | maxunpool | transposed | pca"),
    bottleneck: int = typer.Option(32, min=1, help="Code size (PCA: number of components)."),
    epochs: int = typer.Option(5, min=1),
    limit: int = typer.Option(12000, min=10, help="Fashion-MNIST training images to use."),
    denoise_std: float = typer.Option(0.0, min=0.0, help="> 0 trains a denoising AE."),
    batch_size: int = typer.Option(64, min=1),
    lr: float = typer.Option(5e-3),
    seed: int = typer.Option(0),
) -> None:
    """Train on Fashion-MNIST and save (safetensors + JSON); prints test MSE."""
    import numpy as np

    from transferkit.autoencoders import ConvAutoencoder, PCAAutoencoder, as_unit_images
    from transferkit.data import load_fashion_mnist

    X, _ = load_fashion_mnist("train", limit)
    Xt, _ = load_fashion_mnist("test", 2000)
    model = PCAAutoencoder(bottleneck) if unpool == "pca" else ConvAutoencoder(
        bottleneck, unpool, denoise_std, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    model.fit(X)
    model.save(output)
    baseline = float(np.mean((as_unit_images(Xt) - as_unit_images(X).mean(0)) ** 2))
    console.print(f"saved {model.kind} autoencoder ({unpool}, bottleneck {bottleneck}) to "
                  f"{output}\ntest MSE {model.mse(Xt):.4f} (mean-image baseline {baseline:.4f})",
                  highlight=False)


@ae_app.command("report")
@friendly_errors
def report(
    output: Path = typer.Option(Path("out/ae-report"), "--output", "-o"),
    train_size: int = typer.Option(12000, min=100),
    test_size: int = typer.Option(2000, min=10),
    bottleneck: int = typer.Option(32, min=1),
    epochs: int = typer.Option(6, min=1),
    denoise_std: float = typer.Option(0.3, min=0.0),
    batch_size: int = typer.Option(64, min=1),
) -> None:
    """Compare PCA and the three un-pooling kinds at equal bottleneck: MSE, kNN accuracy of
    the codes, denoising, reconstruction grid and interpolation PNGs."""
    from transferkit.autoencoders.report import compare_autoencoders, format_summary

    result = compare_autoencoders(output, train_size, test_size, bottleneck, epochs,
                                  denoise_std, batch_size)
    console.print(format_summary(result), highlight=False, markup=False)
    console.print(f"wrote {output}/ (summary.txt, report.json, reconstructions.png, "
                  f"interpolations.png, pca_curve.png, models/)", highlight=False)


def _pick(image: Path | None, index: int):
    from transferkit.data import load_fashion_mnist

    if image is not None:
        from transferkit.autoencoders import load_gray_images

        _, arrays, failures = load_gray_images([image], 28)
        if failures:
            raise ValueError(f"{failures[0][0]}: {failures[0][1]}")
        return arrays[0]
    X, _ = load_fashion_mnist("test", index + 1)
    return X[index]


@ae_app.command("interpolate")
@friendly_errors
def interpolate(
    model_dir: Path = typer.Argument(..., help="Saved autoencoder directory."),
    output: Path = typer.Option(Path("out/interpolation.png"), "--output", "-o"),
    image_a: Path | None = typer.Option(None, "--a", help="First image file."),
    image_b: Path | None = typer.Option(None, "--b", help="Second image file."),
    index_a: int = typer.Option(0, help="Fashion-MNIST test index when --a is not given."),
    index_b: int = typer.Option(1, help="Fashion-MNIST test index when --b is not given."),
    steps: int = typer.Option(10, min=2),
) -> None:
    """Walk the latent space from image A to image B; save the decoded strip as a PNG."""
    from transferkit.autoencoders import load_autoencoder, save_strip

    model = load_autoencoder(model_dir)
    strip = model.interpolate(_pick(image_a, index_a), _pick(image_b, index_b), steps)
    save_strip(strip, output)
    console.print(f"wrote {output} ({steps} images)", highlight=False)


@ae_app.command("embed")
@friendly_errors
def embed(
    model_dir: Path = typer.Argument(..., help="Saved autoencoder directory."),
    folder: Path = typer.Argument(..., help="Folder of images (searched recursively)."),
    output: Path = typer.Option(..., "--output", "-o", help="Parquet file to write."),
) -> None:
    """Autoencoder codes of every image under FOLDER as an embeddings table (for search and
    training); sub-folder names become labels."""
    from transferkit.autoencoders import load_autoencoder
    from transferkit.data import list_images

    model = load_autoencoder(model_dir)
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(f"{folder}: no image files found")
    labels = [f.parent.name if f.parent != folder else "" for f in files]
    result = model.embed_paths(files, labels if any(labels) else None)
    result.save(output)
    console.print(f"wrote {len(result)} codes of dim {result.dim} to {output}", highlight=False)
    report_failures(result.failures)
