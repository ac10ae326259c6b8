"""A small, bounded load generator for the service (used by the benchmark and the tests).

Several clients, each with its own keep-alive connection, share one list of requests and stop
at a hard deadline. ``driver="threads"`` runs each client on a thread of its own;
``driver="async"`` runs them all as tasks of one asyncio event loop, which costs the machine
far less than hundreds of threads fighting over one GIL (on a 2-core box the load generator
competes with the server it measures). Every outcome keeps the client's time and the
service's own (its ``Server-Timing`` header). Only loopback URLs are accepted: this is for
measuring your own service, not anyone else's.

:func:`probe_process` measures what the load does to everybody else: one caller in a process
of its own (so the load generator's threads and GIL cannot delay it) GETs a few cheap routes
at a steady pace while the load runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlparse

import numpy as np

from transferkit.utils import existing_objects_frozen

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
    server_seconds: float | None = None  # the service's own time (Server-Timing), last try


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
    def still_busy(self) -> int:
        """Requests still answered 503 once the client's retries ran out: back-pressure the
        client gave up on, not a fault (a 500 or a crash would count in ``server_errors``
        only)."""
        return sum(1 for o in self.outcomes if o.status == 503)

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

    def percentiles(self, kind: str | None = None, server: bool = False) -> dict[str, float]:
        """p50/p95/p99 in ms of the client's time, or with ``server`` of the service's own
        (Server-Timing), over the outcomes of ``kind`` (all with None)."""
        times = [o.server_seconds if server else o.seconds for o in self.outcomes
                 if (kind is None or o.kind == kind)
                 and (not server or o.server_seconds is not None)]
        if not times:
            return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
        p = np.percentile(np.asarray(times) * 1000.0, [50, 95, 99])
        return {"p50": float(p[0]), "p95": float(p[1]), "p99": float(p[2])}

    def table(self) -> str:
        """Plain-text table: one row per request kind plus a total row."""
        kinds = sorted({o.kind for o in self.outcomes})
        lines = [f"{'kind':<14}{'n':>6}{'ok':>6}{'4xx':>6}{'5xx':>6}{'fail':>6}"
                 f"{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'server p95':>12}"]
        for kind in [*kinds, None]:
            rows = [o for o in self.outcomes if kind is None or o.kind == kind]
            pct = self.percentiles(kind)
            server = self.percentiles(kind, server=True)["p95"]
            lines.append(
                f"{kind or 'all':<14}{len(rows):>6}"
                f"{sum(1 for o in rows if o.status is not None and o.status < 300):>6}"
                f"{sum(1 for o in rows if o.status is not None and 400 <= o.status < 500):>6}"
                f"{sum(1 for o in rows if o.status is not None and o.status >= 500):>6}"
                f"{sum(1 for o in rows if not _as_expected(o)):>6}"
                f"{pct['p50']:>10.1f}{pct['p95']:>10.1f}{pct['p99']:>10.1f}{server:>12.1f}")
        lines.append(f"{len(self.outcomes)} requests from {self.clients} clients in "
                     f"{self.wall_seconds:.2f} s = {self.requests_per_second:.1f} req/s; "
                     f"5xx: {self.server_errors} (of which 503 still busy after the "
                     f"client's retries: {self.still_busy}), "
                     f"transport errors: {self.transport_errors}, "
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


DRIVERS = ("threads", "async")


def run_load(base_url: str, calls: list[Call], clients: int = 6, time_limit: float = 60.0,
             request_timeout: float = 30.0, busy_retries: int = 0,
             driver: str = "threads", ramp_seconds: float = 0.0) -> LoadReport:
    """Send ``calls`` from ``clients`` clients; stop starting new ones at ``time_limit``.

    With ``busy_retries`` a client that gets 503 + Retry-After waits as told and sends the
    request again (at most that many times), as a well-behaved client does. ``driver`` is
    ``threads`` (a thread per client) or ``async`` (one event loop, a task per client).
    ``ramp_seconds`` starts the clients evenly over that time (client i after
    ``i * ramp_seconds / clients``) instead of all in the same instant, as load tools' spawn
    rates do; the time limit counts from the first client.
    """
    check_loopback(base_url)
    if driver not in DRIVERS:
        raise ValueError(f"driver={driver!r}: choose one of {', '.join(DRIVERS)}")
    queue = _CallQueue(calls, time.perf_counter() + time_limit)
    # The caller may hold a model too (the benchmark does): its full collections would stall
    # every client at once and be measured as server latency.
    with existing_objects_frozen():
        start = time.perf_counter()
        if driver == "async":
            outcomes = asyncio.run(_async_clients(base_url, queue, clients, time_limit,
                                                  request_timeout, busy_retries, ramp_seconds))
        else:
            outcomes = _thread_clients(base_url, queue, clients, request_timeout,
                                       busy_retries, ramp_seconds)
    return LoadReport(outcomes, time.perf_counter() - start, clients, queue.not_sent)


class _CallQueue:
    """The shared list of calls, handed out in order until it ends or the deadline passes."""

    def __init__(self, calls: list[Call], deadline: float) -> None:
        self.calls, self.deadline, self.position = calls, deadline, 0
        self.lock = threading.Lock()

    def next(self) -> Call | None:
        with self.lock:
            if self.position >= len(self.calls) or time.perf_counter() > self.deadline:
                return None
            self.position += 1
            return self.calls[self.position - 1]

    @property
    def not_sent(self) -> int:
        return len(self.calls) - self.position


def _thread_clients(base_url: str, queue: _CallQueue, clients: int, request_timeout: float,
                    busy_retries: int, ramp_seconds: float) -> list[Outcome]:
    import httpx

    lock = threading.Lock()
    outcomes: list[Outcome] = []
    tls = _shared_tls()

    def client_loop(number: int) -> None:
        time.sleep(number * ramp_seconds / clients)
        with httpx.Client(base_url=base_url, timeout=request_timeout, verify=tls) as client:
            while (call := queue.next()) is not None:
                t0 = time.perf_counter()
                try:
                    response, retries = _send(client, call, busy_retries)
                    outcome = _outcome(call, response, time.perf_counter() - t0, retries)
                except httpx.HTTPError as exc:
                    outcome = _failed(call, exc, time.perf_counter() - t0)
                with lock:
                    outcomes.append(outcome)

    threads = [threading.Thread(target=client_loop, args=(i,), name=f"load-client-{i}",
                                daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, queue.deadline - time.perf_counter()) + request_timeout + 5)
    with lock:
        return list(outcomes)


async def _async_clients(base_url: str, queue: _CallQueue, clients: int, time_limit: float,
                         request_timeout: float, busy_retries: int, ramp_seconds: float
                         ) -> list[Outcome]:
    import httpx

    outcomes: list[Outcome] = []
    tls = _shared_tls()

    async def client_loop(number: int) -> None:
        await asyncio.sleep(number * ramp_seconds / clients)
        async with httpx.AsyncClient(base_url=base_url, timeout=request_timeout,
                                     verify=tls) as client:
            while (call := queue.next()) is not None:
                t0 = time.perf_counter()
                try:
                    response, retries = await _send_async(client, call, busy_retries)
                    outcomes.append(_outcome(call, response, time.perf_counter() - t0,
                                             retries))
                except httpx.HTTPError as exc:
                    outcomes.append(_failed(call, exc, time.perf_counter() - t0))

    tasks = [asyncio.create_task(client_loop(i)) for i in range(clients)]
    await asyncio.wait(tasks, timeout=time_limit + request_timeout + 5)
    for task in tasks:
        task.cancel()
    return outcomes


def _shared_tls():
    """One TLS context for every client: httpx builds a new one per client otherwise (~36 ms
    of CPU each, loading the CA bundle), and 200 clients starting at once stalled the load
    generator ~7 s - which it then measured as server latency. Loopback never uses TLS."""
    import ssl

    return ssl.create_default_context()


def _outcome(call: Call, response, seconds: float, retries: int) -> Outcome:
    return Outcome(call.kind, call.expect, response.status_code, seconds, retries=retries,
                   server_seconds=server_seconds(response.headers.get("server-timing")))


def _failed(call: Call, exc: Exception, seconds: float) -> Outcome:
    return Outcome(call.kind, call.expect, None, seconds, f"{exc.__class__.__name__}: {exc}")


def server_seconds(header: str | None) -> float | None:
    """The ``app`` duration of a ``Server-Timing`` header, in seconds (None when absent)."""
    for metric in (header or "").split(","):
        name, *params = (part.strip() for part in metric.split(";"))
        for param in params:
            if name == "app" and param.startswith("dur="):
                with contextlib.suppress(ValueError):
                    return float(param[4:]) / 1000
    return None


def _files(call: Call) -> dict | None:
    return ({"file": (call.upload[0], io.BytesIO(call.upload[1]), "application/octet-stream")}
            if call.upload else None)


def _retry_after(response, attempt: int, busy_retries: int) -> float | None:
    """Seconds to wait before sending again, or None when this answer is the last."""
    wait = response.headers.get("retry-after")
    if response.status_code != 503 or wait is None or attempt == busy_retries:
        return None
    return min(float(wait), 5.0)


def _send(client, call: Call, busy_retries: int):
    """One call, repeated after the server's Retry-After while it answers 503."""
    for attempt in range(busy_retries + 1):
        response = client.request(call.method, call.path, files=_files(call))
        response.read()
        wait = _retry_after(response, attempt, busy_retries)
        if wait is None:
            return response, attempt
        time.sleep(wait)
    raise AssertionError("unreachable")


