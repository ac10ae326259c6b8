"""A small, bounded load generator for the service (used by the benchmark and the tests).

Several client threads, each with its own keep-alive connection, share one list of requests
and stop at a hard deadline. Only loopback URLs are accepted: this is for measuring your own
service, not anyone else's.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlparse

import numpy as np

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Call:
    """One request to send and what a correct service answers (``expect``: 'ok' or '4xx')."""

    kind: str
    method: str
    path: str
    expect: str = "ok"
    upload: tuple[str, bytes] | None = None


@dataclass
class Outcome:
    kind: str
    expect: str
    status: int | None  # None: the request failed at transport level
    seconds: float
    error: str = ""
    retries: int = 0  # 503 + Retry-After answers waited out before this one


@dataclass
class LoadReport:
    outcomes: list[Outcome]
    wall_seconds: float
    clients: int
    not_sent: int = 0
    statuses: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.statuses = Counter(o.status for o in self.outcomes)

    @property
    def server_errors(self) -> int:
        return sum(1 for o in self.outcomes if o.status is not None and o.status >= 500)

    @property
    def busy_retries(self) -> int:
        """How often the service shed load (503 + Retry-After) and the client came back."""
        return sum(o.retries for o in self.outcomes)

    @property
    def transport_errors(self) -> int:
        return sum(1 for o in self.outcomes if o.status is None)

    @property
    def wrong_answers(self) -> list[Outcome]:
        """Valid requests not answered 200, bad ones not answered 4xx (incl. transport errors)."""
        return [o for o in self.outcomes if not _as_expected(o)]

    @property
    def requests_per_second(self) -> float:
        return len(self.outcomes) / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def percentiles(self, kind: str | None = None) -> dict[str, float]:
        times = [o.seconds for o in self.outcomes if kind is None or o.kind == kind]
        if not times:
            return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
        p = np.percentile(np.asarray(times) * 1000.0, [50, 95, 99])
        return {"p50": float(p[0]), "p95": float(p[1]), "p99": float(p[2])}

    def table(self) -> str:
        """Plain-text table: one row per request kind plus a total row."""
        kinds = sorted({o.kind for o in self.outcomes})
        lines = [f"{'kind':<14}{'n':>6}{'ok':>6}{'4xx':>6}{'5xx':>6}{'fail':>6}"
                 f"{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"]
        for kind in [*kinds, None]:
            rows = [o for o in self.outcomes if kind is None or o.kind == kind]
            pct = self.percentiles(kind)
            lines.append(
                f"{kind or 'all':<14}{len(rows):>6}"
                f"{sum(1 for o in rows if o.status is not None and o.status < 300):>6}"
                f"{sum(1 for o in rows if o.status is not None and 400 <= o.status < 500):>6}"
                f"{sum(1 for o in rows if o.status is not None and o.status >= 500):>6}"
                f"{sum(1 for o in rows if not _as_expected(o)):>6}"
                f"{pct['p50']:>10.1f}{pct['p95']:>10.1f}{pct['p99']:>10.1f}")
        lines.append(f"{len(self.outcomes)} requests from {self.clients} clients in "
                     f"{self.wall_seconds:.2f} s = {self.requests_per_second:.1f} req/s; "
                     f"5xx: {self.server_errors}, transport errors: {self.transport_errors}, "
                     f"not as expected: {len(self.wrong_answers)}, "
                     f"not sent (deadline): {self.not_sent}")
        return "\n".join(lines)


def _as_expected(o: Outcome) -> bool:
    if o.status is None:
        return False
    if o.expect == "ok":
        return 200 <= o.status < 300
    return 400 <= o.status < 500


def check_loopback(base_url: str) -> None:
    host = urlparse(base_url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"{base_url}: the load test only targets loopback (127.0.0.1)")


def standard_calls(image: bytes, n: int, with_search: bool, oversized_bytes: int | None,
                   bad_fraction: float = 0.2) -> list[Call]:
    """A deterministic mix: predictions, searches, health checks and bad uploads."""
    bad = [Call("bad:text", "POST", "/api/predict", "4xx", ("notes.jpg", b"not an image\n" * 40)),
           Call("bad:truncated", "POST", "/api/predict", "4xx",
                ("half.jpg", image[: len(image) // 2])),
           Call("bad:empty", "POST", "/api/predict", "4xx", ("empty.png", b"")),
           Call("bad:k", "POST", "/api/predict?k=0", "4xx", ("ok.jpg", image))]
    if oversized_bytes:
        bad.append(Call("bad:too-big", "POST", "/api/predict", "4xx",
                        ("big.jpg", image + b"\0" * max(0, oversized_bytes - len(image)))))
    good = [Call("predict", "POST", "/api/predict?k=5", "ok", ("photo.jpg", image)),
            Call("predict", "POST", "/api/predict?k=5", "ok", ("photo.jpg", image)),
            Call("embed", "POST", "/api/embed", "ok", ("photo.jpg", image)),
            Call("health", "GET", "/api/health", "ok")]
    if with_search:
        good += [Call("search", "POST", "/api/search?k=8", "ok", ("photo.jpg", image)),
                 Call("thumbnail", "GET", "/thumbnails/0", "ok")]
    calls = []
    every = max(1, round(1 / bad_fraction)) if bad_fraction > 0 else 0
    gi = bi = 0
    for i in range(n):
        if every and i % every == every - 1:
            calls.append(bad[bi % len(bad)])
            bi += 1
        else:
            calls.append(good[gi % len(good)])
            gi += 1
    return calls


def run_load(base_url: str, calls: list[Call], clients: int = 6, time_limit: float = 60.0,
             request_timeout: float = 30.0, busy_retries: int = 0) -> LoadReport:
    """Send ``calls`` from ``clients`` threads; stop starting new ones at ``time_limit``.

    With ``busy_retries`` a client that gets 503 + Retry-After waits as told and sends the
    request again (at most that many times), as a well-behaved client does.
    """
    import httpx

    check_loopback(base_url)
    lock = threading.Lock()
    position = 0
    outcomes: list[Outcome] = []
    start = time.perf_counter()
    deadline = start + time_limit

    def next_call() -> Call | None:
        nonlocal position
        with lock:
            if position >= len(calls) or time.perf_counter() > deadline:
                return None
            position += 1
            return calls[position - 1]

    def client_loop() -> None:
        with httpx.Client(base_url=base_url, timeout=request_timeout) as client:
            while (call := next_call()) is not None:
                t0 = time.perf_counter()
                try:
                    response, retries = _send(client, call, busy_retries)
                    outcome = Outcome(call.kind, call.expect, response.status_code,
                                      time.perf_counter() - t0, retries=retries)
                except httpx.HTTPError as exc:
                    outcome = Outcome(call.kind, call.expect, None, time.perf_counter() - t0,
                                      f"{exc.__class__.__name__}: {exc}")
                with lock:
                    outcomes.append(outcome)

    threads = [threading.Thread(target=client_loop, name=f"load-client-{i}", daemon=True)
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.perf_counter()) + request_timeout + 5)
    wall = time.perf_counter() - start
    with lock:
        done = list(outcomes)
        not_sent = len(calls) - position
    return LoadReport(done, wall, clients, not_sent)


def _send(client, call: Call, busy_retries: int):
    """One call, repeated after the server's Retry-After while it answers 503."""
    for attempt in range(busy_retries + 1):
        files = ({"file": (call.upload[0], io.BytesIO(call.upload[1]),
                           "application/octet-stream")} if call.upload else None)
        response = client.request(call.method, call.path, files=files)
        response.read()
        wait = response.headers.get("retry-after")
        if response.status_code != 503 or wait is None or attempt == busy_retries:
            return response, attempt
        time.sleep(min(float(wait), 5.0))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def background_server(app, startup_timeout: float = 60.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1:<free port> in a thread; yield its base URL."""
    import uvicorn

    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets that say they are
    # TCP, and without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="transferkit-uvicorn")
    thread.start()
    deadline = time.monotonic() + startup_timeout
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
