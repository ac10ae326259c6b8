"""`transferkit` command line: a thin layer over the Python API.

Each module in this package that defines ``register(app)`` adds its own commands, so
capabilities plug in without editing a central list.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Reuse what ImageNet-pretrained networks know: classify, embed, train, "
                       "search, visualise.")


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def main() -> None:
    app()
