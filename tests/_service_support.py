"""Helpers for the service tests: a real uvicorn server on a free loopback port, test files."""

from __future__ import annotations

import io

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
