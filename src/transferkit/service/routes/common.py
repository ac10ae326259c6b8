"""What the route modules share: the image upload field, reading it safely, timing answers."""

from __future__ import annotations

import os
import time

import anyio
from fastapi import File, UploadFile
from PIL import Image

from transferkit.errors import ServiceBusy
from transferkit.service.schemas import ImageInfo
from transferkit.service.state import ServiceState
from transferkit.service.uploads import UploadError, decode_upload

IMAGE_FILE = File(..., description="the image (any format Pillow decodes; checked by decoding)")


async def read_image(file: UploadFile, state: ServiceState, full_size: bool = False
                     ) -> Image.Image:
    """Decode an upload, never holding more than the limit; decoding runs off the event loop.
    JPEGs decode at the smallest scale the models need unless ``full_size`` (dense routes
    answer in the upload's own pixels)."""
    data = await file.read(state.max_upload_bytes + 1)
    name = os.path.basename(file.filename or "upload")[:120] or "upload"
    if len(data) > state.max_upload_bytes:
        raise UploadError(413, f"{name}: upload too large "
                               f"(limit {state.max_upload_bytes:,} bytes)")
    waiting = state.decode_limiter.statistics().tasks_waiting
    if waiting >= state.max_pending:  # back-pressure instead of an unbounded decode queue
        raise ServiceBusy(f"{waiting} uploads already waiting to be decoded")
    return await anyio.to_thread.run_sync(
        lambda: decode_upload(data, name, None if full_size else state.engine.draft_size,
                              state.max_image_pixels),
        limiter=state.decode_limiter)


def image_info(file: UploadFile, image: Image.Image) -> ImageInfo:
    """What the client sent, as we decoded it (file name without any directory part)."""
    return ImageInfo(filename=os.path.basename(file.filename or "upload")[:120],
                     width=image.width, height=image.height)


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start`` (a :func:`time.perf_counter` value), for ``elapsed_ms``."""
    return round((time.perf_counter() - start) * 1000.0, 2)
