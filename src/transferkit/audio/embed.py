"""Clips -> the same ``Embeddings`` parquet table images and texts use (bad files listed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from transferkit.audio.encoders import AudioEncoder
from transferkit.audio.io import list_audio, try_load_clips
from transferkit.audio.registry import create_audio_encoder


def resolve_encoder(encoder: str | AudioEncoder) -> AudioEncoder:
    return create_audio_encoder(encoder) if isinstance(encoder, str) else encoder


def embed_clips(paths: Sequence[str | os.PathLike], encoder: str | AudioEncoder = "logmel",
                batch: int = 64) -> tuple[list[Path], np.ndarray, list[tuple[str, str]]]:
    """(embedded paths, (N, dim) rows, (path, reason) of refused files), ``batch`` clips
    decoded at a time so memory stays flat."""
    from transferkit.utils import progress

    encoder = resolve_encoder(encoder)
    good, chunks, failures = [], [np.zeros((0, encoder.dim), np.float32)], []
    starts = range(0, len(paths), batch)
    for start in progress(starts, desc=f"embed audio ({encoder.name})", unit="batch"):
        loaded, clips, failed = try_load_clips(paths[start:start + batch])
        good += loaded
        failures += failed
        if clips:
            chunks.append(encoder.transform(clips))
    return good, np.concatenate(chunks), failures


def embed_audio(source: str | os.PathLike, encoder: str | AudioEncoder = "logmel"):
    """Every clip under a folder (or one file) -> :class:`~transferkit.features.Embeddings`;
    when the folder has class sub-folders, their names become the labels."""
    from transferkit.features import Embeddings

    source = Path(source)
    encoder = resolve_encoder(encoder)
    paths = list_audio(source)
    if not paths:
        raise ValueError(f"{source}: no audio files ({', '.join(_extensions())})")
    good, vectors, failures = embed_clips(paths, encoder)
    labels = None
    if source.is_dir() and all(p.parent != source for p in good) and good:
        labels = [p.relative_to(source).parts[0] for p in good]
    return Embeddings([str(p) for p in good], vectors, encoder.spec(), labels, failures)


def _extensions() -> tuple[str, ...]:
    from transferkit.audio.io import AUDIO_EXTENSIONS

    return AUDIO_EXTENSIONS
