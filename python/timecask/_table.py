"""Typed table handles: one table of a database, view or transaction, with
a value codec and a key encoding (see :mod:`timecask.codec`)."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

from . import _native
from .codec import key_codec, value_codec

_MISSING = object()


class Table:
    """One table through a codec: ``db.table("user", codec="msgpack", key="u64")``.

    On a ``Db`` it reads the latest state and each write is a transaction
    of its own (``meta=`` sets its metadata); on a ``View`` it reads that
    view; on a ``Transaction`` it reads and writes inside the transaction.
    Keys and values are encoded on the way in and decoded on the way out,
    in versions, changes and diffs too.
    """

    def __init__(self, target: Any, name: str, codec: Any = None, key: Any = None) -> None:
        self.target = target
        self.name = name
        self.codec = value_codec(codec)
        self.keys = key_codec(key)

    def __repr__(self) -> str:
        return f"<timecask.Table {self.name!r} codec={self.codec.name!r} key={self.keys.name!r} on {self.target!r}>"

    # -- reading -----------------------------------------------------------

    def _reader(self) -> Any:
        return self.target.snapshot() if isinstance(self.target, _native.Db) else self.target

    def _decode(self, raw: Optional[bytes]) -> Any:
        return None if raw is None else self.codec.decode(raw)

    def get(self, key: Any, default: Any = None) -> Any:
        """The decoded value of ``key``, or ``default`` if absent."""
        raw = self._reader().get(self.name, self.keys.encode(key))
        return default if raw is None else self.codec.decode(raw)

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: Any) -> bool:
        return self._reader().contains(self.name, self.keys.encode(key))

    def range(self, start: Any = None, end: Any = None, *, reverse: bool = False) -> Iterator[Tuple[Any, Any]]:
        """Decoded ``(key, value)`` pairs with ``start <= key < end``."""
        lo = None if start is None else self.keys.encode(start)
        hi = None if end is None else self.keys.encode(end)
        for k, v in self._reader().range(self.name, lo, hi, reverse=reverse):
            yield self.keys.decode(k), self.codec.decode(v)

    def prefix(self, prefix: Any, *, reverse: bool = False) -> Iterator[Tuple[Any, Any]]:
        """Decoded ``(key, value)`` pairs whose encoded key starts with ``prefix``'s."""
        for k, v in self._reader().prefix(self.name, self.keys.encode(prefix), reverse=reverse):
            yield self.keys.decode(k), self.codec.decode(v)

    def items(self, *, reverse: bool = False) -> Iterator[Tuple[Any, Any]]:
        """Every decoded ``(key, value)`` pair, in key order."""
        return self.range(reverse=reverse)

    def __iter__(self) -> Iterator[Any]:
        return (k for k, _ in self.range())

    def count(self) -> int:
        """Number of live keys."""
        reader = self._reader()
        if isinstance(reader, _native.Transaction):
            return len(reader.range(self.name))
        return reader.count(self.name)

    def __len__(self) -> int:
        return self.count()

    def _version(self, v: Any) -> Any:
        return v.with_value(self._decode(v.value))

    def get_version(self, key: Any) -> Any:
        """The ``Version`` of ``key`` visible here, value decoded (``None`` if absent)."""
        v = self._reader().get_version(self.name, self.keys.encode(key))
        return None if v is None else self._version(v)

    def history(self, key: Any, **query: Any) -> List[Any]:
        """``key``'s versions, values decoded (arguments as ``View.history``)."""
        return [self._version(v) for v in self._reader().history(self.name, self.keys.encode(key), **query)]

    def changeset(self, key: Any, txid: int) -> Dict[Any, Tuple[Any, Any]]:
        """What transaction ``txid`` changed in ``key``'s value, field by field:
        ``{field: (old, new)}`` for dict values (``None`` for a missing side),
        ``{None: (old, new)}`` for other values. Empty if ``txid`` did not write it."""
        db = self._db()
        written = [v for v in db.as_of(txid).history(self.name, self.keys.encode(key), first=txid, last=txid)]
        if not written:
            return {}
        old = db.as_of(txid - 1).get(self.name, self.keys.encode(key)) if txid > 0 else None
        return changeset(self._decode(old), self._decode(written[0].value))

    # -- writing -----------------------------------------------------------

    def _db(self) -> Any:
        if isinstance(self.target, _native.Db):
            return self.target
        raise TypeError("this needs the table handle of a Db (db.table(...))")

    def _write(self, method: str, key: Any, *args: Any, meta: Optional[Dict[str, str]] = None) -> Any:
        if isinstance(self.target, _native.View):
            raise TypeError("a view is read-only: write through db.table(...) or tx.table(...)")
        kw = {} if isinstance(self.target, _native.Transaction) else {"meta": meta}
        if meta is not None and not kw:
            raise TypeError("inside a transaction, set metadata with tx.set_meta(...)")
        return getattr(self.target, method)(self.name, self.keys.encode(key), *args, **kw)

    def put(self, key: Any, value: Any, *, meta: Optional[Dict[str, str]] = None) -> Any:
        """Writes ``value`` under ``key`` (on a Db: its txid)."""
        return self._write("put", key, self.codec.encode(value), meta=meta)

    def insert(self, key: Any, value: Any, *, meta: Optional[Dict[str, str]] = None) -> Any:
        """Inserts ``key`` (``KeyExistsError`` if live)."""
        return self._write("insert", key, self.codec.encode(value), meta=meta)

    def update(self, key: Any, value: Any, *, meta: Optional[Dict[str, str]] = None) -> Any:
        """Updates ``key`` (``KeyNotFoundError`` if not live)."""
        return self._write("update", key, self.codec.encode(value), meta=meta)

    def delete(self, key: Any, *, meta: Optional[Dict[str, str]] = None) -> Any:
        """Deletes ``key``."""
        return self._write("delete", key, meta=meta)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: Any) -> None:
        self.delete(key)

    def revert(self, key: Any, to_txid: int, *, meta: Optional[Dict[str, str]] = None) -> Any:
        """Writes ``key``'s value as of ``to_txid`` back as a new version."""
        return self._write("revert", key, to_txid, meta=meta)

    def diff(self, from_txid: int, to_txid: int) -> List[Any]:
        """``DiffEntry`` list between two txids, keys and values decoded (Db handles)."""
        return [
            d.with_values(self.keys.decode(d.key), self._decode(d.before), self._decode(d.after))
            for d in self._db().diff(self.name, from_txid, to_txid)
        ]

    def changes(self, record: Any) -> List[Any]:
        """The changes of a ``TxRecord`` to this table, keys and values decoded."""
        return [
            c.with_value(self.keys.decode(c.key), self._decode(c.value))
            for c in record.changes
            if c.table == self.name
        ]


def changeset(old: Any, new: Any) -> Dict[Any, Tuple[Any, Any]]:
    """Field-level differences between two decoded values (see ``Table.changeset``)."""
    if isinstance(old, dict) or isinstance(new, dict):
        before = old if isinstance(old, dict) else {}
        after = new if isinstance(new, dict) else {}
        fields = list(before) + [f for f in after if f not in before]
        return {f: (before.get(f), after.get(f)) for f in fields if before.get(f, _MISSING) != after.get(f, _MISSING)}
    return {} if old == new else {None: (old, new)}
