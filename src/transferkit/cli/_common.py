"""Shared CLI helpers: turn library errors into one clear line and exit code 2."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from transferkit.errors import TransferkitError

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

    return wrapper  # type: ignore[return-value]


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


def report_failures(failures, limit: int = 20) -> None:
    if not failures:
        return
    err_console.print(f"[yellow]skipped {len(failures)} unreadable file(s):[/yellow]")
    for path, reason in list(failures)[:limit]:
        err_console.print(f"  {path}: {reason}", highlight=False, markup=False)
    if len(failures) > limit:
        err_console.print(f"  … and {len(failures) - limit} more")


def print_topk_results(results: list[dict], failures, as_json: bool) -> None:
    """Shared output of classify / predict: ``results`` rows are {path, top_k: [{label,
    probability}]}, ``failures`` (path, reason) pairs. Exits 1 when nothing could be read."""
    if as_json:
        print(json.dumps({"results": results, "failures": [{"path": p, "reason": r}
                                                           for p, r in failures]}, indent=2))
    else:
        for res in results:
            console.print(f"[bold]{res['path']}[/bold]", highlight=False)
            for rank, item in enumerate(res["top_k"], 1):
                console.print(f"  {rank}. {item['probability']:6.1%}  {item['label']}",
                              highlight=False)
    report_failures(failures)
    if not results:
        raise typer.Exit(1)
