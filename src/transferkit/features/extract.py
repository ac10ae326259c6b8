"""Files -> embeddings with a frozen backbone: parallel decode, batching, skip-and-report."""

from __future__ import annotations

import copy
import os
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from transferkit.backbones import Backbone, create
from transferkit.data import list_images
from transferkit.features.embeddings import Embeddings
from transferkit.features.pipeline import iter_pixel_batches, normalize_pixels
from transferkit.utils import progress

T = TypeVar("T")
ENGINES = ("auto", "torch", "onnx", "ray")
# Below this many images an ONNX export that is not cached yet (a few seconds) costs more than
# it saves; "auto" then stays with PyTorch.
AUTO_ONNX_MIN_IMAGES = 64


def resolve_backbone(backbone: str | Backbone, image_size: int | None = None) -> Backbone:
    """A Backbone from a name or object; ``image_size`` gives a copy, never edits the caller's."""
    if isinstance(backbone, Backbone):
        if image_size is not None:
            backbone = copy.copy(backbone)  # shares the weights, owns its preprocessing
            backbone.with_preprocessing(backbone.preprocessing.with_size(image_size, 1.0))
        return backbone
    return create(backbone, image_size=image_size)


def default_workers() -> int:
    """Decode threads: one per core (they overlap with the model, which uses the same cores)."""
    from transferkit.inference import decode_threads

    return decode_threads()


