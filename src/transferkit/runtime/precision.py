"""Numeric precision of inference, and what this CPU can run fast.

``f32`` gives the same vectors as PyTorch; ``bf16`` (OpenVINO only) is several times faster
on CPUs with native bfloat16 instructions but moves embeddings slightly (see docs/speed.md);
``auto`` means bf16 where the CPU reports AVX512_BF16 or AMX and the engine runs it, else f32.
The flags are read from ``/proc/cpuinfo`` each time a precision is resolved, never assumed.
"""

from __future__ import annotations

import functools
from pathlib import Path

from transferkit.errors import InvalidOptionError

PRECISIONS = ("f32", "bf16", "auto")
# Native bfloat16 arithmetic: AVX512_BF16 (Cooper Lake, Zen 4+) or AMX tiles (Sapphire Rapids+).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags the kernel reports for this CPU (empty where unreadable)."""
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name, as ``/proc/cpuinfo`` spells it."""
    try:
        for line in CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def cpu_bf16_flags() -> list[str]:
    """Which of :data:`BF16_FLAGS` this CPU has (``[]``: no native bfloat16)."""
    flags = cpu_flags()
    return [f for f in BF16_FLAGS if f in flags]


def cpu_has_bf16() -> bool:
    return bool(cpu_bf16_flags())


def check_precision(precision: str) -> str:
    """Refuse names outside :data:`PRECISIONS`, saying what exists."""
    if precision == "int8":
        raise InvalidOptionError("precision 'int8' is not offered: NNCF post-training "
                                 "quantisation measured slower than bf16 and far less faithful "
                                 "(top-1 agreement with f32 70-75%, docs/speed.md, "
                                 "benchmarks/bench_int8.py); use f32, bf16 or auto")
    if precision not in PRECISIONS:
        raise InvalidOptionError(f"precision must be one of {', '.join(PRECISIONS)}, "
                                 f"got {precision!r}")
    return precision


def resolve_precision(precision: str, engine: str, engine_precisions: tuple[str, ...]) -> str:
    """``f32`` or ``bf16``: what ``engine`` (which runs ``engine_precisions``) will use here.

    ``auto`` takes bf16 only when both the engine and the CPU have it; an explicit ``bf16`` the
    engine or the CPU cannot run is an error naming the fix, not a silent f32 run.
    """
    check_precision(precision)
    if precision == "auto":
        return "bf16" if "bf16" in engine_precisions and cpu_has_bf16() else "f32"
    if precision not in engine_precisions:
        raise InvalidOptionError(f"engine {engine!r} runs {', '.join(engine_precisions)} only; "
                                 f"for {precision} use --engine openvino "
                                 f"(engine='openvino')")
    if precision == "bf16" and not cpu_has_bf16():
        raise InvalidOptionError(f"precision bf16 needs a CPU with {' or '.join(BF16_FLAGS)} "
                                 f"({cpu_model()} reports neither); use f32, or auto to take "
                                 f"bf16 only where it exists")
    return precision
