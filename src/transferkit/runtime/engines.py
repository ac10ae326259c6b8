"""Engines: what runs a backbone on a batch, behind one interface and one registry.

``torch`` (eager, channels_last), ``onnx`` (ONNX Runtime, exported once and cached) and
``openvino`` (the same export compiled by OpenVINO, f32 or bf16) are registered here; other
packages add theirs to :data:`ENGINES` (``transferkit.distributed`` adds ``ray``, an engine
that runs whole file jobs, through the ``transferkit.engines`` entry point), so the code that
embeds never imports them. One :func:`choose_engine` decides what ``"auto"`` means (engine
and precision) for every caller.
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
from transferkit.runtime.openvino_engine import (
    OPENVINO_PRECISIONS,
    OpenVinoBackbone,
    openvino_available,
    openvino_backbone,
)
from transferkit.runtime.precision import check_precision, cpu_has_bf16, resolve_precision
from transferkit.utils import Registry, inference_threads, set_torch_threads

T = TypeVar("T")
# Below this many images an ONNX export that is not cached yet (a few seconds) costs more than
# it saves; "auto" then stays with PyTorch.
AUTO_ONNX_MIN_IMAGES = 64
# What "auto" prefers, fastest first, among engines that run f32 with PyTorch's outputs
# (docs/speed.md has the measurements behind the order).
AUTO_ORDER = ("openvino", "onnx")


@dataclass(frozen=True)
class Runner:
    """A backbone ready to embed normalised (N, 3, S, S) batches.

    ``channels_last``: the memory layout the engine wants its input in. ``parallel``: how many
    parts of one batch to run at once (see :func:`run_in_order`). ``precision``: the
    arithmetic it really runs (``f32`` or ``bf16``), for reports and embeddings metadata.
    """

    engine: str
    embed: Callable[[torch.Tensor], np.ndarray]
    channels_last: bool = False
    parallel: int = 1
    precision: str = "f32"

    def describe(self) -> dict[str, str]:
        """``{"engine", "precision"}``: what an embeddings table records about its maker."""
        return {"engine": self.engine, "precision": self.precision}


ENGINES: Registry[Any] = Registry("engine", entry_point_group="transferkit.engines")


@ENGINES.register("torch", description="eager PyTorch on the CPU, channels_last",
                  runs="batches", available=lambda: True, precisions=("f32",))
def torch_runner(backbone, threads: int | None = None, n_batches: int = 1,
                 precision: str = "f32") -> Runner:
    """Eager PyTorch; ``threads`` sets torch's intra-op threads (default: leave them)."""
    resolve_precision(precision, "torch", ("f32",))
    if threads is not None:
        set_torch_threads(threads)
    # The layout change makes new weight tensors: made under a caller's inference_mode they
    # would be inference tensors, and the (often shared) backbone could never train again.
    with torch.inference_mode(False):
        backbone.eval().to(memory_format=torch.channels_last)

    def embed(batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            x = batch.contiguous(memory_format=torch.channels_last)
            return backbone.embed(x).float().numpy()

    return Runner("torch", embed, channels_last=True)


@ENGINES.register("onnx", description="ONNX Runtime (CPU), exported once and cached; parity "
                  "tested against PyTorch", runs="batches", available=onnx_available,
                  precisions=("f32",))
def onnx_runner(backbone, threads: int | None = None, n_batches: int = 1,
                precision: str = "f32") -> Runner:
    """ONNX Runtime; on a long job one single-threaded session call per core, each on a part
    of the batch, instead of splitting every operator across cores: no per-operator barrier,
    so a core borrowed by a decode thread (or another process) does not stall the others.
    A model that does not export falls back to PyTorch with a warning."""
    resolve_precision(precision, "onnx", ("f32",))
    cores = inference_threads(threads)
    parallel = _parts_per_batch(cores, n_batches)
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


@ENGINES.register("openvino", description="OpenVINO (CPU) on the cached ONNX export: f32 "
                  "(PyTorch's outputs) or bf16 (CPUs with AVX512_BF16/AMX)", runs="batches",
                  available=openvino_available, extra="fast", precisions=OPENVINO_PRECISIONS)
def openvino_runner(backbone, threads: int | None = None, n_batches: int = 1,
                    precision: str = "f32") -> Runner:
    """OpenVINO; on a long job one stream per core, each running a part of the batch (the
    same split as the onnx engine), else one request on all cores. A model that does not
    export falls back to PyTorch with a warning when f32 was asked for (same vectors)."""
    cores = inference_threads(threads)
    streams = _parts_per_batch(cores, n_batches)
    resolved = choose_precision("openvino", precision)
    try:
        return compiled_runner(openvino_backbone(backbone, resolved, cores, streams))
    except Exception as exc:  # noqa: BLE001 - exotic models may not export; say so
        if resolved != "f32":
            raise
        warnings.warn(f"{backbone.name}: ONNX export or OpenVINO compile failed ({exc}); "
                      f"using PyTorch", stacklevel=3)
        return torch_runner(backbone, threads)


def compiled_runner(model: OpenVinoBackbone) -> Runner:
    """A :class:`Runner` over an already-compiled OpenVINO model (e.g. from ONNX bytes)."""
    return Runner("openvino", lambda batch: model.embed(batch).numpy(), False, model.streams,
                  model.precision)


def _parts_per_batch(cores: int, n_batches: int) -> int:
    # One part per core once a job has at least two batches per core to keep them all busy.
    return cores if cores > 1 and n_batches >= 2 * cores else 1


def engine_available(name: str) -> bool:
    entry = ENGINES.get(name)
    available = entry.metadata.get("available")
    return bool(available()) if callable(available) else True


def engine_precisions(name: str) -> tuple[str, ...]:
    """The precisions engine ``name`` runs (``("f32",)`` unless its entry says more)."""
    return tuple(ENGINES.get(name).metadata.get("precisions", ("f32",)))


def choose_engine(engine: str, backbone, n_images: int, precision: str = "f32") -> str:
    """Resolve ``"auto"`` and check that the engine can run here, at ``precision``.

    ``auto``: bf16 (asked for, or ``auto`` on a CPU that has it) needs OpenVINO; for f32 the
    fastest installed engine of :data:`AUTO_ORDER` (OpenVINO, then ONNX Runtime; same
    vectors as PyTorch), unless the job is too small to pay for a first export: then PyTorch.
    """
    check_precision(precision)
    if engine == "auto":
        engine = _auto_engine(backbone, n_images, precision)
    if engine not in ENGINES:
        raise InvalidOptionError(f"engine must be one of auto, {', '.join(ENGINES.list())},"
                                 f" got {engine!r}")
    if not engine_available(engine):
        extra = ENGINES.get(engine).metadata.get("extra", "fast")
        raise InvalidOptionError(f"engine {engine!r} is not installed here: pip install "
                                 f"'transferkit[{extra}]'")
    if not runs_files(engine):  # file engines pick their model engine themselves
        choose_precision(engine, precision)
    return engine


def choose_precision(engine: str, precision: str) -> str:
    """``f32`` or ``bf16``: what the (resolved) ``engine`` runs for ``precision`` on this CPU."""
    return resolve_precision(precision, engine, engine_precisions(engine))


def _auto_engine(backbone, n_images: int, precision: str) -> str:
    bf16_wanted = precision == "bf16" or (precision == "auto" and cpu_has_bf16()
                                          and engine_available("openvino"))
    if bf16_wanted:  # only OpenVINO runs it; a missing install is reported by the caller
        return "openvino"
    if n_images < AUTO_ONNX_MIN_IMAGES and not is_cached(backbone):
        return "torch"
    return next((name for name in AUTO_ORDER if engine_available(name)), "torch")


def runs_files(engine: str) -> bool:
    """True for engines that run a whole file job themselves (Ray) rather than batches."""
    return ENGINES.get(engine).metadata.get("runs") == "files"


def make_runner(engine: str, backbone, threads: int | None = None,
                n_batches: int = 1, precision: str = "f32") -> Runner:
    """The :class:`Runner` of a (resolved, batch-running) ``engine`` for ``backbone``."""
    if runs_files(engine):
        raise InvalidOptionError(f"engine {engine!r} embeds files; use openvino, onnx or "
                                 f"torch here")
    return ENGINES.create(engine, backbone=backbone, threads=threads, n_batches=n_batches,
                          precision=precision)


def inference_model(engine: str, backbone, precision: str = "f32",
                    threads: int | None = None):
    """``backbone`` as the (resolved, batch-running) ``engine`` runs it, with the Backbone
    inference API (``embed``, ``forward``, ``predict_topk``, ``spec``): for callers that need
    logits too (classify, the service). Cached per weights like the runners' models."""
    if runs_files(engine):
        raise InvalidOptionError(f"engine {engine!r} embeds files; use openvino, onnx or "
                                 f"torch here")
    choose_precision(engine, precision)
    if engine == "openvino":
        return openvino_backbone(backbone, precision, threads)
    if engine == "onnx":
        return onnx_backbone(backbone, threads)
    if engine == "torch":
        return backbone.eval()
    raise InvalidOptionError(f"engine {engine!r} has no per-image model; use openvino, onnx "
                             f"or torch")


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
