"""Engines: what runs a backbone on a batch, behind one interface and one registry.

``torch`` (eager, channels_last) and ``onnx`` (ONNX Runtime, exported once and cached) are
registered here; other packages add theirs to :data:`ENGINES` (``transferkit.distributed``
adds ``ray``, an engine that runs whole file jobs, through the ``transferkit.engines`` entry
point), so the code that embeds never imports them. One :func:`choose_engine` decides what
``"auto"`` means for every caller.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from transferkit.errors import InvalidOptionError
from transferkit.runtime.onnx_cache import is_cached, onnx_available, onnx_backbone
from transferkit.runtime.onnx_session import OnnxBackbone
from transferkit.utils import Registry, inference_threads, set_torch_threads

T = TypeVar("T")
# Below this many images an ONNX export that is not cached yet (a few seconds) costs more than
# it saves; "auto" then stays with PyTorch.
AUTO_ONNX_MIN_IMAGES = 64


@dataclass(frozen=True)
class Runner:
    """A backbone ready to embed normalised (N, 3, S, S) batches.

    ``channels_last``: the memory layout the engine wants its input in. ``parallel``: how many
    parts of one batch to run at once (see :func:`run_in_order`).
    """

    engine: str
    embed: Callable[[torch.Tensor], np.ndarray]
    channels_last: bool = False
    parallel: int = 1


ENGINES: Registry[Any] = Registry("engine", entry_point_group="transferkit.engines")


@ENGINES.register("torch", description="eager PyTorch on the CPU, channels_last",
                  runs="batches", available=lambda: True)
def torch_runner(backbone, threads: int | None = None, n_batches: int = 1) -> Runner:
    """Eager PyTorch; ``threads`` sets torch's intra-op threads (default: leave them)."""
    if threads is not None:
        set_torch_threads(threads)
    backbone.eval().to(memory_format=torch.channels_last)

    def embed(batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            x = batch.contiguous(memory_format=torch.channels_last)
            return backbone.embed(x).float().numpy()

    return Runner("torch", embed, channels_last=True)


@ENGINES.register("onnx", description="ONNX Runtime (CPU), exported once and cached; parity "
                  "tested against PyTorch", runs="batches", available=onnx_available)
def onnx_runner(backbone, threads: int | None = None, n_batches: int = 1) -> Runner:
    """ONNX Runtime; on a long job one single-threaded session call per core, each on a part
    of the batch, instead of splitting every operator across cores: no per-operator barrier,
    so a core borrowed by a decode thread (or another process) does not stall the others.
    A model that does not export falls back to PyTorch with a warning."""
    cores = inference_threads(threads)
    parallel = cores if cores > 1 and n_batches >= 2 * cores else 1
    try:
        session = onnx_backbone(backbone, threads=1 if parallel > 1 else cores)
    except Exception as exc:  # noqa: BLE001 - exotic models may not export; say so
        warnings.warn(f"{backbone.name}: ONNX export failed ({exc}); using PyTorch",
                      stacklevel=3)
        return torch_runner(backbone, threads)
    return session_runner(session, parallel)


def session_runner(session: OnnxBackbone, parallel: int = 1) -> Runner:
    """A :class:`Runner` over an already-open ONNX Runtime session (e.g. from bytes)."""
    return Runner("onnx", lambda batch: session.embed(batch).numpy(), False, parallel)


def engine_available(name: str) -> bool:
    entry = ENGINES.get(name)
    available = entry.metadata.get("available")
    return bool(available()) if callable(available) else True


def choose_engine(engine: str, backbone, n_images: int) -> str:
    """Resolve ``"auto"``: ONNX Runtime when installed (several times faster on CPU), unless
    the job is too small to pay for a first export; check that a named engine can run."""
    if engine == "auto":
        if not engine_available("onnx"):
            return "torch"
        return "onnx" if n_images >= AUTO_ONNX_MIN_IMAGES or is_cached(backbone) else "torch"
    if engine not in ENGINES:
        raise InvalidOptionError(f"engine must be one of auto, {', '.join(ENGINES.list())},"
                                 f" got {engine!r}")
    if not engine_available(engine):
        extra = ENGINES.get(engine).metadata.get("extra", "fast")
        raise InvalidOptionError(f"engine {engine!r} is not installed here: pip install "
                                 f"'transferkit[{extra}]'")
    return engine


def runs_files(engine: str) -> bool:
    """True for engines that run a whole file job themselves (Ray) rather than batches."""
    return ENGINES.get(engine).metadata.get("runs") == "files"


def make_runner(engine: str, backbone, threads: int | None = None,
                n_batches: int = 1) -> Runner:
    """The :class:`Runner` of a (resolved, batch-running) ``engine`` for ``backbone``."""
    if runs_files(engine):
        raise InvalidOptionError(f"engine {engine!r} embeds files; use onnx or torch here")
    return ENGINES.create(engine, backbone=backbone, threads=threads, n_batches=n_batches)


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
