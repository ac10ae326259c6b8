"""One progress-bar style for every long job; silent when TRANSFERKIT_QUIET=1 or not a TTY."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str = "", total: int | None = None,
             unit: str = "it") -> Iterator[T]:
    # None lets tqdm hide the bar when stderr is not a terminal (logs, CI, pipes).
    disable = True if os.environ.get("TRANSFERKIT_QUIET") == "1" else None
    return iter(tqdm(items, desc=desc, total=total, unit=unit, disable=disable,
                     dynamic_ncols=True, leave=False))
