"""Untrusted uploads -> RGB images, or a 4xx with a reason a person can act on.

Content is judged by decoding it (never by file name or the client's Content-Type), in memory,
with the decoder behind :func:`transferkit.data.load_image` (``load_image_bytes``), so a file
the service accepts is a file ``transferkit classify`` would accept too.
"""

from __future__ import annotations

import json
import os

from fastapi import HTTPException
from PIL import Image
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from transferkit.data import DEFAULT_MAX_PIXELS, load_image_bytes
from transferkit.errors import ImageLoadError, TransferkitError

# The same decoded-pixel limit as every other loader, unless the operator passes another.
DEFAULT_MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS
# Room for the multipart envelope (boundaries, part headers) around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


class UploadError(TransferkitError):
    """A client mistake: carries the HTTP status and a one-line reason."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def decode_upload(data: bytes, filename: str = "upload", draft_size: int | None = None,
                  max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode uploaded bytes as an RGB image; raise :class:`UploadError` (413/415/400) if not."""
    name = os.path.basename(filename or "upload")[:120] or "upload"
    if not data:
        raise UploadError(400, f"{name}: empty file (0 bytes)")
    try:
        return load_image_bytes(data, name, draft_size=draft_size, max_pixels=max_pixels)
    except ImageLoadError as exc:
        raise UploadError(_status_for(exc.reason), f"{name}: {exc.reason}") from None
    except (MemoryError, Image.DecompressionBombError):
        raise UploadError(413, f"{name}: image too large to decode") from None
    except Exception as exc:  # noqa: BLE001 - any decoder crash is still the file's fault
        raise UploadError(400, f"{name}: corrupt or unsupported image "
                               f"({exc.__class__.__name__})") from None

def _status_for(reason: str) -> int:
    if reason.startswith("not an image"):
        return 415
    if reason.startswith("image too large"):
        return 413
    return 400


class _BodyTooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException so frameworks re-raise it, never mask it."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)


class BodySizeLimit:
    """ASGI middleware: refuse request bodies over ``max_body_bytes`` with 413.

    Checks the declared Content-Length up front and also counts streamed bytes, so chunked
    uploads without a length cannot get past it; nothing beyond the limit is ever buffered.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, drain_bytes: int | None = None) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)
        # Read (and drop) up to this much of a refused body before answering: closing a socket
        # with unread data makes the kernel send a reset, and the client never sees the 413.
        self.drain_bytes = int(drain_bytes if drain_bytes is not None
                               else max(64 * 1024 * 1024, 4 * self.max_body_bytes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit():
                await _send_json(send, 400, "invalid Content-Length header")
                return
            if int(text) > self.max_body_bytes:
                if int(text) <= self.drain_bytes:
                    await drain_body(receive, self.drain_bytes)
                await _send_json(send, 413, self._message(int(text)))
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    if message.get("more_body", False):
                        await drain_body(receive, self.drain_bytes)
                    raise _BodyTooLarge(f"upload too large: over {self.max_body_bytes:,} "
                                        f"bytes (limit {self._limit():,} bytes)")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge as exc:
            if not started:
                await _send_json(send, 413, exc.detail)

    def _limit(self) -> int:
        return max(0, self.max_body_bytes - MULTIPART_OVERHEAD)

    def _message(self, size: int) -> str:
        return f"upload too large: {size:,} bytes > limit {self._limit():,} bytes"


async def drain_body(receive: Receive, limit: int) -> None:
    """Consume the rest of a request body, at most ``limit`` bytes."""
    seen = 0
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
