"""Shared CLI helpers: turn library errors into one clear line and exit code 2."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from transferkit.errors import TransferkitError, is_disk_full

F = TypeVar("F", bound=Callable)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

# What a user's input can cause: transferkit's own errors, and bad paths or values. Anything
# else (KeyError, TypeError, ...) is a bug and keeps its traceback.
USER_ERRORS = (TransferkitError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
               PermissionError, ValueError)


def friendly_errors(func: F) -> F:
    """Expected user mistakes print ``error: <file>: <reason>`` and exit 2, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as exc:
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(2) from None
        except OSError as exc:  # a full disk is the machine's state, not a bug
            if not is_disk_full(exc):
                raise
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            err_console.print(f"[red]error:[/red] {escape(where)}no space left on the device "
                              f"or over the file-size limit ({escape(str(exc))[:120]})",
                              highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


# = transferkit.data.DEFAULT_MAX_PIXELS (Pillow's own warning threshold), written out so that
# building the CLI does not import Pillow; tests/test_inventory.py checks they agree.
DEFAULT_MAX_PIXELS = 89_478_485
MAX_PIXELS = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1,
                          help="Skip images with more decoded pixels than this (JPEGs count "
                               "after DCT-scaled decoding); default: Pillow's "
                               "decompression-bomb warning threshold.")
ENGINE_HELP = ("auto (OpenVINO, else ONNX Runtime, when installed and the job is big enough; "
               "else PyTorch), openvino, onnx or torch.")
PRECISION_HELP = ("f32 (PyTorch's outputs), bf16 (OpenVINO on CPUs with AVX512_BF16/AMX: "
                  "faster, outputs move slightly) or auto (bf16 where the CPU has it).")


def engine_option(default: str = "auto", more: str = "") -> Any:
    """The ``--engine`` option every command that runs an image model shares."""
    return typer.Option(default, "--engine", help=f"Model engine: {ENGINE_HELP}{more}")


def precision_option() -> Any:
    """The ``--precision`` option next to every ``--engine``."""
    return typer.Option("f32", "--precision", help=f"Model arithmetic: {PRECISION_HELP}")


def print_runtime(runtime: dict[str, str]) -> None:
    """Say once (on stderr, so JSON output stays clean) which engine and precision ran."""
    if runtime:
        err_console.print(f"engine: {runtime.get('engine')}, precision: "
                          f"{runtime.get('precision')}", highlight=False)


def report_failures(failures, ignored=(), report: Path | None = None, limit: int = 10,
                    what: str = "unreadable file") -> None:
    """A short summary on stderr of what was skipped (with reasons) and ignored; the full
    list is in ``report`` when one was written."""
    from transferkit.data import describe_ignored

    failures = list(failures)
    where = f" (all listed in {escape(str(report))})" if report is not None else ""
    if failures:
        err_console.print(f"[yellow]skipped {len(failures)} {what}(s){where}:"
                          f"[/yellow]", highlight=False)
        for path, reason in failures[:limit]:
            err_console.print(f"  {path}: {reason}", highlight=False, markup=False)
        if len(failures) > limit:
            err_console.print(f"  … and {len(failures) - limit} more", highlight=False)
    if ignored:
        err_console.print(describe_ignored(ignored) + ("" if failures else where),
                          highlight=False, markup=False)


def write_and_report_failures(output: Path, failures, ignored=(),
                              what: str = "unreadable file") -> Path | None:
    """Write ``OUTPUT.failures.csv`` beside ``output`` (or remove a stale one), then
    :func:`report_failures` pointing at it."""
    from transferkit.data import write_failure_report

    failures = [(str(p), str(r)) for p, r in failures]
    report = write_failure_report(output, failures, ignored)
    report_failures(failures, ignored, report, what=what)
    return report


def print_topk_results(results: list[dict], failures, as_json: bool, ignored=()) -> None:
    """Shared output of classify / predict: ``results`` rows are {path, top_k: [{label,
    probability}]}, ``failures`` (path, reason) pairs, ``ignored`` non-image files. Exits 1
    when nothing could be read."""
    if as_json:
        print(json.dumps({"results": results,
                          "failures": [{"path": str(p), "reason": r} for p, r in failures],
                          "ignored": [str(p) for p in ignored]}, indent=2))
    else:
        for res in results:
            console.print(f"[bold]{res['path']}[/bold]", highlight=False)
            for rank, item in enumerate(res["top_k"], 1):
                console.print(f"  {rank}. {item['probability']:6.1%}  {item['label']}",
                              highlight=False)
    report_failures(failures, ignored)
    if not results:
        raise typer.Exit(1)
