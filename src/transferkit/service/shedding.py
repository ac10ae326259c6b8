"""Load shedding before the upload is read: a full model queue answers 503 at once.

Without it a request the model has no room for is still parsed (multipart), decoded and only
then refused, and under a retry storm that work is most of what the one event loop does, so
health checks and thumbnails wait behind it. The body is drained unparsed (closing a socket
with unread data makes the kernel reset it and the client would never see the 503).
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from transferkit.service.engine import InferenceEngine
from transferkit.service.http_errors import busy_response
from transferkit.service.uploads import drain_body

DRAIN_LIMIT = 64 * 1024 * 1024  # beyond this, answer without reading (BodySizeLimit's bound)


class ShedWhenBusy:
    """503 + Retry-After for ``model_paths`` while ``engine``'s queue is full."""

    def __init__(self, app: ASGIApp, engine: InferenceEngine, model_paths: Collection[str]
                 ) -> None:
        self.app = app
        self.engine = engine
        self.model_paths = frozenset(model_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("path") not in self.model_paths
                or not self.engine.full):
            await self.app(scope, receive, send)
            return
        await drain_body(receive, DRAIN_LIMIT)
        busy = self.engine.busy()
        await busy_response(str(busy), busy.retry_after)(scope, receive, send)
