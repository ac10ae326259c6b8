"""The models behind the service, run one call at a time on a dedicated worker thread.

Inference is CPU-bound and torch already uses every core for one batch, so running two
requests at once only makes both slower (and torch modules are not meant to be shared across
threads). One worker thread serialises model calls; the event loop stays free for uploads,
thumbnails and health checks, and a bounded queue answers 503 instead of piling up work.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from PIL import Image

from transferkit.backbones import Backbone, imagenet_labels
from transferkit.errors import ServiceBusy
from transferkit.features import embed_images, preprocess_images
from transferkit.runtime import choose_engine, choose_precision, inference_model
from transferkit.service.priority import lower_thread_priority

# A server answers many requests: "auto" may pay a one-off export at start for faster calls.
SERVICE_JOB_IMAGES = 10_000


class InferenceEngine:
    """Owns the backbone, the optional trained model and the optional index, and the engine
    + precision (resolved once, at start) that every image model call runs on."""

    def __init__(self, backbone: Backbone, model: Any | None = None, index: Any | None = None,
                 max_pending: int = 64, text_index: Any | None = None, engine: str = "torch",
                 precision: str = "f32", audio_index: Any | None = None,
                 audio_model: Any | None = None, segmenter: Any | None = None,
                 localizer: Any | None = None) -> None:
        self.backbone = backbone.eval()
        self.engine = choose_engine(engine, self.backbone, SERVICE_JOB_IMAGES, precision)
        self.precision = choose_precision(self.engine, precision)
        inference_model(self.engine, self.backbone, self.precision)  # compile now, not on a query
        self.model = model
        self.index = index
        self.text_index = text_index
        self.audio_index = audio_index
        self.audio_model = audio_model
        self.segmenter = segmenter  # a dense SegmentationModel (/api/segment)
        self.localizer = localizer  # a dense Localizer (/api/localize)
        self.max_pending = max_pending
        self.worker_nice = 0  # > 0: the inference thread runs below the event loop
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._call_seconds = 0.05  # running mean of one model call, for Retry-After

    # -- scheduling ------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return self._pending

    @property
    def full(self) -> bool:
        """No room in the model queue: a new model request would get 503."""
        return self._pending >= self.max_pending

    def busy(self) -> ServiceBusy:
        """The error a request gets while the queue is full (raised here, or sent by the
        shedding middleware before the upload is read)."""
        return ServiceBusy(f"{self._pending} requests already waiting for the model",
                           retry_after=self.retry_after())

    def retry_after(self) -> int:
        """Whole seconds until the queue has likely drained (>= 1, <= 30): what a 503 asks a
        client to wait, so 200 clients do not all come back every second."""
        return max(1, min(30, math.ceil(self._pending * self._call_seconds)))

    async def run(self, func, *args, **kwargs):
        """Run ``func`` on the inference thread; :class:`ServiceBusy` when the queue is full."""
        with self._pending_lock:
            if self.full:
                raise self.busy()
            self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._worker(),
                                              functools.partial(self._timed, func, *args,
                                                                **kwargs))
        finally:
            with self._pending_lock:
                self._pending -= 1

    def _timed(self, func, *args, **kwargs):
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            took = time.perf_counter() - started
            self._call_seconds = 0.8 * self._call_seconds + 0.2 * took

    def _worker(self) -> ThreadPoolExecutor:
        # Created on demand so an app survives a lifespan restart (e.g. several test clients).
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="transferkit-infer",
                    initializer=lower_thread_priority, initargs=(self.worker_nice,))
            return self._executor

    def close(self) -> None:
        """Stop the worker thread (queued calls are cancelled); a later call starts a new one."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    # -- what the endpoints call (on the inference thread) ----------------------------------
    @property
    def draft_size(self) -> int:
        """Smallest decode size any of our models needs (JPEGs decode at 1/2..1/8 scale)."""
        sizes = [self.backbone.preprocessing.resize_size]
        for owner in (self.model, self.index):
            spec = getattr(owner, "spec_", None) or getattr(owner, "spec", None)
            if isinstance(spec, dict) and "preprocessing" in spec:
                prep = spec["preprocessing"]
                sizes.append(int(prep.get("input_size", 224) / prep.get("crop_pct", 1.0)))
        return max(sizes)

    @torch.inference_mode()
    def predict(self, image: Image.Image, k: int) -> tuple[str, list[dict[str, Any]]]:
        """Top-k from the trained model if there is one, else ImageNet classes."""
        if self.model is not None:
            rows = self.model.predict_images([image], top_k=k, **self._runs_on)[0]
            return "model", [{"label": str(r["label"]), "probability": float(r["probability"])}
                             for r in rows]
        net = inference_model(self.engine, self.backbone, self.precision)
        pairs = net.predict_topk(preprocess_images([image], self.backbone), k)[0]
        labels = imagenet_labels()
        return "imagenet", [{"label": labels[i], "index": int(i), "probability": float(p)}
                            for i, p in pairs]

    @property
    def _runs_on(self) -> dict[str, str]:
        return {"engine": self.engine, "precision": self.precision}

    def embed(self, image: Image.Image) -> list[float]:
        return [float(v) for v in embed_images([image], self.backbone, **self._runs_on)[0]]

    @torch.inference_mode()
    def search(self, image: Image.Image, k: int) -> list[Any]:
        if self.index is None:
            raise RuntimeError("no index loaded")
        k = min(k, len(self.index))
        return (list(self.index.search_images([image], k, **self._runs_on)[0]) if k > 0
                else [])

    @torch.inference_mode()
    def search_text(self, query: str, k: int) -> list[Any]:
        """Nearest indexed texts to ``query``, embedded by the text index's own encoder."""
        if self.text_index is None:
            raise RuntimeError("no text index loaded")
        k = min(k, len(self.text_index))
        return list(self.text_index.search_texts([query], k)[0]) if k > 0 else []
