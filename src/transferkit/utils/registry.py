"""One registry class for everything looked up by name: backbones, heads, text encoders,
engines (and whatever a plugin adds through a Python entry point)."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from transferkit.errors import InvalidOptionError, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered ``factory`` with a one-line ``description`` and free-form ``metadata``."""

    name: str
    factory: Callable[..., T]
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def accepted_options(self) -> list[str] | None:
        """Keyword arguments the factory takes, or None when it takes any (``**kwargs``)."""
        params = inspect.signature(self.factory).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return None
        return [p.name for p in params
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


class Registry(Generic[T]):
    """``register`` / ``get`` / ``list`` / ``describe`` / ``create`` for one ``kind`` of thing.

    ``create(name, **options)`` refuses options the factory does not take, naming the ones it
    does. ``entry_point_group`` lets installed packages add entries without being imported by
    the code that looks them up.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Entry[T]] = {}
        self._plugins_loaded = entry_point_group is None

    def register(self, name: str, factory: Callable[..., T] | None = None, *,
                 description: str = "", **metadata: Any):
        """``registry.register("x", f)``, or as a decorator ``@registry.register("x")``."""

        def add(fn: Callable[..., T]) -> Callable[..., T]:
            self._entries[name] = Entry(name, fn, description, dict(metadata))
            return fn

        return add(factory) if factory is not None else add

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._entries or name in self._plugins())

    def get(self, name: str) -> Entry[T]:
        if name not in self._entries and name in self._plugins():
            self._load_plugin(name)
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose from "
                                   f"{', '.join(self.list()) or '(none registered)'}")
        return self._entries[name]

    def list(self, pattern: str | None = None) -> list[str]:
        """Sorted names, optionally filtered by a shell-style ``pattern`` (``"lite*"``)."""
        names = sorted(set(self._entries) | set(self._plugins()))
        return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]

    def describe(self) -> list[Entry[T]]:
        return [self.get(name) for name in self.list()]

    def create(self, name: str, **options: Any) -> T:
        entry = self.get(name)
        check_options(f"{self.kind} {name!r}", options, entry.accepted_options())
        return entry.factory(**options)

    # -- plugins ------------------------------------------------------------------------------
    def _plugins(self) -> dict[str, Any]:
        if self.entry_point_group is None:
            return {}
        return {ep.name: ep for ep in entry_points(group=self.entry_point_group)}

    def _load_plugin(self, name: str) -> None:
        # Importing the plugin module registers its entries; a plain callable is registered here.
        loaded = self._plugins()[name].load()
        if name not in self._entries and callable(loaded):
            self.register(name, loaded)


def check_options(what: str, options: dict[str, Any], accepted: Iterable[str] | None) -> None:
    """Refuse keyword arguments outside ``accepted`` (None accepts anything)."""
    if accepted is None:
        return
    accepted = list(accepted)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InvalidOptionError(f"{what} does not take {', '.join(unknown)}; it accepts "
                                 f"{', '.join(accepted) or 'no options'}")
