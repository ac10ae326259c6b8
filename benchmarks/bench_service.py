"""Load test of the HTTP service: several concurrent clients on loopback, bounded in time.

Why: the service must stay correct under concurrent use (no 5xx, bad uploads get 4xx) and
its latency should be the model's, not the web layer's. Rows, measured in the same run:

* ``direct``: the same prediction called in-process (decode + model, no HTTP), one caller:
  the baseline cost of the work itself;
* ``http 1 client``: the same predictions one at a time over HTTP (adds the web layer);
* ``http N clients``: a mixed workload (predict, embed, search, thumbnails, health and ~20 %
  bad uploads) from N concurrent clients, with a per-kind breakdown.

Run: ``.venv/bin/python benchmarks/bench_service.py [--requests 300] [--clients 8]
[--time-limit 120] [--index INDEX] [--model DIR]`` (only 127.0.0.1 is ever contacted).
Numbers taken while other jobs load the CPU are noisy; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def _row(name: str, clients: int, times_ms: list[float], errors: int, wall: float) -> str:
    p50, p95, p99 = np.percentile(times_ms, [50, 95, 99]) if times_ms else (np.nan,) * 3
    rate = len(times_ms) / wall if wall > 0 else 0.0
    return (f"{name:<28}{clients:>8}{len(times_ms):>7}{errors:>8}{p50:>10.1f}{p95:>10.1f}"
            f"{p99:>10.1f}{rate:>9.1f}")


def main() -> None:
    import httpx

    from transferkit.data import sample_photo
    from transferkit.service import create_app, decode_upload
    from transferkit.service.loadtest import background_server, run_load, standard_calls

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="mixed-load requests")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds, hard stop")
    parser.add_argument("--serial", type=int, default=30, help="requests in the 1-caller rows")
    parser.add_argument("--index", help="image index file (adds search + thumbnails)")
    parser.add_argument("--model", help="trained model directory")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--max-upload-mb", type=float, default=2.0)
    args = parser.parse_args()
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

    with background_server(app) as url:
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
        calls = standard_calls(image_bytes, args.requests, with_search=args.index is not None,
                               oversized_bytes=int(limit * 1.25))
        report = run_load(url, calls, clients=args.clients, time_limit=args.time_limit)

    print(f"\n{'mode':<28}{'clients':>8}{'n':>7}{'errors':>8}{'p50 ms':>10}{'p95 ms':>10}"
          f"{'p99 ms':>10}{'req/s':>9}")
    print(_row("direct predict (no HTTP)", 1, direct_ms, 0, direct_wall))
    print(_row("http predict", 1, serial_ms, serial_errors, serial_wall))
    mixed = [o.seconds * 1000 for o in report.outcomes]
    print(_row(f"http mixed ({len(calls)} planned)", args.clients, mixed,
               len(report.wrong_answers), report.wall_seconds))
    predicts = [o.seconds * 1000 for o in report.outcomes if o.kind == "predict"]
    print(_row("  of which predict", args.clients, predicts,
               sum(1 for o in report.wrong_answers if o.kind == "predict"), report.wall_seconds))
    print("\nmixed load, per kind (errors = not the expected 200 / 4xx):")
    print(report.table())
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if report.server_errors or report.wrong_answers:
        raise SystemExit(1)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
