"""Response headers that make a browser treat our answers strictly, and say how long the
service took (pure ASGI, no buffering)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (b"default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
               b"base-uri 'none'; frame-ancestors 'none'")

Headers = list[tuple[bytes, bytes]]


class _ResponseHeaders:
    """Edit the headers of every HTTP answer as it starts; subclasses say how."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def edit(self, headers: Headers, received: float) -> Headers:
        """The answer's headers; ``received`` is the perf_counter time the request came in."""
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = time.perf_counter()

        async def send_edited(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = self.edit(list(message.get("headers") or []), received)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_edited)


class SecurityHeaders(_ResponseHeaders):
    """``nosniff`` and ``no-referrer`` everywhere; a same-origin-only CSP on HTML pages."""

    def edit(self, headers: Headers, received: float) -> Headers:
        names = {k.lower() for k, _ in headers}
        if b"x-content-type-options" not in names:
            headers.append((b"x-content-type-options", b"nosniff"))
        if b"referrer-policy" not in names:
            headers.append((b"referrer-policy", b"no-referrer"))
        content_type = dict((k.lower(), v) for k, v in headers).get(b"content-type", b"")
        if content_type.startswith(b"text/html"):
            headers.append((b"content-security-policy", PAGE_POLICY))
        return headers


class ServerTiming(_ResponseHeaders):
    """``Server-Timing: app;dur=<ms>`` on every answer: the time the service itself took
    from receiving the request to starting the response, so a load test on a busy machine
    can tell the server's latency from its own clients' (W3C Server Timing)."""

    def edit(self, headers: Headers, received: float) -> Headers:
        took = (time.perf_counter() - received) * 1000
        return [*headers, (b"server-timing", f"app;dur={took:.2f}".encode())]