def choose_engine(engine: str, backbone: Backbone, n_images: int) -> str:
    """Resolve ``"auto"``: ONNX Runtime when installed (several times faster on CPU, parity
    tested against PyTorch), unless the job is too small to pay for a first export."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    from transferkit.inference import is_cached, onnx_available

    if engine == "onnx" and not onnx_available():
        raise ValueError("engine 'onnx' needs onnxruntime and onnx: pip install "
                         "'transferkit[fast]'")
    if engine != "auto":
        return engine
    if not onnx_available():
        return "torch"
    return "onnx" if n_images >= AUTO_ONNX_MIN_IMAGES or is_cached(backbone) else "torch"


def embedder(model: Backbone, engine: str, threads: int | None = None, n_batches: int = 1
             ) -> tuple[Callable[[torch.Tensor], np.ndarray], bool, int]:
    """(batch -> vectors function, wants channels_last, batches to run at once).

    ONNX Runtime on a long job runs one single-threaded session call per core, each on a part
    of the batch, instead of splitting every operator across cores: no per-operator barrier,
    so a core borrowed by a decode thread (or another process) does not stall the others.
    """
    from transferkit.inference import inference_threads

    cores = inference_threads(threads)
    if engine == "onnx":
        from transferkit.inference import onnx_backbone

        parallel = cores if cores > 1 and n_batches >= 2 * cores else 1
        try:
            session = onnx_backbone(model, threads=1 if parallel > 1 else cores)
            return (lambda batch: session.embed(batch).numpy()), False, parallel
        except Exception as exc:  # noqa: BLE001 - exotic models may not export; say so
            warnings.warn(f"{model.name}: ONNX export failed ({exc}); using PyTorch",
                          stacklevel=3)
    if threads is not None:
        from transferkit.inference import set_torch_threads

        set_torch_threads(threads)
    model.to(memory_format=torch.channels_last)

    def run(batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return model.embed(batch.contiguous(memory_format=torch.channels_last)).float().numpy()

    return run, True, 1


def run_in_order(run: Callable[[T], np.ndarray], items: Iterable[tuple[Any, T]],
                 parallel: int = 1) -> Iterator[tuple[Any, np.ndarray]]:
    """``(key, run(x))`` for each ``(key, x)`` in input order.

    With ``parallel`` > 1 each batch is split into that many parts run at once, and the next
    batch is queued before the previous one is collected: every core stays busy, including
    on the last batch of a job.
    """
    if parallel <= 1:
        for key, x in items:
            yield key, run(x)
        return
    with ThreadPoolExecutor(parallel, thread_name_prefix="transferkit-model") as pool:
        pending: deque = deque()
        for key, x in items:
            step = -(-len(x) // parallel)
            parts = [x[start:start + step] for start in range(0, len(x), step)]
            pending.append((key, [pool.submit(run, p) for p in parts]))
            while len(pending) > 1:
                done_key, futures = pending.popleft()
                yield done_key, np.concatenate([f.result() for f in futures])
        while pending:
            done_key, futures = pending.popleft()
            yield done_key, np.concatenate([f.result() for f in futures])


def embed_paths(paths: Sequence[str | os.PathLike], backbone: str | Backbone = "efficientnet_lite0",
                batch_size: int = 32, num_workers: int | None = None,
                image_size: int | None = None, labels: Sequence | None = None,
                show_progress: bool = True, engine: str = "auto",
                threads: int | None = None) -> Embeddings:
    """Embed image files; unreadable ones are skipped and listed in ``failures``.

    ``engine``: ``"onnx"`` (ONNX Runtime), ``"torch"`` (eager, channels_last), ``"ray"`` (Ray
    Data on the cluster named by ``RAY_ADDRESS`` or a local one) or ``"auto"`` (see
    :func:`choose_engine`). ``num_workers`` decode threads (default: one per core) run ahead
    of the model; ``threads`` sets the model's intra-op threads (default: all cores).
    """
    model = resolve_backbone(backbone, image_size)
    paths = [Path(p) for p in paths]
    engine = choose_engine(engine, model, len(paths))
    if engine == "ray":
        from transferkit.distributed import embed_paths_ray

        return embed_paths_ray(paths, model, batch_size=batch_size, labels=labels,
                               show_progress=show_progress)
    was_training = model.model.training
    model.eval()
    n_batches = -(-len(paths) // batch_size)
    run, channels_last, parallel = embedder(model, engine, threads, n_batches)
    prep = model.preprocessing
    workers = default_workers() if num_workers is None else num_workers
    kept_idx: list[int] = []
    chunks: list[np.ndarray] = []
    failures: list[tuple[str, str]] = []
    batches = iter_pixel_batches(paths, prep, batch_size, workers)
    if show_progress:
        batches = progress(batches, desc=f"embed ({model.name}, {engine})", total=n_batches,
                           unit="batch")

    def model_inputs():
        for batch in batches:
            failures.extend((str(paths[i]), reason) for i, reason in batch.failures)
            if batch.pixels is not None:
                yield batch.indices, batch.pixels

    def normalize_and_run(pixels: np.ndarray) -> np.ndarray:
        # In the model's threads: each normalises its own part of the batch.
        return run(normalize_pixels(pixels, prep, channels_last))

    from transferkit.inference import torch_threads

    # ONNX Runtime does the heavy lifting; torch only normalises, one thread per caller, so
    # no OpenMP team spins on cores the decoders and the model need.
    with torch_threads(1) if engine == "onnx" else nullcontext():
        try:
            for indices, vectors in run_in_order(normalize_and_run, model_inputs(), parallel):
                chunks.append(vectors)
                kept_idx.extend(indices)
        finally:
            model.model.train(was_training)
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, model.num_features), np.float32)
    kept_labels = [labels[i] for i in kept_idx] if labels is not None else None
    return Embeddings([str(paths[i]) for i in kept_idx], vectors, model.spec(),
                      kept_labels, failures)


def embed_folder(folder: str | os.PathLike, backbone: str | Backbone = "efficientnet_lite0",
                 **kwargs) -> Embeddings:
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(f"{folder}: no image files found")
    return embed_paths(files, backbone, **kwargs)


def embed_arrays(images: np.ndarray, backbone: str | Backbone = "efficientnet_lite0",
                 batch_size: int = 64, image_size: int | None = None,
                 show_progress: bool = True, engine: str = "auto",
                 threads: int | None = None) -> np.ndarray:
    """Embed in-memory uint8 images (N,H,W) or (N,H,W,3), e.g. Fashion-MNIST arrays."""
    model = resolve_backbone(backbone, image_size)
    engine = choose_engine(engine, model, len(images))
    if engine == "ray":
        raise ValueError("engine 'ray' embeds files; use 'onnx' or 'torch' for arrays")
    was_training = model.model.training
    model.eval()
    run, channels_last, _ = embedder(model, engine, threads)
    size = model.preprocessing.input_size
    out = []
    steps = range(0, len(images), batch_size)
    try:
        for start in (progress(steps, desc="embed arrays", unit="batch") if show_progress
                      else steps):
            batch = torch.from_numpy(np.asarray(images[start:start + batch_size])).float() / 255.0
            batch = batch.unsqueeze(1).expand(-1, 3, -1, -1) if batch.ndim == 3 \
                else batch.permute(0, 3, 1, 2)
            batch = torch.nn.functional.interpolate(batch, size=(size, size), mode="bilinear",
                                                    align_corners=False, antialias=True)
            batch = model.preprocessing.normalize(batch)
            out.append(run(batch.contiguous(memory_format=torch.channels_last)
                           if channels_last else batch.contiguous()))
    finally:
        model.model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, model.num_features), np.float32)


def preprocess_images(images, backbone: Backbone) -> torch.Tensor:
    """PIL images -> one normalised batch, exactly as the file pipeline does it."""
    transform = backbone.preprocessing.eval_transform()
    return torch.stack([transform(img) for img in images])
