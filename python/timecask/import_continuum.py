"""Import an SQLAlchemy-Continuum SQLite database into a new timecask database.

    python -m timecask.import_continuum example.db TARGET_DIR

Reads the ``transaction`` table (``id``, ``issued_at``, and ``remote_addr``
and ``user_id`` when present) and every ``<table>_version`` table
(``transaction_id``, ``end_transaction_id``, ``operation_type`` plus the
model's columns), in one pass ordered by transaction id, and writes each
Continuum transaction as the timecask transaction with the same id: row
values as MessagePack maps under the keys :mod:`timecask.sqlalchemy` uses,
so its accessors work on the imported history.

Metadata of each transaction: ``user`` (from ``user_id``), ``remote_addr``,
``issued_at`` (ISO 8601, UTC as Continuum writes it) and
``continuum_transaction_id``. timecask assigns commit times itself, so
``commit_time`` is the import time; ``issued_at`` keeps the original.

Problems are reported, not fatal: a gap in the transaction ids is filled by
a marker transaction (table ``continuum_import``) so later ids still match;
a version whose ``end_transaction_id`` is not the next version's
``transaction_id``, an operation type that contradicts the row's history
(an insert of a live row, an update or delete of a missing one) and version
rows naming a transaction that does not exist are listed in the report.
"""

from __future__ import annotations

import argparse
import heapq
import sqlite3
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from . import open as _open
from ._errors import Error
from ._rows import encode_row as _encode
from ._rows import row_key as _key

__all__ = ["import_continuum", "ImportReport"]

_OPS = {0: "insert", 1: "update", 2: "delete"}
_CONTROL = {"transaction_id", "end_transaction_id", "operation_type"}
GAP_TABLE = "continuum_import"


