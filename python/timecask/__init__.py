"""timecask: an embedded temporal key-value store.

Every write is kept: read the database as of any past transaction, list a
key's history with who changed it and why, see what one transaction
changed, follow a change feed.

>>> import timecask
>>> db = timecask.open("my-db")
>>> with db.transaction(meta={"user": "ann"}) as tx:
...     tx.insert("user", "1", b"Alice")
>>> t1 = tx.txid
>>> t2 = db.put("user", "1", b"Bob")
>>> db.get("user", "1"), db.as_of(t1).get("user", "1")
(b'Bob', b'Alice')

Values are ``bytes``; ``db.table(name, codec="msgpack")`` stores Python
objects (see :mod:`timecask.codec`). Errors are subclasses of
:class:`timecask.Error` carrying the fields of the Rust error.
"""

from __future__ import annotations

import os
from typing import Optional, Union

from . import codec
from ._errors import *  # noqa: F401,F403  (the exception classes)
from ._errors import __all__ as _error_names
from ._native import (
    ChangeFeed,
    Change,
    CheckpointReport,
    CompactReport,
    Db,
    DiffEntry,
    LogIterator,
    RangeIterator,
    Stats,
    Transaction,
    TxRecord,
    VerifyReport,
    Version,
    View,
)
from ._table import Table, changeset

__version__ = "0.1.0"


def open(
    path: Union[str, "os.PathLike[str]"],
    *,
    durability: str = "immediate",
    read_only: bool = False,
    create_if_missing: bool = True,
    lock_timeout: float = 0.0,
    record_identical_updates: bool = False,
    checkpoint_on_close: bool = True,
    value_cache_bytes: Optional[int] = None,
    segment_roll_bytes: Optional[int] = None,
    history_runs: bool = True,
    seal_log_bytes: Optional[int] = None,
    memory_budget: Optional[int] = None,
    run_compression: Optional[str] = None,
) -> Db:
    """Opens (or creates) the database in directory ``path``.

    ``durability``: ``"immediate"`` (a commit returns once fsynced) or
    ``"buffered"`` (once the OS has it; ``db.flush()`` syncs). ``read_only``:
    open beside a writer without taking the lock. ``lock_timeout``: seconds
    to wait for another process to close it (``LockedError`` after).
    ``record_identical_updates``: record a version even when an update
    writes the value the key already has. ``history_runs``,
    ``seal_log_bytes`` (``0``: no background sealing), ``memory_budget`` and
    ``run_compression`` (``"lz4"``, ``"zstd"``, ``"none"``) are as for
    ``Db``. Use it as a context manager to close it at the end of a block.
    """
    return Db(
        path,
        durability=durability,
        read_only=read_only,
        create_if_missing=create_if_missing,
        lock_timeout=lock_timeout,
        record_identical_updates=record_identical_updates,
        checkpoint_on_close=checkpoint_on_close,
        value_cache_bytes=value_cache_bytes,
        segment_roll_bytes=segment_roll_bytes,
        history_runs=history_runs,
        seal_log_bytes=seal_log_bytes,
        memory_budget=memory_budget,
        run_compression=run_compression,
    )


__all__ = [
    "open",
    "Db",
    "View",
    "Transaction",
    "Table",
    "Version",
    "Change",
    "TxRecord",
    "DiffEntry",
    "ChangeFeed",
    "LogIterator",
    "RangeIterator",
    "Stats",
    "VerifyReport",
    "CompactReport",
    "CheckpointReport",
    "changeset",
    "codec",
    *_error_names,
]