async def _send_async(client, call: Call, busy_retries: int):
    """:func:`_send` for an ``httpx.AsyncClient``."""
    for attempt in range(busy_retries + 1):
        response = await client.request(call.method, call.path, files=_files(call))
        await response.aread()
        wait = _retry_after(response, attempt, busy_retries)
        if wait is None:
            return response, attempt
        await asyncio.sleep(wait)
    raise AssertionError("unreachable")


def probe_routes(base_url: str, paths: list[str], interval: float, stop: threading.Event,
                 on_ready=None) -> dict[str, list[float]]:
    """GET each of ``paths`` in turn, one request every ``interval`` seconds, until ``stop``
    is set; the latencies in ms, by path. Any answer but 200 is recorded as ``nan``.
    ``on_ready`` is called once the connection is open and warm (first request answered)."""
    import httpx

    check_loopback(base_url)
    latencies: dict[str, list[float]] = {path: [] for path in paths}
    with httpx.Client(base_url=base_url, timeout=30.0, verify=_shared_tls()) as client:
        client.get(paths[0])  # connect before the measurement starts
        if on_ready is not None:
            on_ready()
        tick = time.perf_counter()
        while not stop.is_set():
            for path in paths:
                start = time.perf_counter()
                try:
                    ok = client.get(path).status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies[path].append((time.perf_counter() - start) * 1000 if ok
                                       else float("nan"))
                tick += interval
                time.sleep(max(0.0, tick - time.perf_counter()))
    return latencies


