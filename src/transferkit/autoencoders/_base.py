"""Shared behaviour of the autoencoders: input checks, metrics, codes as features, persistence.

Every autoencoder here is a scikit-learn transformer (``fit`` / ``transform`` give codes), so
it slots into a ``Pipeline`` in front of any classifier, and its codes can be wrapped as an
``Embeddings`` table for the search index.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from transferkit.errors import check_is_fitted
from transferkit.utils import atomic_path, read_manifest, write_manifest

FORMAT = "transferkit-autoencoder/1"
MANIFEST = "autoencoder.json"


def as_unit_images(X: Any, name: str = "X") -> np.ndarray:
    """uint8 0..255 or float 0..1 images, (N,H,W), (N,H,W,1) or flat (N,H*W) -> float32
    (N,H,W) in [0, 1]."""
    arr = np.asarray(X)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        side = int(round(np.sqrt(arr.shape[1])))
        if side * side != arr.shape[1]:
            raise ValueError(f"{name}: flat rows of {arr.shape[1]} values are not square images")
        arr = arr.reshape(len(arr), side, side)
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected grayscale images (N,H,W), got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    arr = arr.astype(np.float32)
    if arr.size and (arr.min() < -1e-6 or arr.max() > 1 + 1e-6):
        raise ValueError(f"{name}: float images must lie in [0, 1] (got {arr.min():.3g}.."
                         f"{arr.max():.3g}); pass uint8 for 0..255 data")
    return arr


def to_uint8(images: np.ndarray) -> np.ndarray:
    return (np.clip(images, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def load_gray_images(paths: Sequence[str | os.PathLike], size: int
                     ) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
    """Image files -> (kept paths, uint8 (N,size,size) grayscale, failures[(path, reason)])."""
    from PIL import Image

    from transferkit.data import try_load_images

    loaded, bad = try_load_images(paths)
    arrays = [np.asarray(img.convert("L").resize((size, size), Image.Resampling.BILINEAR))
              for _, img in loaded]
    stack = np.stack(arrays) if arrays else np.zeros((0, size, size), np.uint8)
    return [str(p) for p, _ in loaded], stack, [(e.path, e.reason) for e in bad]


class AutoencoderMixin(BaseEstimator, TransformerMixin):
    """Subclasses implement ``fit``, ``transform`` (codes) and ``inverse_transform``."""

    kind = "autoencoder"

    def reconstruct(self, X: Any) -> np.ndarray:
        """Images -> code -> images, float32 (N,H,W) in [0, 1]."""
        return self.inverse_transform(self.transform(X))

    def mse(self, X: Any, target: Any | None = None) -> float:
        """Mean squared reconstruction error per pixel, in [0, 1] pixel units.

        ``target`` is the clean image when ``X`` is a corrupted one (denoising)."""
        clean = as_unit_images(X if target is None else target)
        return float(np.mean((self.reconstruct(X) - clean) ** 2))

    def score(self, X: Any, y: Any = None) -> float:
        """Negative MSE: higher is better, as scikit-learn model selection expects."""
        return -self.mse(X)

    @property
    def code_size(self) -> int:
        raise NotImplementedError

    def compression_ratio(self) -> float:
        """Input values per code value (784 pixels / bottleneck for Fashion-MNIST)."""
        return float(np.prod(self.image_shape_)) / self.code_size

    def interpolate(self, a: Any, b: Any, steps: int = 8) -> np.ndarray:
        """Decode ``steps`` evenly spaced points on the segment between the codes of two
        images; returns uint8 (steps, H, W), first and last being the reconstructions."""
        pair = np.stack([as_unit_images(np.asarray(a)[None], "a")[0],
                         as_unit_images(np.asarray(b)[None], "b")[0]])
        codes = self.transform(pair)
        t = np.linspace(0.0, 1.0, max(2, steps), dtype=np.float32)[:, None]
        path = (1 - t) * codes[0] + t * codes[1]
        return to_uint8(self._decode_path(path, pair, t[:, 0]))

    def _decode_path(self, codes: np.ndarray, pair: np.ndarray, t: np.ndarray) -> np.ndarray:
        return self.inverse_transform(codes)

    # -- codes as features -------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """Identity recorded next to codes, so a search index refuses foreign queries."""
        params = {k: v for k, v in self.get_params().items() if _jsonable(v)}
        return {"name": f"autoencoder:{self.kind}", "arch": self.kind, "source": "transferkit",
                "weights_id": self.weights_id(), "num_features": self.code_size,
                "preprocessing": {"grayscale": True, "input_size": int(self.image_shape_[0]),
                                  "scale": "uint8/255"}, "params": params}

    def weights_id(self) -> str:
        import hashlib

        digest = hashlib.sha256()
        for key, value in sorted(self._state().items()):
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(value, dtype=np.float32).tobytes())
        return digest.hexdigest()[:16]

    def to_embeddings(self, X: Any, ids: Sequence[str] | None = None,
                      labels: Sequence | None = None):
        """Codes of ``X`` as a :class:`transferkit.features.Embeddings` table."""
        from transferkit.features import Embeddings

        codes = self.transform(X)
        ids = [f"#{i}" for i in range(len(codes))] if ids is None else [str(i) for i in ids]
        return Embeddings(ids, codes, self.spec(),
                          [str(v) for v in labels] if labels is not None else None)

    def embed_paths(self, paths: Sequence[str | os.PathLike], labels: Sequence | None = None):
        """Image files (any size/colour) -> grayscale at the training size -> codes table.
        Unreadable files are skipped and listed in ``failures``."""
        kept, images, failures = load_gray_images(paths, int(self.image_shape_[0]))
        keep = set(kept)
        kept_labels = None
        if labels is not None:
            kept_labels = [lab for p, lab in zip(map(str, paths), labels) if p in keep]
        emb = self.to_embeddings(images, kept, kept_labels)
        emb.failures = failures
        return emb

    # -- persistence ----------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        raise NotImplementedError

    def save(self, directory: str | os.PathLike) -> Path:
        """``weights.safetensors`` + ``autoencoder.json`` (params, metrics), written atomically."""
        from safetensors.numpy import save_file

        check_is_fitted(self, "image_shape_")
        directory = Path(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            save_file({k: np.ascontiguousarray(v) for k, v in self._state().items()},
                      str(tmp / "weights.safetensors"))
            write_manifest(tmp, MANIFEST, FORMAT, {
                "kind": self.kind, "spec": self.spec(),
                "params": {k: v for k, v in self.get_params().items() if _jsonable(v)},
                "image_shape": list(map(int, self.image_shape_)),
                "history": getattr(self, "history_", [])})
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> AutoencoderMixin:
        return load_autoencoder(directory, expected=cls)


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, list, tuple))


def load_autoencoder(directory: str | os.PathLike, expected: type | None = None
                     ) -> AutoencoderMixin:
    """Rebuild any saved autoencoder (PCA or convolutional) from its directory."""
    from safetensors.numpy import load_file

    from transferkit.autoencoders.conv import ConvAutoencoder
    from transferkit.autoencoders.pca import PCAAutoencoder

    directory = Path(directory)
    manifest = directory / MANIFEST
    meta = read_manifest(directory, MANIFEST, "autoencoder", FORMAT)
    classes = {"pca": PCAAutoencoder, "conv": ConvAutoencoder}
    if meta.get("kind") not in classes:
        raise ValueError(f"{manifest}: unknown autoencoder kind {meta.get('kind')!r}")
    cls = classes[meta["kind"]]
    if expected is not None and not issubclass(cls, expected):
        raise ValueError(f"{directory}: holds a {meta['kind']} autoencoder, not "
                         f"{expected.__name__}")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["params"].items()}
    model = cls(**params)
    model._set_state(load_file(str(directory / "weights.safetensors")), meta)
    model.image_shape_ = tuple(meta["image_shape"])
    model.history_ = meta.get("history", [])
    return model
