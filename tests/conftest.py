"""Shared fixtures: real weights, real photos, real Fashion-MNIST images. No mocks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TRANSFERKIT_QUIET", "1")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def lite0():
    """EfficientNet-Lite0 with ImageNet weights (loaded once per test session)."""
    from transferkit.backbones import create

    return create("efficientnet_lite0")


@pytest.fixture(scope="session")
def photos_dir(tmp_path_factory) -> Path:
    """scikit-image's bundled photos written as JPEG files (chelsea = cat, coffee = espresso)."""
    from transferkit.data import write_sample_photos

    folder = tmp_path_factory.mktemp("photos")
    write_sample_photos(folder)
    return folder


@pytest.fixture(scope="session")
def fashion_mini() -> Path:
    """Committed image folder: 12 Fashion-MNIST train images per class, 10 classes."""
    return FIXTURES / "fashion-mini"


@pytest.fixture(scope="session")
def cat_classes() -> set[str]:
    """ImageNet classes that count as 'a cat' for the bundled chelsea photo."""
    return {"tabby, tabby cat", "tiger cat", "Egyptian cat", "Persian cat",
            "Siamese cat, Siamese"}
