"""The file -> embedding job on Ray Data, so it scales from a laptop to a cluster unchanged.

Pipeline: file list -> ``map_batches`` decode + preprocess (CPU tasks, uint8 pixels) -> embed
in a pool of actors that each hold the model once (ONNX bytes for OpenVINO or ONNX Runtime, or
the torch Backbone) ->
rows collected on the driver into :class:`~transferkit.features.Embeddings`. Decoding and
preprocessing reuse the single-process code, so both paths give the same vectors; unreadable
files travel through the pipeline as reasons and come back in ``failures``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.backbones import Backbone, Preprocessing
from transferkit.data import DEFAULT_MAX_PIXELS
from transferkit.features import Embeddings, decode_or_reason, normalize_pixels, resolve_backbone
from transferkit.runtime import (
    ENGINES,
    OnnxBackbone,
    OpenVinoBackbone,
    choose_engine,
    choose_precision,
    compiled_runner,
    export_cached,
    make_runner,
    session_runner,
)
from transferkit.utils import available_cores

DECODE_MEMORY = 768 * 1024 ** 2  # a worker with torch imported + a batch of photos
MODEL_ENGINES = ("openvino", "onnx", "torch")  # what the actors can run


def connect(address: str | None = None, num_cpus: int | None = None) -> dict[str, float]:
    """Join the Ray cluster at ``address`` / ``RAY_ADDRESS``, or start a small local one.

    Returns the cluster's resources. A running connection is reused as is.
    """
    import ray

    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        options: dict[str, Any] = dict(include_dashboard=False, logging_level="warning",
                                       ignore_reinit_error=True)
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=num_cpus or available_cores(),
                     object_store_memory=512 * 1024 ** 2,
                     runtime_env={"env_vars": _worker_env()}, **options)
    return ray.cluster_resources()


def _worker_env() -> dict[str, str]:
    keep = ("TRANSFERKIT_QUIET", "TRANSFERKIT_CACHE", "TRANSFERKIT_THREADS")
    return {k: os.environ[k] for k in keep if k in os.environ}


def decode_batch(batch: dict[str, np.ndarray], preprocessing: dict[str, Any],
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, np.ndarray]:
    """Ray task: paths -> uint8 pixels; a bad file keeps its row with ``ok=False`` + reason."""
    prep = Preprocessing.from_dict(preprocessing)
    resize = prep.resize_crop()
    results = [decode_or_reason(str(p), prep, resize, max_pixels) for p in batch["path"]]
    size = prep.input_size
    pixels = np.zeros((len(results), size, size, 3), dtype=np.uint8)
    ok = np.zeros(len(results), dtype=bool)
    reasons = np.empty(len(results), dtype=object)
    for i, result in enumerate(results):
        if isinstance(result, str):
            reasons[i] = result
        else:
            pixels[i], ok[i], reasons[i] = result, True, ""
    return {"index": batch["index"], "pixels": pixels, "ok": ok, "reason": reasons}


class BatchEmbedder:
    """Ray actor: loads the model once, then embeds the decoded rows of each batch."""

    def __init__(self, engine: str, model: bytes | Backbone, preprocessing: dict[str, Any],
                 num_features: int, threads: int = 1, precision: str = "f32") -> None:
        self.prep = Preprocessing.from_dict(preprocessing)
        self.num_features = num_features
        # The same runners as the single-process path; ONNX arrives as bytes (no file here).
        if engine == "openvino":
            self.runner = compiled_runner(OpenVinoBackbone(model, precision, threads))
        elif engine == "onnx":
            self.runner = session_runner(OnnxBackbone(model, threads=threads))
        else:
            self.runner = make_runner(engine, model, threads, precision=precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = np.asarray(batch["ok"], dtype=bool)
        vectors = np.zeros((len(ok), self.num_features), dtype=np.float32)
        if ok.any():
            x = normalize_pixels(batch["pixels"][ok], self.prep, self.runner.channels_last)
            vectors[ok] = self.runner.embed(x)
        return {"index": batch["index"], "embedding": vectors, "ok": ok,
                "reason": batch["reason"]}


def embed_paths_ray(paths: Sequence[str | os.PathLike],
                    backbone: str | Backbone = "efficientnet_lite0", batch_size: int = 32,
                    image_size: int | None = None, labels: Sequence | None = None,
                    engine: str = "auto", actors: int | None = None, cpus_per_actor: int = 1,
                    address: str | None = None, show_progress: bool = True,
                    max_pixels: int = DEFAULT_MAX_PIXELS,
                    precision: str = "f32") -> Embeddings:
    """``embed_paths`` through Ray Data: same vectors, same skip-and-report of bad files.

    ``address`` (or ``RAY_ADDRESS``) names the cluster; otherwise a local one is started.
    Every worker must see the files at the same paths (shared storage) and have transferkit
    installed. ``actors`` model replicas (default: 3/4 of the cluster's CPUs, the rest
    decode), each using ``cpus_per_actor`` threads. ``engine``: ``openvino``, ``onnx``,
    ``torch`` or ``auto``, and ``precision``, follow the same rules as single-process
    embedding; the precision is resolved here, once, so every actor runs the same arithmetic
    (an actor on a node without bf16 fails rather than mixing f32 and bf16 vectors).
    """
    import ray

    model = resolve_backbone(backbone, image_size)
    paths = [Path(p) for p in paths]
    engine = choose_engine(engine, model, len(paths), precision)
    if engine not in MODEL_ENGINES:
        raise ValueError(f"ray engine runs the model with {', '.join(MODEL_ENGINES)}, "
                         f"got {engine!r}")
    precision = choose_precision(engine, precision)
    runtime = {"engine": f"ray/{engine}", "precision": precision}
    if not paths:
        return Embeddings([], np.zeros((0, model.num_features), np.float32), model.spec(),
                          runtime=runtime)
    payload = export_cached(model).read_bytes() if engine != "torch" else model.eval()
    resources = connect(address)
    cpus = int(resources.get("CPU", 1))
    if actors is None:
        actors = max(1, math.floor(cpus * 0.75 / cpus_per_actor))
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = show_progress and os.environ.get("TRANSFERKIT_QUIET") != "1"
    blocks = max(1, min(len(paths) // batch_size, 4 * cpus, 1000))
    items = [{"index": i, "path": str(p)} for i, p in enumerate(paths)]
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    # The decode tasks' own memory reservation (room for a batch of full-size photos) also
    # keeps them separate: with identical resources Ray fuses decoding into the model actors,
    # where it would run in series with inference on the actors' cores only.
    ds = ds.map_batches(decode_batch, fn_kwargs={"preprocessing": model.preprocessing.to_dict(),
                                                   "max_pixels": max_pixels},
                        batch_size=batch_size, batch_format="numpy", num_cpus=1,
                        memory=DECODE_MEMORY)
    ds = ds.map_batches(BatchEmbedder, fn_constructor_kwargs=dict(
        engine=engine, model=payload, preprocessing=model.preprocessing.to_dict(),
        num_features=model.num_features, threads=cpus_per_actor, precision=precision),
        batch_size=batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus_per_actor)
    emb = _collect(ds, paths, model.spec(), model.num_features, labels)
    emb.runtime = runtime
    return emb


def _collect(ds, paths: list[Path], spec: dict[str, Any], dim: int,
             labels: Sequence | None) -> Embeddings:
    index_parts, vector_parts, ok_parts, reason_parts = [], [], [], []
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        index_parts.append(np.asarray(batch["index"], dtype=np.int64))
        vector_parts.append(np.asarray(batch["embedding"], dtype=np.float32).reshape(-1, dim))
        ok_parts.append(np.asarray(batch["ok"], dtype=bool))
        reason_parts.append(np.asarray(batch["reason"], dtype=object))
    index = np.concatenate(index_parts)
    order = np.argsort(index, kind="stable")
    index, ok = index[order], np.concatenate(ok_parts)[order]
    vectors, reasons = np.concatenate(vector_parts)[order], np.concatenate(reason_parts)[order]
    if len(index) != len(paths) or not np.array_equal(index, np.arange(len(paths))):
        raise RuntimeError(f"ray pipeline returned {len(index)} rows for {len(paths)} files")
    kept = np.flatnonzero(ok)
    failures = [(str(paths[i]), str(reasons[i])) for i in np.flatnonzero(~ok)]
    kept_labels = [labels[i] for i in kept] if labels is not None else None
    return Embeddings([str(paths[i]) for i in kept], vectors[kept], spec, kept_labels, failures)


ENGINES.register("ray", embed_paths_ray, runs="files", available=lambda: _ray_installed(),
                 extra="distributed", precisions=("f32", "bf16"),  # bf16 on openvino actors
                 description="Ray Data: decode tasks + model actors, local or a cluster "
                             "(RAY_ADDRESS)")


def _ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None
