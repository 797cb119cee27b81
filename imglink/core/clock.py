"""The one clock the domain reads: naive UTC datetimes in whole seconds.

Tests replace its source with `use(source)` instead of patching each module's time.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Source = Callable[[], dt.datetime]


def _system() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


_source: Source = _system


def utcnow() -> dt.datetime:
    """Return the current time: naive UTC, whole seconds (as records keep it)."""
    now = _source()
    if now.tzinfo is not None:
        now = now.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=0)


def use(source: Source | None) -> None:
    """Read the time from `source` from now on; None goes back to the system clock."""
    global _source
    _source = source or _system
