"""How ORM rows are stored: shared by :mod:`timecask.sqlalchemy` and the
Continuum importer (which must not need SQLAlchemy)."""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import uuid
from typing import Any, Dict, Optional, Tuple

import msgpack

from .codec import KeyCodec

_I64 = KeyCodec("i64")


def fallback(obj: Any) -> Any:
    """Column types MessagePack has no type for."""
    if isinstance(obj, _dt.datetime):  # naive: taken as UTC
        return obj.replace(tzinfo=_dt.timezone.utc)
    if isinstance(obj, (_dt.date, _dt.time)):
        return obj.isoformat()
    if isinstance(obj, (decimal.Decimal, uuid.UUID)):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    raise TypeError(f"cannot record a {type(obj).__name__} column value")


def encode_row(row: Dict[str, Any]) -> bytes:
    """A row (column attribute -> value) as a MessagePack map."""
    return msgpack.packb(row, use_bin_type=True, datetime=True, default=fallback)


def decode_row(data: Optional[bytes]) -> Optional[Dict[str, Any]]:
    """A stored row back to a dict (``None`` stays ``None``)."""
    if data is None:
        return None
    return msgpack.unpackb(data, raw=False, timestamp=3, strict_map_key=False)


def row_key(pk: Tuple[Any, ...]) -> bytes:
    """The timecask key of a primary key: an int as ``i64`` (ordered), a str
    as UTF-8, anything else (composite keys) as a MessagePack array."""
    if len(pk) == 1 and isinstance(pk[0], int) and not isinstance(pk[0], bool):
        return _I64.encode(pk[0])
    if len(pk) == 1 and isinstance(pk[0], str):
        return pk[0].encode()
    return msgpack.packb(list(pk), use_bin_type=True, datetime=True, default=fallback)
