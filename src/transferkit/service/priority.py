"""Cheap routes first: the model's threads run at a lower CPU priority than the event loop.

The bounded queue in :class:`InferenceEngine` limits how much model work waits, but on a small
machine the model's threads and the event loop still compete for the same cores, and the
scheduler shares them evenly: with 200 clients on 2 cores /api/health waited ~0.6 s for a core
(bench_service). Linux applies ``nice`` per thread, so raising it on the model's threads lets
the event loop (and the thumbnail threads it starts later, which inherit its priority) preempt
them, while inference still gets every cycle nobody else wants. Elsewhere this is a no-op.

Measured (``bench_service.py --model-nice 0 10``, one run, 200 clients, 2 cores): it did not
help: health p95 207 ms with the model at nice 0 vs 570 ms at nice 10 (thumbnails 279 vs 576
ms), so ``transferkit serve`` leaves it off (``--model-nice 0``). The cheap routes wait for
the event loop itself, which also answers ~7,500 retried 503s a minute at that load.
"""

from __future__ import annotations

import os
import threading


def lower_thread_priority(nice: int, thread_id: int | None = None) -> bool:
    """Raise one thread's nice value by ``nice`` (default: the calling thread); False when the
    platform cannot (not Linux, or not permitted)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return False
    tid = threading.get_native_id() if thread_id is None else thread_id
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + nice))
    except OSError:
        return False
    return True


def lower_other_threads(nice: int, keep: int | None = None) -> int:
    """Lower every thread of this process but ``keep`` (default: the caller): the model's
    thread pools, created while loading, run below the event loop. Returns how many."""
    keep = threading.get_native_id() if keep is None else keep
    try:
        tids = [int(name) for name in os.listdir("/proc/self/task")]
    except OSError:
        return 0
    return sum(lower_thread_priority(nice, tid) for tid in tids if tid != keep)
