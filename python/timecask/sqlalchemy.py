"""Record SQLAlchemy ORM changes in timecask, in SQLAlchemy-Continuum's terms.

>>> from timecask.sqlalchemy import versioned
>>> history = versioned(Base, db, user=lambda: current_user_name())
>>> # ... sessions commit as usual; each commit that changed versioned rows
>>> # is one timecask transaction with "user" and "remote_addr" metadata
>>> history.versions(alice)            # every version of the row
>>> history.version_at(alice, txid)    # the row (a dict) as of a txid
>>> history.changeset(version)         # {field: (old, new)}
>>> history.revert(session, alice, txid)
>>> history.transaction_changes(txid)  # {table: [Change, ...]}
>>> history.as_of(User, txid)          # the whole table as of a txid

Every mapped class of ``Base`` is versioned unless it sets
``__versioned__ = False``. A row is stored in the timecask table named
like its SQL table, under its primary key (an int as an order-preserving
``i64`` key, a str as UTF-8, anything else as MessagePack), its value a
MessagePack map of column attribute → value.

What is recorded: inserts, updates and deletes flushed by the ORM (a delete
and an insert of the same primary key in one flush is one Update), and bulk
ORM ``update()``/``delete()`` statements executed through the session (the
rows they match are read before and after). The changes of one session
transaction become one timecask transaction when it commits; a rollback
records nothing. timecask commits right after the SQL commit succeeds
(retrying on a conflict with another session's commit of the same row).

Not tracked: a rolled-back SAVEPOINT (``begin_nested``) inside a session
transaction that later commits still records the changes flushed inside it;
Core ``connection.execute()`` statements bypass the session and are not seen.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from sqlalchemy import event, inspect, select, tuple_
from sqlalchemy.orm import Session

from ._errors import ConflictError
from ._table import changeset as _changeset
from ._rows import decode_row as _decode
from ._rows import encode_row as _encode
from ._rows import row_key as _key

__all__ = ["versioned", "Versioning", "RowVersion"]

_PENDING = "timecask_pending"


class Versioning:
    """The handle ``versioned()`` returns: the hooks' state and the accessors."""

    def __init__(
        self,
        base: Any,
        db: Any,
        user: Optional[Callable[[], Optional[str]]] = None,
        remote_addr: Optional[Callable[[], Optional[str]]] = None,
        session: Any = Session,
    ) -> None:
        self.base = base
        self.db = db
        self.user = user
        self.remote_addr = remote_addr
        self.session = session
        self.last_txid: Optional[int] = None
        # Per handle: two versioned bases in one process keep apart.
        self._info_key = f"{_PENDING}_{id(self)}"
        event.listen(session, "after_flush", self._after_flush)
        event.listen(session, "do_orm_execute", self._do_orm_execute)
        event.listen(session, "after_commit", self._after_commit)
        event.listen(session, "after_soft_rollback", self._after_soft_rollback)

    def remove(self) -> None:
        """Stops recording (removes the session event hooks)."""
        event.remove(self.session, "after_flush", self._after_flush)
        event.remove(self.session, "do_orm_execute", self._do_orm_execute)
        event.remove(self.session, "after_commit", self._after_commit)
        event.remove(self.session, "after_soft_rollback", self._after_soft_rollback)

    # -- which rows, under which key --------------------------------------

    def is_versioned(self, cls: Any) -> bool:
        """Whether instances of ``cls`` are recorded."""
        return isinstance(cls, type) and issubclass(cls, self.base) and getattr(cls, "__versioned__", True) is not False

    @staticmethod
    def _table(mapper: Any) -> str:
        return mapper.local_table.name

    @staticmethod
    def _row(mapper: Any, obj: Any) -> Dict[str, Any]:
        return {prop.key: getattr(obj, prop.key) for prop in mapper.column_attrs}

    def _target(self, obj_or_class: Any, pk: Any = None) -> Tuple[Any, bytes]:
        if pk is None:
            state = inspect(obj_or_class)
            return state.mapper, _key(tuple(state.mapper.primary_key_from_instance(obj_or_class)))
        mapper = inspect(obj_or_class)
        return mapper, _key(pk if isinstance(pk, tuple) else (pk,))

    # -- the hooks ----------------------------------------------------------

    def _pending(self, session: Any) -> Dict[Tuple[str, bytes], Optional[bytes]]:
        return session.info.setdefault(self._info_key, {})

    def _after_flush(self, session: Any, _flush_context: Any) -> None:
        pending = self._pending(session)
        # Deletes first: a delete and an insert of one key in a flush is an update.
        for obj in session.deleted:
            if self.is_versioned(type(obj)):
                mapper, key = self._target(obj)
                pending[(self._table(mapper), key)] = None
        for obj in list(session.new) + [o for o in session.dirty if session.is_modified(o)]:
            if not self.is_versioned(type(obj)):
                continue
            state = inspect(obj)
            mapper = state.mapper
            # A primary key changed by an update: the old key is deleted.
            for prop in mapper.column_attrs:
                if prop.columns[0].primary_key:
                    old = state.attrs[prop.key].history.deleted
                    if old and old[0] is not None:
                        old_pk = [
                            (old[0] if p.key == prop.key else getattr(obj, p.key))
                            for p in mapper.column_attrs
                            if p.columns[0].primary_key
                        ]
                        pending[(self._table(mapper), _key(tuple(old_pk)))] = None
            _, key = self._target(obj)
            pending[(self._table(mapper), key)] = _encode(self._row(mapper, obj))

    def _do_orm_execute(self, state: Any) -> Any:
        if not (state.is_update or state.is_delete):
            return None
        mapper = state.bind_mapper
        if mapper is None or not self.is_versioned(mapper.class_):
            return None
        session = state.session
        where = state.statement.whereclause
        pk_cols = list(mapper.primary_key)
        matched = select(*pk_cols)
        if where is not None:
            matched = matched.where(where)
        pks = [tuple(r) for r in session.execute(matched)]
        result = state.invoke_statement()
        pending = self._pending(session)
        table = self._table(mapper)
        if state.is_delete:
            for pk in pks:
                pending[(table, _key(pk))] = None
            return result
        props = list(mapper.column_attrs)
        for chunk in range(0, len(pks), 500):
            part = pks[chunk : chunk + 500]
            rows = session.execute(
                select(*[p.columns[0] for p in props]).where(tuple_(*pk_cols).in_(part))
            )
            for row in rows:
                values = {p.key: v for p, v in zip(props, row)}
                pk = tuple(values[mapper.get_property_by_column(c).key] for c in pk_cols)
                pending[(table, _key(pk))] = _encode(values)
        return result

    def _after_soft_rollback(self, session: Any, previous_transaction: Any) -> None:
        if previous_transaction.parent is None or not session.in_transaction():
            session.info.pop(self._info_key, None)

    def _meta(self) -> Dict[str, str]:
        meta = {}
        for name, source in (("user", self.user), ("remote_addr", self.remote_addr)):
            value = source() if source is not None else None
            if value is not None:
                meta[name] = str(value)
        return meta

    def _after_commit(self, session: Any) -> None:
        pending = session.info.pop(self._info_key, None)
        if not pending:
            return
        meta = self._meta()
        while True:
            try:
                with self.db.transaction(meta=meta) as tx:
                    for (table, key), value in pending.items():
                        if value is None:
                            tx.delete(table, key)
                        else:
                            tx.put(table, key, value)
                break
            except ConflictError:
                continue  # another session's commit of the same row landed first: write ours after it
        self.last_txid = tx.txid
        session.info["timecask_txid"] = tx.txid

    # -- Continuum's accessors ----------------------------------------------

    def versions(self, obj: Any, pk: Any = None) -> List["RowVersion"]:
        """Every version of a row (an instance, or a class and primary key),
        oldest first, values decoded to dicts."""
        mapper, key = self._target(obj, pk)
        table = self._table(mapper)
        out: List[RowVersion] = []
        previous = None
        for v in self.db.snapshot().history(table, key):
            value = _decode(v.value)
            out.append(RowVersion(table, key, v.txid, v.end_txid, v.op, value, v.commit_time, v.meta, previous))
            previous = value
        return out

    def version_at(self, obj: Any, txid: int, pk: Any = None) -> Optional[Dict[str, Any]]:
        """The row as of ``txid`` (a dict), ``None`` if it did not exist then."""
        mapper, key = self._target(obj, pk)
        return _decode(self.db.as_of(txid).get(self._table(mapper), key))

    @staticmethod
    def changeset(version: "RowVersion") -> Dict[str, Tuple[Any, Any]]:
        """What one version changed: ``{field: (old, new)}`` (``None`` on the missing side)."""
        return version.changeset

    def revert(self, session: Any, obj: Any, txid: int) -> None:
        """Puts ``obj``'s columns back to their values as of ``txid`` in
        ``session`` (deletes it if it did not exist then); commit to record it."""
        old = self.version_at(obj, txid)
        if old is None:
            session.delete(obj)
            return
        mapper = inspect(obj).mapper
        for prop in mapper.column_attrs:
            if prop.key in old:
                setattr(obj, prop.key, _restore(prop, old[prop.key]))

    def transaction_changes(self, txid: int) -> Dict[str, List[Any]]:
        """Every row transaction ``txid`` changed, by table: ``Change`` objects
        with decoded values (keys as stored)."""
        out: Dict[str, List[Any]] = {}
        for c in self.db.transaction_record(txid).changes:
            out.setdefault(c.table, []).append(c.with_value(c.key, _decode(c.value)))
        return out

    def as_of(self, cls: Any, txid: int) -> List[Dict[str, Any]]:
        """The whole table of ``cls`` as of ``txid``: its rows as dicts, in key order."""
        table = self._table(inspect(cls))
        return [_decode(v) for _, v in self.db.as_of(txid).range(table)]


