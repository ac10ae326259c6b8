"""The comparison report: PCA vs the three un-pooling kinds at the same bottleneck size.

Measures what matters for each use: reconstruction MSE (compression), kNN accuracy of the
codes (codes as features), denoising gain, training time; and draws the pictures.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.autoencoders._base import AutoencoderMixin, as_unit_images, to_uint8
from transferkit.autoencoders.conv import UNPOOL_KINDS, ConvAutoencoder
from transferkit.autoencoders.pca import PCAAutoencoder
from transferkit.autoencoders.plots import save_image_grid
from transferkit.utils import atomic_write_text

PCA_SWEEP = (2, 4, 8, 16, 32, 64, 128, 256)


def knn_accuracy(train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray,
                 test_labels: np.ndarray, k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour classifier on codes: are similar items close?"""
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=k).fit(train_codes, train_labels)
    return float(clf.score(test_codes, test_labels))


def _one_per_class(labels: np.ndarray, n_classes: int = 10) -> np.ndarray:
    return np.array([int(np.flatnonzero(labels == c)[0]) for c in range(n_classes)
                     if np.any(labels == c)])


def compare_autoencoders(out_dir: str | os.PathLike, train_size: int = 12000,
                         test_size: int = 2000, bottleneck: int = 32, epochs: int = 6,
                         denoise_std: float = 0.3, batch_size: int = 64, lr: float = 5e-3,
                         seed: int = 0, save_models: bool = True,
                         data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
                         ) -> dict[str, Any]:
    """Train PCA + conv AEs (nearest, maxunpool, transposed, denoising) on Fashion-MNIST and
    write ``report.json``, ``summary.txt``, ``reconstructions.png``, ``interpolations.png``,
    ``pca_curve.png`` into ``out_dir``. ``data`` = (X_train, y_train, X_test, y_test)
    overrides the Fashion-MNIST load (tests)."""
    from transferkit.data import load_fashion_mnist

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        X, y = load_fashion_mnist("train", train_size)
        Xt, yt = load_fashion_mnist("test", test_size)
    else:
        X, y, Xt, yt = data
    clean_t = as_unit_images(Xt)
    mean_mse = float(np.mean((clean_t - as_unit_images(X).mean(0)) ** 2))
    rng = np.random.default_rng(seed)
    noisy_t = np.clip(clean_t + rng.normal(0, denoise_std, clean_t.shape), 0, 1
                      ).astype(np.float32)

    models: dict[str, AutoencoderMixin] = {"pca": PCAAutoencoder(bottleneck)}
    for kind in UNPOOL_KINDS:
        models[f"conv-{kind}"] = ConvAutoencoder(bottleneck, kind, epochs=epochs,
                                                 batch_size=batch_size, lr=lr, seed=seed)
    models["conv-nearest-denoise"] = ConvAutoencoder(bottleneck, "nearest", denoise_std,
                                                     epochs=epochs, batch_size=batch_size,
                                                     lr=lr, seed=seed)
    rows = []
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(X)
        fit_s = time.perf_counter() - start
        codes, codes_t = model.transform(X), model.transform(Xt)
        rows.append({
            "model": name, "bottleneck": bottleneck, "fit_seconds": round(fit_s, 1),
            "test_mse": model.mse(Xt),
            "denoise_mse": float(np.mean((model.reconstruct(noisy_t) - clean_t) ** 2)),
            "knn_accuracy": knn_accuracy(codes, y, codes_t, yt),
            "side_info_bits": getattr(model, "side_information_bits", lambda: 0)(),
            "compression_ratio": model.compression_ratio(),
        })
        if save_models:
            model.save(out / "models" / name)
    pixels_knn = knn_accuracy(as_unit_images(X).reshape(len(X), -1), y,
                              clean_t.reshape(len(Xt), -1), yt)
    curve = models["pca"].mse_curve(Xt, [k for k in PCA_SWEEP if k <= min(784, len(X))])

    picks = _one_per_class(np.asarray(yt))
    grid = [list(to_uint8(clean_t[picks]))]
    labels = ["original"]
    for name, model in models.items():
        grid.append(list(to_uint8(model.reconstruct(Xt[picks]))))
        labels.append(name)
    grid.append(list(to_uint8(noisy_t[picks])))
    labels.append(f"noisy (std {denoise_std})")
    for name in ("conv-nearest", "conv-nearest-denoise"):
        grid.append(list(to_uint8(models[name].reconstruct(noisy_t[picks]))))
        labels.append(f"{name} <- noisy")
    save_image_grid(grid, out / "reconstructions.png", row_labels=labels)
    a, b = Xt[picks[0]], Xt[picks[-1]]
    strips = [list(m.interpolate(a, b, 10)) for m in models.values()]
    save_image_grid(strips, out / "interpolations.png", row_labels=list(models))
    _plot_pca_curve(curve, bottleneck, rows, out / "pca_curve.png")

    report = {"train_size": len(X), "test_size": len(Xt), "bottleneck": bottleneck,
              "epochs": epochs, "denoise_std": denoise_std, "mean_image_mse": mean_mse,
              "raw_pixels_knn_accuracy": pixels_knn, "models": rows, "pca_curve": curve}
    atomic_write_text(out / "report.json", json.dumps(report, indent=2))
    atomic_write_text(out / "summary.txt", format_summary(report))
    return report


def format_summary(report: dict[str, Any]) -> str:
    lines = [f"Fashion-MNIST autoencoders: {report['train_size']} train / {report['test_size']} "
             f"test images, bottleneck {report['bottleneck']} "
             f"(compression {784 / report['bottleneck']:.1f}x), {report['epochs']} epochs",
             f"baselines: per-pixel mean image MSE {report['mean_image_mse']:.4f}; kNN on raw "
             f"pixels {report['raw_pixels_knn_accuracy']:.3f}", "",
             f"{'model':22s} {'test MSE':>9s} {'noisy->clean':>12s} {'kNN acc':>8s} "
             f"{'side bits':>9s} {'fit s':>7s}"]
    for r in report["models"]:
        lines.append(f"{r['model']:22s} {r['test_mse']:9.4f} {r['denoise_mse']:12.4f} "
                     f"{r['knn_accuracy']:8.3f} {r['side_info_bits']:9d} {r['fit_seconds']:7.1f}")
    lines += ["", "PCA: components -> test MSE (compression ratio)"]
    lines += [f"  {c['n_components']:4d} -> {c['mse']:.4f} ({c['compression_ratio']:.1f}x)"
              for c in report["pca_curve"]]
    lines += ["", "side bits = pooling switches maxunpool's decoder receives outside the code."]
    return "\n".join(lines) + "\n"


def _plot_pca_curve(curve: list[dict[str, float]], bottleneck: int, rows: list[dict[str, Any]],
                    path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from transferkit.utils import atomic_path

    fig, ax = plt.subplots(figsize=(6, 4))
    ks = [c["n_components"] for c in curve]
    ax.plot(ks, [c["mse"] for c in curve], "o-", label="PCA")
    for r in rows:
        if r["model"].startswith("conv") and "denoise" not in r["model"]:
            ax.plot([bottleneck], [r["test_mse"]], "s", label=r["model"])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bottleneck size (components)")
    ax.set_ylabel("test reconstruction MSE")
    top = ax.secondary_xaxis("top", functions=(lambda k: 784 / np.maximum(k, 1e-9),
                                               lambda r: 784 / np.maximum(r, 1e-9)))
    top.set_xlabel("compression ratio (784 / bottleneck)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