@contextlib.contextmanager
def probe_process(base_url: str, paths: list[str], interval: float = 0.02
                  ) -> Iterator[dict[str, list[float]]]:
    """Run :func:`probe_routes` in a separate Python process while the ``with`` block runs;
    the dict it yields is filled with the probe's latencies (ms, by path) on exit."""
    check_loopback(base_url)
    command = [sys.executable, "-m", "transferkit.service.loadtest", "probe", base_url,
               str(interval), *paths]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    result: dict[str, list[float]] = {}
    try:
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the probe process did not start (exit {process.poll()})")
        yield result
    finally:
        process.stdin.close()  # the probe's signal to stop and report
        output = process.stdout.read()
        process.wait(timeout=60)
        if output.strip():
            result.update(json.loads(output))


def _probe_main(argv: list[str]) -> None:
    """``python -m transferkit.service.loadtest probe URL INTERVAL PATH...``: probe until
    stdin closes, then print the latencies as JSON."""
    base_url, interval, paths = argv[0], float(argv[1]), argv[2:]
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    latencies = probe_routes(base_url, paths, interval, stop,
                             on_ready=lambda: print("ready", flush=True))
    print(json.dumps(latencies), flush=True)


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


if __name__ == "__main__" and sys.argv[1:2] == ["probe"]:
    _probe_main(sys.argv[2:])