@dataclass
class ImportReport:
    """What ``import_continuum`` did and what it found wrong."""

    n_transactions: int = 0
    n_versions: int = 0
    tables: List[str] = field(default_factory=list)
    gaps: List[int] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No gaps and no problems."""
        return not self.gaps and not self.problems

    def __str__(self) -> str:
        lines = [
            f"imported {self.n_transactions} transactions and {self.n_versions} versions "
            f"of {len(self.tables)} tables ({', '.join(self.tables) or 'none'})"
        ]
        if self.gaps:
            lines.append(f"{len(self.gaps)} missing transaction ids filled with marker transactions: {_ranges(self.gaps)}")
        lines.extend(f"problem: {p}" for p in self.problems)
        return "\n".join(lines)


def _ranges(ids: Sequence[int]) -> str:
    out, start, prev = [], None, None
    for i in ids:
        if start is None:
            start = prev = i
        elif i == prev + 1:
            prev = i
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = i
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(out)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class _VersionTable:
    name: str
    table: str
    columns: List[str]
    pk: List[str]


def _version_tables(conn: sqlite3.Connection) -> List[_VersionTable]:
    out = []
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    for name in names:
        if not name.endswith("_version"):
            continue
        info = list(conn.execute(f"PRAGMA table_info({_quote(name)})"))
        cols = [r[1] for r in info]
        if not _CONTROL <= set(cols):
            continue
        # Continuum's property_mod_tracker adds <column>_mod flags: not row data.
        data = [c for c in cols if c not in _CONTROL and not (c.endswith("_mod") and c[:-4] in cols)]
        pk = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5] > 0 and r[1] != "transaction_id"]
        out.append(_VersionTable(name, name[: -len("_version")], data, pk or data[:1]))
    return out


def _rows(conn: sqlite3.Connection, vt: _VersionTable) -> Iterator[Tuple[int, str, Tuple[Any, ...], Optional[int], int, Dict[str, Any]]]:
    cols = ", ".join(_quote(c) for c in vt.columns)
    pk_order = ", ".join(_quote(c) for c in vt.pk)
    sql = (
        f"SELECT transaction_id, end_transaction_id, operation_type, {cols} FROM {_quote(vt.name)} "
        f"ORDER BY transaction_id, {pk_order}"
    )
    for row in conn.execute(sql):
        txid, end, op = row[0], row[1], row[2]
        values = dict(zip(vt.columns, row[3:]))
        yield txid, vt.table, tuple(values[c] for c in vt.pk), end, op, values


def _meta(tx_row: Dict[str, Any]) -> Dict[str, str]:
    meta = {"continuum_transaction_id": str(tx_row["id"])}
    if tx_row.get("issued_at") is not None:
        meta["issued_at"] = str(tx_row["issued_at"]).replace(" ", "T")
    if tx_row.get("remote_addr") is not None:
        meta["remote_addr"] = str(tx_row["remote_addr"])
    if tx_row.get("user_id") is not None:
        meta["user"] = str(tx_row["user_id"])
    return meta


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.done, self._shown = total, enabled, 0, -1

    def step(self) -> None:
        self.done += 1
        pct = self.done * 100 // max(self.total, 1)
        if self.enabled and (pct != self._shown or self.done == self.total):
            self._shown = pct
            bar = "#" * (pct * 30 // 100)
            sys.stderr.write(f"\rimporting [{bar:<30}] {self.done}/{self.total} transactions")
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def import_continuum(source: str, target: str, *, progress: bool = False) -> ImportReport:
    """Imports the Continuum SQLite database ``source`` into the new (or
    empty) timecask database ``target``; returns the report."""
    report = ImportReport()
    conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        conn.row_factory = None
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        if "transaction" not in tables:
            raise ValueError(f"{source} has no 'transaction' table: not an SQLAlchemy-Continuum database")
        tx_cols = [r[1] for r in conn.execute('PRAGMA table_info("transaction")')]
        tx_rows = [dict(zip(tx_cols, r)) for r in conn.execute('SELECT * FROM "transaction" ORDER BY id')]
        known = {r["id"] for r in tx_rows}
        vts = _version_tables(conn)
        report.tables = [vt.table for vt in vts]
        merged = heapq.merge(*(_rows(conn, vt) for vt in vts), key=lambda r: r[0])
        with _open(target) as db:
            if db.latest_txid() != 0:
                raise ValueError(f"{target} already holds transactions: import into a new database to keep the ids")
            _import(db, tx_rows, known, merged, report, _Progress(len(tx_rows), progress))
    finally:
        conn.close()
    return report


def _import(db: Any, tx_rows: List[Dict[str, Any]], known: set, merged: Iterator, report: ImportReport, bar: _Progress) -> None:
    live: Dict[Tuple[str, bytes], bool] = {}
    # (table, key) -> (txid, end_transaction_id) of its last version, to check validity
    last: Dict[Tuple[str, bytes], Tuple[int, Optional[int]]] = {}
    pending = next(merged, None)
    for tx_row in tx_rows:
        txid = tx_row["id"]
        if not isinstance(txid, int) or txid <= db.latest_txid():
            report.problems.append(f"transaction id {txid!r} is not an increasing positive integer: skipped")
            bar.step()
            continue
        while db.latest_txid() + 1 < txid:  # a gap: keep later ids aligned
            gap = db.latest_txid() + 1
            db.put(GAP_TABLE, "gap", str(gap).encode(), meta={"continuum_gap": str(gap)})
            report.gaps.append(gap)
        # version rows of transactions that do not exist
        while pending is not None and pending[0] < txid:
            if pending[0] not in known:
                report.problems.append(f"{pending[1]}_version row {pending[2]!r} names transaction {pending[0]}, which does not exist: skipped")
            pending = next(merged, None)
        with db.transaction(meta=_meta(tx_row)) as tx:
            wrote = False
            while pending is not None and pending[0] == txid:
                _, table, pk, end, op, values = pending
                key = _key(pk)
                where = f"{table} {pk!r} at transaction {txid}"
                prev = last.get((table, key))
                if prev is not None and prev[1] != txid:
                    report.problems.append(
                        f"{table} {pk!r}: the version of transaction {prev[0]} ends at {prev[1]}, "
                        f"but the next version is at transaction {txid}"
                    )
                last[(table, key)] = (txid, end)
                was_live = live.get((table, key), False)
                name = _OPS.get(op)
                if name is None:
                    report.problems.append(f"{where}: unknown operation_type {op!r}, taken as an update")
                elif name == "insert" and was_live:
                    report.problems.append(f"{where}: insert of a row that already exists, recorded as an update")
                elif name in ("update", "delete") and not was_live:
                    report.problems.append(f"{where}: {name} of a row that does not exist")
                if name == "delete":
                    tx.delete(table, key)
                    live[(table, key)] = False
                else:
                    tx.put(table, key, _encode(values))
                    live[(table, key)] = True
                report.n_versions += 1
                wrote = True
                pending = next(merged, None)
        if tx.txid is None:
            # Nothing timecask records (no versions, identical values, deletes
            # of missing rows): a marker transaction keeps the ids aligned.
            if wrote:
                report.problems.append(f"transaction {txid} changed nothing (identical values or deletes of missing rows): recorded as a marker")
            db.put(GAP_TABLE, "empty", str(txid).encode(), meta=_meta(tx_row))
        if db.latest_txid() != txid:
            report.problems.append(f"transaction {txid} became timecask txid {db.latest_txid()}")
        report.n_transactions += 1
        bar.step()
    for (table, key), (txid, end) in last.items():
        if end is not None:
            report.problems.append(f"{table}: the last version of key {key!r} (transaction {txid}) ends at {end}, but no later version exists")
    while pending is not None:
        report.problems.append(f"{pending[1]}_version row {pending[2]!r} names transaction {pending[0]}, which does not exist: skipped")
        pending = next(merged, None)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m timecask.import_continuum",
        description="Import an SQLAlchemy-Continuum SQLite database into a new timecask database.",
    )
    parser.add_argument("source", help="the SQLite database file")
    parser.add_argument("target", help="the timecask database directory (new or empty)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        report = import_continuum(args.source, args.target, progress=not args.quiet)
    except (ValueError, sqlite3.Error, OSError, Error) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(report)
    return 0 if report.ok else 2


if __name__ == "__main__":
    sys.exit(main())
