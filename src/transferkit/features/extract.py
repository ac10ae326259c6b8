"""Images -> embeddings with a frozen backbone: files (parallel decode, batching,
skip-and-report), PIL images and in-memory arrays, each through one engine runner."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

from transferkit.backbones import Backbone, create
from transferkit.data import DEFAULT_MAX_PIXELS, scan_images, to_rgb
from transferkit.features.embeddings import Embeddings
from transferkit.features.pipeline import iter_pixel_batches, normalize_pixels
from transferkit.runtime import ENGINES, choose_engine, make_runner, run_in_order, runs_files
from transferkit.utils import decode_threads, progress, torch_threads


def resolve_backbone(backbone: str | Backbone, image_size: int | None = None) -> Backbone:
    """A Backbone from a name or object; ``image_size`` gives a copy, never edits the caller's."""
    if isinstance(backbone, Backbone):
        return backbone.with_image_size(image_size)
    return create(backbone, image_size=image_size)


def embed_paths(paths: Sequence[str | os.PathLike], backbone: str | Backbone = "efficientnet_lite0",
                batch_size: int = 32, num_workers: int | None = None,
                image_size: int | None = None, labels: Sequence | None = None,
                show_progress: bool = True, engine: str = "auto",
                threads: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                precision: str = "f32") -> Embeddings:
    """Embed image files; unreadable ones are skipped and listed in ``failures``.

    ``engine``: ``"openvino"`` (OpenVINO), ``"onnx"`` (ONNX Runtime), ``"torch"`` (eager,
    channels_last), ``"ray"`` (Ray Data on the cluster named by ``RAY_ADDRESS`` or a local
    one, when ``transferkit[distributed]`` is installed) or ``"auto"`` (see
    :func:`transferkit.runtime.choose_engine`). ``precision``: ``"f32"`` (PyTorch's vectors),
    ``"bf16"`` (OpenVINO on a CPU with AVX512_BF16/AMX: faster, vectors move slightly) or
    ``"auto"`` (bf16 where it exists); the result's ``runtime`` records what ran.
    ``num_workers`` decode threads (default: one per core) run ahead of the model; ``threads``
    sets the model's intra-op threads (default: all cores). Images over ``max_pixels``
    decoded pixels (after JPEG DCT scaling) are skipped before decoding.
    """
    model = resolve_backbone(backbone, image_size)
    paths = [Path(p) for p in paths]
    engine = choose_engine(engine, model, len(paths), precision)
    if runs_files(engine):
        return ENGINES.get(engine).factory(paths, model, batch_size=batch_size, labels=labels,
                                           show_progress=show_progress, max_pixels=max_pixels,
                                           precision=precision)
    n_batches = -(-len(paths) // batch_size)
    runner = make_runner(engine, model, threads, n_batches, precision)
    prep = model.preprocessing
    workers = decode_threads(num_workers)
    batches = iter_pixel_batches(paths, prep, batch_size, workers, max_pixels=max_pixels)
    if show_progress:
        batches = progress(batches, desc=f"embed ({model.name}, {engine} {runner.precision})",
                           total=n_batches, unit="batch")
    failures: list[tuple[str, str]] = []

    def model_inputs():
        for batch in batches:
            failures.extend((str(paths[i]), reason) for i, reason in batch.failures)
            if batch.pixels is not None:
                yield batch.indices, batch.pixels

    def normalize_and_run(pixels: np.ndarray) -> np.ndarray:
        # In the model's threads: each normalises its own part of the batch.
        return runner.embed(normalize_pixels(pixels, prep, runner.channels_last))

    kept_idx: list[int] = []
    chunks: list[np.ndarray] = []
    # ONNX Runtime does the heavy lifting; torch only normalises, one thread per caller, so
    # no OpenMP team spins on cores the decoders and the model need.
    with torch_threads(1) if engine != "torch" else nullcontext(), _eval_mode(model):
        for indices, vectors in run_in_order(normalize_and_run, model_inputs(),
                                             runner.parallel):
            chunks.append(vectors)
            kept_idx.extend(indices)
    kept_labels = [labels[i] for i in kept_idx] if labels is not None else None
    return Embeddings([str(paths[i]) for i in kept_idx], _stack(chunks, model), model.spec(),
                      kept_labels, failures, runtime=runner.describe())


def embed_folder(folder: str | os.PathLike | Sequence[str | os.PathLike],
                 backbone: str | Backbone = "efficientnet_lite0", **kwargs) -> Embeddings:
    """Embed every image under ``folder`` (or several); files that are not images are
    listed in ``ignored``, unreadable ones in ``failures`` (see :func:`embed_paths`)."""
    scan = scan_images(folder)
    if not scan.images:
        raise FileNotFoundError(f"{folder}: no image files found"
                                f"{_ignored_note(scan.ignored)}")
    result = embed_paths(scan.images, backbone, **kwargs)
    result.ignored = [str(p) for p in scan.ignored]
    return result


def _ignored_note(ignored: Sequence[Path]) -> str:
    from transferkit.data import describe_ignored

    return f" ({describe_ignored(ignored)})" if ignored else ""


def embed_images(images: Sequence, backbone: str | Backbone = "efficientnet_lite0",
                 batch_size: int = 32, engine: str = "torch",
                 threads: int | None = None, precision: str = "f32") -> np.ndarray:
    """PIL images (any mode) -> (N, num_features) embeddings, preprocessed exactly like files.

    The in-memory twin of :func:`embed_paths` for images already decoded (uploads, augmented
    or preloaded training images). ``engine`` defaults to ``torch``: few images, no export;
    ``precision`` as in :func:`embed_paths`.
    """
    model = resolve_backbone(backbone)
    runner = _runner(engine, model, len(images), threads, precision)
    chunks = []
    with _eval_mode(model):
        for start in range(0, len(images), batch_size):
            batch = preprocess_images([to_rgb(im) for im in images[start:start + batch_size]],
                                      model)
            chunks.append(runner.embed(batch))
    return _stack(chunks, model)


def embed_arrays(images: np.ndarray, backbone: str | Backbone = "efficientnet_lite0",
                 batch_size: int = 64, image_size: int | None = None,
                 show_progress: bool = True, engine: str = "auto",
                 threads: int | None = None, precision: str = "f32") -> np.ndarray:
    """Embed in-memory uint8 images (N,H,W) or (N,H,W,3), e.g. Fashion-MNIST arrays
    (see :meth:`~transferkit.backbones.Preprocessing.arrays_to_batch` for the resize);
    ``engine`` and ``precision`` as in :func:`embed_paths`."""
    model = resolve_backbone(backbone, image_size)
    runner = _runner(engine, model, len(images), threads, precision)
    steps = range(0, len(images), batch_size)
    if show_progress:
        steps = progress(steps, desc="embed arrays", unit="batch")
    chunks = []
    with _eval_mode(model):
        for start in steps:
            batch = model.preprocessing.arrays_to_batch(images[start:start + batch_size])
            chunks.append(runner.embed(batch.contiguous(memory_format=torch.channels_last)
                                       if runner.channels_last else batch.contiguous()))
    return _stack(chunks, model)


def _runner(engine: str, model: Backbone, n_images: int, threads: int | None,
            precision: str):
    """The batch runner of an in-memory job: one call per batch, on all the model's cores."""
    return make_runner(choose_engine(engine, model, n_images, precision), model, threads,
                       1, precision)


def preprocess_images(images, backbone: Backbone) -> torch.Tensor:
    """PIL images -> one normalised batch, exactly as the file pipeline does it."""
    transform = backbone.preprocessing.eval_transform()
    return torch.stack([transform(img) for img in images])


@contextmanager
def _eval_mode(backbone: Backbone) -> Iterator[None]:
    """Run a block with the backbone in eval mode, then restore its training flag."""
    was_training = backbone.model.training
    backbone.eval()
    try:
        yield
    finally:
        backbone.model.train(was_training)


def _stack(chunks: list[np.ndarray], model: Backbone) -> np.ndarray:
    return np.concatenate(chunks) if chunks else np.zeros((0, model.num_features), np.float32)
