"""Conversions the native module calls: commit times to and from ``datetime``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO = timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    """Microseconds since the Unix epoch as an aware UTC ``datetime`` (exact)."""
    return _EPOCH + timedelta(microseconds=micros)


def to_micros(when: datetime) -> int:
    """An aware ``datetime`` as microseconds since the Unix epoch (0 if earlier)."""
    if not isinstance(when, datetime):
        raise TypeError(f"expected a datetime, got {type(when).__name__}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("give an aware datetime (e.g. datetime.now(timezone.utc)), not a naive one")
    return max(0, (when - _EPOCH) // _MICRO)
