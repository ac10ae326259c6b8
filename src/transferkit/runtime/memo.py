"""Objects built from a backbone (inference sessions, compiled models), remembered in memory.

Building one costs from a fraction of a second to a few seconds; per-query callers (search,
the service, index chunks) would pay it every time. Entries hang off the timm model (shared
by copies of a Backbone that differ only in preprocessing, and dropped with it) and are
keyed by a caller's ``config``; parameter storage + version counters change whenever
weights are assigned or updated in place (optimiser steps, ``load_state_dict``), so a stale
entry is detected without hashing the weights.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


def weights_state(backbone) -> tuple:
    """Cheap token that changes whenever the backbone's weights do."""
    return tuple((t.data_ptr(), t._version) for t in backbone.model.state_dict().values())


class BackboneMemo(Generic[T]):
    """``get_or_build(backbone, config, build)``: one ``build()`` per backbone weights + config."""

    def __init__(self) -> None:
        self._entries: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, backbone, config: Hashable) -> T | None:
        entry = self._entries.get(backbone.model, {}).get(config)
        if entry is not None and entry[0] == weights_state(backbone):
            return entry[1]
        return None

    def get_or_build(self, backbone, config: Hashable, build: Callable[[], T]) -> T:
        with self._lock:
            hit = self.get(backbone, config)
            if hit is not None:
                return hit
            value = build()
            self._entries.setdefault(backbone.model, {})[config] = (weights_state(backbone),
                                                                    value)
            return value

    def holds_any(self, backbone) -> bool:
        """True when some config of this backbone's current weights is remembered."""
        state = weights_state(backbone)
        return any(s == state for s, _ in self._entries.get(backbone.model, {}).values())
