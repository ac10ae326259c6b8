"""The linear baseline: PCA by SVD is the best *linear* autoencoder for squared error, so any
non-linear autoencoder has to beat it at the same bottleneck to earn its training time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from transferkit.autoencoders._base import AutoencoderMixin, as_unit_images
from transferkit.errors import check_is_fitted


class PCAAutoencoder(AutoencoderMixin):
    """Encoder ``(x - mean_) @ components_.T``, decoder its transpose.

    ``n_components`` is the bottleneck size.
    """

    kind = "pca"

    def __init__(self, n_components: int = 32) -> None:
        self.n_components = n_components

    def fit(self, X: Any, y: Any = None) -> PCAAutoencoder:
        images = as_unit_images(X)
        flat = images.reshape(len(images), -1).astype(np.float64)
        if not 1 <= self.n_components <= min(flat.shape):
            raise ValueError(f"n_components must be in 1..{min(flat.shape)}, "
                             f"got {self.n_components}")
        self.image_shape_ = images.shape[1:]
        self.mean_ = flat.mean(axis=0)
        _, sing, vt = np.linalg.svd(flat - self.mean_, full_matrices=False)
        variance = sing ** 2 / max(1, len(flat) - 1)
        # all components are kept so mse_curve can sweep the bottleneck without refitting
        self.all_components_ = vt.astype(np.float32)
        self.all_variance_ = variance.astype(np.float32)
        self.components_ = self.all_components_[: self.n_components]
        self.explained_variance_ratio_ = (variance / variance.sum())[: self.n_components]
        self.mean_ = self.mean_.astype(np.float32)
        return self

    @property
    def code_size(self) -> int:
        return int(self.n_components)

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "components_")
        images = as_unit_images(X)
        return (images.reshape(len(images), -1) - self.mean_) @ self.components_.T

    def inverse_transform(self, codes: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "components_")
        flat = np.asarray(codes, np.float32) @ self.components_ + self.mean_
        return np.clip(flat, 0.0, 1.0).reshape(len(flat), *self.image_shape_)

    def mse_curve(self, X: Any, n_components: Sequence[int]) -> list[dict[str, float]]:
        """Reconstruction MSE of ``X`` and compression ratio for each bottleneck size."""
        images = as_unit_images(X)
        flat = images.reshape(len(images), -1)
        centred = flat - self.mean_
        pixels = flat.shape[1]
        rows = []
        for k in n_components:
            if not 1 <= k <= len(self.all_components_):
                raise ValueError(f"n_components {k} outside 1..{len(self.all_components_)}")
            comp = self.all_components_[:k]
            recon = np.clip(centred @ comp.T @ comp + self.mean_, 0.0, 1.0)
            rows.append({"n_components": int(k), "mse": float(np.mean((recon - flat) ** 2)),
                         "compression_ratio": pixels / k,
                         "explained_variance": float(self.all_variance_[:k].sum()
                                                     / self.all_variance_.sum())})
        return rows

    def _state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "components": self.all_components_,
                "variance": self.all_variance_}

    def _set_state(self, state: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.mean_ = state["mean"]
        self.all_components_ = state["components"]
        self.all_variance_ = state["variance"]
        self.components_ = self.all_components_[: self.n_components]
        ratio = self.all_variance_ / self.all_variance_.sum()
        self.explained_variance_ratio_ = ratio[: self.n_components]