@dataclass(frozen=True)
class RowVersion:
    """One version of a row: Continuum's ``<table>_version`` row."""

    table: str
    key: bytes
    txid: int
    end_txid: Optional[int]
    op: str
    value: Optional[Dict[str, Any]]
    commit_time: _dt.datetime
    meta: Dict[str, str]
    previous: Optional[Dict[str, Any]]

    @property
    def changeset(self) -> Dict[str, Tuple[Any, Any]]:
        """``{field: (old, new)}`` against the previous version."""
        return _changeset(self.previous, self.value)


def _restore(prop: Any, value: Any) -> Any:
    """A recorded value back to the column's Python type where the codec changed it."""
    column = prop.columns[0]
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return value
    if value is None:
        return None
    if python_type is _dt.datetime and isinstance(value, _dt.datetime):
        if not getattr(column.type, "timezone", False):
            return value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return value
    if python_type in (_dt.date, _dt.time) and isinstance(value, str):
        return python_type.fromisoformat(value)
    if python_type in (decimal.Decimal, uuid.UUID) and isinstance(value, str):
        return python_type(value)
    return value


def versioned(
    base: Any,
    db: Any,
    user: Optional[Callable[[], Optional[str]]] = None,
    remote_addr: Optional[Callable[[], Optional[str]]] = None,
    session: Any = Session,
) -> Versioning:
    """Records every commit of versioned models of ``base`` into timecask
    database ``db``; ``user()`` and ``remote_addr()`` give each
    transaction's metadata. ``session``: the Session class (or
    sessionmaker, or one session) to hook, every ``Session`` by default."""
    return Versioning(base, db, user=user, remote_addr=remote_addr, session=session)
