"""Load test of the HTTP service: several concurrent clients on loopback, bounded in time.

Why: the service must stay correct under concurrent use (no 5xx, bad uploads get 4xx) and
its latency should be the model's, not the web layer's. Rows, measured in the same run:

* ``direct``: the same prediction called in-process (decode + model, no HTTP), one caller:
  the baseline cost of the work itself;
* ``http 1 client``: the same predictions one at a time over HTTP (adds the web layer);
* ``http N clients``: a mixed workload (predict, embed, search, thumbnails, health and ~20 %
  bad uploads) from N concurrent clients for a fixed time, with a per-kind breakdown. A
  503 + Retry-After (the service shedding load) is waited out and retried, as a client
  should, and counted apart; any other 5xx, a bad upload not answered 4xx, memory growth
  over 10 % or a cheap route (health, thumbnails) with p95 over 50 ms fails the run.
  Each kind's p95 is shown as the clients saw it and as the server took it (its
  ``Server-Timing`` header), so the web layer's queueing can be told from the service's.

Clients start all at once (``--ramp 0``: the first second is a burst of N simultaneous
requests, most of them uploads) or evenly over ``--ramp`` seconds, as load tools' spawn rates
do; ``--driver threads`` runs a thread per client, ``async`` one event loop.

The server runs as ``transferkit serve`` in its own process (``--in-process``: a thread of
this one, where the 200 client threads share its GIL); its RSS is read from /proc/PID.

Run: ``.venv/bin/python benchmarks/bench_service.py --index INDEX [--clients 200]
[--duration 60] [--model DIR] [--ramp 5] [--engine torch openvino]`` (only 127.0.0.1 is
ever contacted); ``--quick`` is a short smoke run (8 clients, 10 s). Numbers taken while
other jobs load the CPU are noisy; the load average is printed. The server's RSS is read
before and after the mixed load.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

PROBE_INTERVAL = 0.02  # seconds between the probe's requests


def _row(name: str, clients: int, times_ms: list[float], errors: int, wall: float) -> str:
    p50, p95, p99 = np.percentile(times_ms, [50, 95, 99]) if times_ms else (np.nan,) * 3
    rate = len(times_ms) / wall if wall > 0 else 0.0
    return (f"{name:<28}{clients:>8}{len(times_ms):>7}{errors:>8}{p50:>10.1f}{p95:>10.1f}"
            f"{p99:>10.1f}{rate:>9.1f}")


def main() -> None:
    from transferkit.data import sample_photo
    from transferkit.service import create_app, decode_upload

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=0,
                        help="stop the mixed load after this many (0: run for --duration)")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", "--time-limit", type=float, default=60.0,
                        help="seconds of mixed load (hard stop)")
    parser.add_argument("--quick", action="store_true", help="8 clients, 10 s, 10 serial")
    parser.add_argument("--serial", type=int, default=30, help="requests in the 1-caller rows")
    parser.add_argument("--index", help="image index file (adds search + thumbnails)")
    parser.add_argument("--model", help="trained model directory")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--max-upload-mb", type=float, default=2.0)
    parser.add_argument("--in-process", action="store_true",
                        help="serve from a thread of this process (the load clients then "
                             "share its GIL, which slows the server's event loop); default: "
                             "`transferkit serve` in its own process")
    parser.add_argument("--model-nice", type=int, nargs="+", default=[0],
                        help="one server per value, each under the same load: the model "
                             "threads' nice value (`serve --model-nice`); 0 = off")
    parser.add_argument("--engine", nargs="+", default=["torch"],
                        help="one server per engine (`serve --engine`: torch, onnx, openvino, "
                             "auto), each under the same load")
    parser.add_argument("--ramp", type=float, default=0.0,
                        help="seconds over which the clients start (0: all at once)")
    parser.add_argument("--driver", choices=["async", "threads"], default="threads",
                        help="load clients as tasks of one event loop (async: cheap for the "
                             "machine) or a thread each (threads: 200 threads share a GIL)")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.duration, args.serial = 8, 10.0, 10
    os.environ.setdefault("TRANSFERKIT_QUIET", "1")

    from io import BytesIO

    buffer = BytesIO()
    sample_photo("chelsea").save(buffer, format="JPEG", quality=90)
    image_bytes = buffer.getvalue()
    limit = int(args.max_upload_mb * 1024 * 1024)
    app = create_app(model_dir=args.model, index_path=args.index, backbone=args.backbone,
                     max_upload_bytes=limit)
    engine = app.state.engine
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cores; torch threads: {_torch_threads()}")

    # Baseline: decode + model, in-process, one caller (first call warms up, not counted).
    # It runs on a worker thread like the service's own model calls: torch on the main
    # thread was several times slower on the shared, oversubscribed CI machine.
    def direct_once() -> None:
        engine.predict(decode_upload(image_bytes, "chelsea.jpg", engine.draft_size), 5)

    def direct_series() -> tuple[list[float], float]:
        direct_once()
        times, start = [], time.perf_counter()
        for _ in range(args.serial):
            t = time.perf_counter()
            direct_once()
            times.append((time.perf_counter() - t) * 1000)
        return times, time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=1) as pool:
        direct_ms, direct_wall = pool.submit(direct_series).result()

    failed = False
    summary = []
    for engine in args.engine:
        for nice in args.model_nice:
            print(f"\n=== server with --engine {engine} --model-nice {nice}"
                  f"{' (ignored in-process)' if args.in_process else ''}; {args.driver} "
                  f"clients")
            failed |= _serve_and_load(args, engine, nice, app, image_bytes, limit,
                                      (direct_ms, direct_wall), summary)
    if len(summary) > 1:
        print("\nsame run, p95 (ms) as the clients saw it / as the server took it, by server:")
        print(f"{'engine':>12}{'nice':>6}{'health':>14}{'thumbnail':>14}{'predict p50':>13}"
              f"{'answered':>10}{'503 after retries':>19}")
        for row in summary:
            print(f"{row[0]:>12}{row[1]:>6}{row[2]:>14}{row[3]:>14}{row[4]:>13.1f}"
                  f"{row[5]:>10}{row[6]:>19}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if failed:
        raise SystemExit(1)


def _serve_and_load(args, engine: str, nice: int, app, image_bytes: bytes, limit: int,
                    direct: tuple[list[float], float], summary: list) -> bool:
    """One server (``--engine engine --model-nice nice``), the serial and mixed rows; True
    when it failed."""
    import httpx

    from transferkit.service.loadtest import probe_process, run_load, standard_calls

    direct_ms, direct_wall = direct
    serving = _in_process(app) if args.in_process else _server_process(args, engine, nice)
    with serving as (url, pid):
        serial_ms, serial_errors = [], 0
        with httpx.Client(base_url=url, timeout=60) as client:
            files = {"file": ("chelsea.jpg", image_bytes, "image/jpeg")}
            client.post("/api/predict", files=files)  # warm-up
            t0 = time.perf_counter()
            for _ in range(args.serial):
                t = time.perf_counter()
                status = client.post("/api/predict", files=files).status_code
                serial_ms.append((time.perf_counter() - t) * 1000)
                serial_errors += status != 200
            serial_wall = time.perf_counter() - t0
        planned = args.requests or int(args.clients * args.duration * 20)  # more than fits
        calls = standard_calls(image_bytes, planned, with_search=args.index is not None,
                               oversized_bytes=int(limit * 1.25))
        rss_before = _rss_mb(pid)
        probe_paths = ["/api/health"] + (["/thumbnails/1", "/api/items?limit=50"]
                                         if args.index else [])
        with probe_process(url, probe_paths, PROBE_INTERVAL) as probed:
            report = run_load(url, calls, clients=args.clients, time_limit=args.duration,
                              request_timeout=120.0, busy_retries=20, driver=args.driver,
                              ramp_seconds=args.ramp)
        rss_after = _rss_mb(pid)

    print(f"\n{'mode':<28}{'clients':>8}{'n':>7}{'errors':>8}{'p50 ms':>10}{'p95 ms':>10}"
          f"{'p99 ms':>10}{'req/s':>9}")
    print(_row("direct predict (no HTTP)", 1, direct_ms, 0, direct_wall))
    print(_row("http predict", 1, serial_ms, serial_errors, serial_wall))
    mixed = [o.seconds * 1000 for o in report.outcomes]
    print(_row(f"http mixed ({args.duration:.0f} s)", args.clients, mixed,
               len(report.wrong_answers), report.wall_seconds))
    predicts = [o.seconds * 1000 for o in report.outcomes if o.kind == "predict"]
    print(_row("  of which predict", args.clients, predicts,
               sum(1 for o in report.wrong_answers if o.kind == "predict"), report.wall_seconds))
    print("\nmixed load, per kind (errors = not the expected 200 / 4xx):")
    print(report.table())
    print_probe(probed)
    growth = (rss_after - rss_before) / rss_before
    print(f"\nserver RSS before {rss_before:.0f} MB, after {rss_after:.0f} MB "
          f"({growth:+.1%}); 503 + Retry-After waited out {report.busy_retries} times; "
          f"5xx answers {report.server_errors} ({report.server_errors - report.still_busy} "
          f"other than 503 after 20 retries); requests not answered as expected "
          f"{len(report.wrong_answers)}")
    p95 = {kind: report.percentiles(kind).get("p95", 0.0) for kind in ("health", "thumbnail")}
    served = {kind: report.percentiles(kind, server=True)["p95"] for kind in p95}
    for kind, value in p95.items():
        if value > 50.0:
            print(f"cheap route {kind}: p95 {value:.1f} ms > 50 ms (the server's own time: "
                  f"p95 {served[kind]:.1f} ms)")
    summary.append((engine, nice, *(f"{p95[k]:.1f} / {served[k]:.1f}" for k in p95),
                    float(np.percentile(predicts, 50)) if predicts else float("nan"),
                    len(report.outcomes), report.still_busy))
    return bool(report.server_errors or report.wrong_answers or growth > 0.10
                or max(p95.values()) > 50.0)


def print_probe(probed: dict[str, list[float]]) -> None:
    """The cheap routes as a separate caller saw them during the load, with the verdict."""
    print(f"\ncheap routes seen by a separate probe process during the load (one request "
          f"every {PROBE_INTERVAL * 1000:.0f} ms, own connection):")
    print(f"{'route':24s}{'n':>6s}{'failed':>8s}{'p50 ms':>9s}{'p95 ms':>9s}{'p99 ms':>9s}"
          f"{'max ms':>9s}")
    for path, times in probed.items():
        values = np.asarray(times, float)
        good = values[~np.isnan(values)]
        p50, p95, p99 = np.percentile(good, [50, 95, 99]) if len(good) else (np.nan,) * 3
        print(f"{path:24s}{len(values):6d}{int(np.isnan(values).sum()):8d}{p50:9.1f}"
              f"{p95:9.1f}{p99:9.1f}{good.max() if len(good) else np.nan:9.1f}")
        print(f"  target p95 < 50 ms for {path}: {'PASS' if p95 < 50 else 'MISS'}")


@contextlib.contextmanager
def _in_process(app) -> Iterator[tuple[str, None]]:
    from transferkit.service.loadtest import background_server

    with background_server(app) as url:
        yield url, None


@contextlib.contextmanager
def _server_process(args, engine: str = "torch", nice: int = 0) -> Iterator[tuple[str, int]]:
    """``transferkit serve`` on a free loopback port in a process of its own: (URL, pid)."""
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "transferkit", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--backbone", args.backbone, "--log-level", "warning",
               "--max-upload-mb", str(args.max_upload_mb), "--model-nice", str(nice),
               "--engine", engine]
    command += ["--model", args.model] if args.model else []
    command += ["--index", args.index] if args.index else []
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"transferkit serve exited: {server.stderr.read()[-500:]}")
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("transferkit serve did not start within 180 s")
            time.sleep(0.5)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def _rss_mb(pid: int | None = None) -> float:
    """Resident memory of the server's process (``pid``; default this one) in MB."""
    with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as fh:
        kb = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    return kb / 1024


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
