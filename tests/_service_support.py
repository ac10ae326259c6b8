"""Helpers for the service tests: a real uvicorn server on a free loopback port, test files."""

from __future__ import annotations

import io
import json

from PIL import Image


def live_server(app, startup_timeout: float = 60.0):
    """Run ``app`` with uvicorn in a background thread on 127.0.0.1:<free port>."""
    from transferkit.service.loadtest import background_server

    return background_server(app, startup_timeout=startup_timeout)


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def decompression_bomb_png(side: int = 20000) -> bytes:
    """A tiny PNG file that claims side x side pixels (1-bit, compresses to almost nothing)."""
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, format="PNG")
    return buffer.getvalue()


# Artefacts built once per test session and shared by the service test files.
_BUILT: dict[str, object] = {}


def built_index(tmp_path_factory, backbone, *sources) -> str:
    """A real image index (faiss) over ``sources``, embedded with ``backbone``; built once."""
    if "index" not in _BUILT:
        from transferkit.search import build_index

        path = tmp_path_factory.mktemp("service-index") / "images.tkindex"
        build_index(list(sources), backbone=backbone, output=path, num_workers=0)
        _BUILT["index"] = str(path)
    return _BUILT["index"]


def trained_model(tmp_path_factory, folder) -> str:
    """A real logistic-regression transfer model on ``folder`` (64 px, fast); built once."""
    if "model" not in _BUILT:
        from transferkit.train import fit

        path = tmp_path_factory.mktemp("service-model") / "fashion-logreg"
        fit(folder, backbone="efficientnet_lite0", strategy="logreg", image_size=64,
            output=path, num_workers=0, cache=False)
        _BUILT["model"] = str(path)
    return _BUILT["model"]


def trained_dense_models(tmp_path_factory, backbone) -> dict[str, str]:
    """A segmentation model and a localiser trained briefly (64 px, 2 epochs) on the drawn
    fixture, saved; built once. Also returns the fixture's test images folder."""
    if "dense" not in _BUILT:
        from transferkit.dense import load_boxes, load_segmentation_folder, write_fixture
        from transferkit.dense.localize import Localizer
        from transferkit.dense.segment import SegmentationModel

        root = tmp_path_factory.mktemp("service-dense")
        write_fixture(root / "data", n=16, size=64, n_val=4, n_test=4, seed=0)
        SegmentationModel(backbone, image_size=64, epochs=2, batch_size=8, augment=False,
                          seed=0).fit(load_segmentation_folder(root / "data" / "train",
                                                               binary=True)
                                      ).save(root / "segmenter")
        Localizer(backbone, image_size=64, epochs=2, augment_views=1, batch_size=16,
                  seed=0).fit(load_boxes(root / "data" / "train" / "boxes.csv")
                              ).save(root / "localizer")
        _BUILT["dense"] = {"segmenter": str(root / "segmenter"),
                           "localizer": str(root / "localizer"),
                           "images": str(root / "data" / "test" / "images")}
    return _BUILT["dense"]


def write_gallery(folder) -> None:
    """A minimal gallery the way ``transferkit gallery`` writes one."""
    folder.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2.6), dpi=80)
    ax.plot([8, 16, 32, 64], [0.62, 0.78, 0.87, 0.91], marker="o")
    ax.set(xlabel="kept dimensions", ylabel="precision@5", title="SVD compression")
    fig.tight_layout()
    fig.savefig(folder / "svd.png")
    plt.close(fig)
    pictures = {"svd": {"title": "SVD compression of embeddings", "command":
                        "transferkit gallery --only svd", "params": {},
                        "figures": [["svd.png", "precision@5 against kept dimensions"],
                                    ["gone.png", "a figure whose file is missing"]],
                        "numbers": {"dims": [8, 16], "precision_at_5": 0.91}, "seconds": 1.5}}
    (folder / "gallery.json").write_text(json.dumps({"pictures": pictures}))
    (folder / "index.html").write_text('<!doctype html><img src="svd.png">')
