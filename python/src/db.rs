//! `Db`: the database handle.

use std::path::PathBuf;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use timecask::{Config, Db, Metadata, RunCompression, TxId, WriteTx};

use crate::convert::{durability_arg, key_arg, meta_arg, timestamp_arg, value_arg};
use crate::errors::{IntoPyResult, closed};
use crate::feed::{PyChangeFeed, PyLogIter};
use crate::records::{
    PyCheckpointReport, PyCompactReport, PyDiffEntry, PyStats, PyTxRecord, PyVerifyReport,
};
use crate::tx::PyTransaction;
use crate::view::PyView;

/// An open timecask database (one directory). Use :func:`timecask.open`.
///
/// Thread-safe: share one ``Db`` between threads. Every call that touches
/// the disk releases the GIL. ``close()`` (or leaving a ``with`` block)
/// lets go of the handle; the lock on the directory is released once the
/// views, transactions and feeds taken from it are gone too.
#[pyclass(frozen, subclass, module = "timecask", name = "Db")]
pub struct PyDb {
    inner: RwLock<Option<Db>>,
    path: String,
    read_only: bool,
}

impl PyDb {
    /// The Rust handle (a cheap clone), or `ClosedError`.
    /// A handle to the database. Callers drop it inside `py.detach` (move
    /// it into the closure): if `close()` ran meanwhile, this is the last
    /// handle, whose drop seals the log tail, which must not hold the GIL.
    pub fn db(&self, py: Python<'_>) -> PyResult<Db> {
        let guard = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        guard.clone().ok_or_else(|| closed(py, "database"))
    }

    /// Runs `write` in a transaction of its own with `meta` and commits it.
    fn one_shot(
        &self,
        py: Python<'_>,
        meta: Option<&Bound<'_, PyAny>>,
        write: impl FnOnce(&mut WriteTx) -> timecask::Result<()> + Send,
    ) -> PyResult<Option<u64>> {
        let db = self.db(py)?;
        let meta = meta_arg(meta)?;
        py.detach(move || {
            let mut tx = db.begin();
            set_all_meta(&mut tx, meta)?;
            write(&mut tx)?;
            tx.commit()
        })
        .py_err(py)
        .map(|t| t.map(|t| t.0))
    }
}

/// Sets every entry of `meta` on `tx`.
pub fn set_all_meta(tx: &mut WriteTx, meta: Metadata) -> timecask::Result<()> {
    for (k, v) in meta {
        tx.set_meta(k, v)?;
    }
    Ok(())
}

static TABLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `timecask._table.Table(target, name, codec, key)`: the typed handle.
pub fn make_table<'py>(
    target: Bound<'py, PyAny>,
    name: &str,
    codec: Option<Bound<'py, PyAny>>,
    key: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = target.py();
    TABLE
        .import(py, "timecask._table", "Table")?
        .call1((target, name, codec, key))
}

#[pymethods]
impl PyDb {
    /// Opens (or creates) the database in directory ``path``.
    ///
    /// ``durability``: ``"immediate"`` (commit returns once fsynced, the
    /// default) or ``"buffered"`` (once the OS has it; ``flush()`` syncs).
    /// ``read_only``: open beside a writer, without the lock, changing no
    /// file. ``lock_timeout``: seconds to wait for another holder of the
    /// lock. ``history_runs``: keep sealed history in history runs (the
    /// default) rather than in the log and an in-memory index.
    /// ``seal_log_bytes``: seal the log into runs in the background each
    /// time it grows by this much (``None``: the default, 256 MiB; ``0``:
    /// never, only ``compact()`` and ``seal()`` do). ``memory_budget``:
    /// bytes for the caches and the in-memory tail together.
    /// ``run_compression``: ``"lz4"`` (the default), ``"zstd"`` or
    /// ``"none"`` for the blocks of new runs. Raises ``LockedError``,
    /// ``CorruptError``, ``NotFoundError``, ``InvalidConfigError``, ...
    #[new]
    #[pyo3(signature = (
        path, *, durability = "immediate", read_only = false, create_if_missing = true,
        lock_timeout = 0.0, record_identical_updates = false, checkpoint_on_close = true,
        value_cache_bytes = None, segment_roll_bytes = None, history_runs = true,
        seal_log_bytes = None, memory_budget = None, run_compression = None,
    ))]
    #[expect(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        durability: &str,
        read_only: bool,
        create_if_missing: bool,
        lock_timeout: f64,
        record_identical_updates: bool,
        checkpoint_on_close: bool,
        value_cache_bytes: Option<usize>,
        segment_roll_bytes: Option<u64>,
        history_runs: bool,
        seal_log_bytes: Option<u64>,
        memory_budget: Option<usize>,
        run_compression: Option<&str>,
    ) -> PyResult<PyDb> {
        let defaults = Config::default();
        let config = Config {
            durability: durability_arg(durability)?,
            read_only,
            create_if_missing,
            lock_timeout: Duration::try_from_secs_f64(lock_timeout).map_err(|_| {
                PyValueError::new_err(format!(
                    "lock_timeout is a number of seconds >= 0, not {lock_timeout}"
                ))
            })?,
            record_identical_updates,
            checkpoint_on_close,
            value_cache_bytes: value_cache_bytes.unwrap_or(defaults.value_cache_bytes),
            segment_roll_bytes: segment_roll_bytes.unwrap_or(defaults.segment_roll_bytes),
            history_runs,
            seal_log_bytes: match seal_log_bytes {
                None => defaults.seal_log_bytes,
                Some(0) => None,
                Some(n) => Some(n),
            },
            memory_budget,
            run_compression: match run_compression {
                None => defaults.run_compression,
                Some("lz4") => RunCompression::Lz4,
                Some("zstd") => RunCompression::Zstd,
                Some("none") => RunCompression::None,
                Some(other) => {
                    return Err(PyValueError::new_err(format!(
                        "run_compression is \"lz4\", \"zstd\" or \"none\", not {other:?}"
                    )));
                }
            },
            ..defaults
        };
        let db = py.detach(|| Db::open_with(&path, config)).py_err(py)?;
        Ok(PyDb {
            path: db.path().to_string_lossy().into_owned(),
            read_only: db.is_read_only(),
            inner: RwLock::new(Some(db)),
        })
    }

    /// The database directory.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Whether it was opened with ``read_only=True``.
    #[getter]
    fn read_only(&self) -> bool {
        self.read_only
    }

    /// Whether ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// Lets go of the database. Views, transactions and feeds still alive
    /// keep it open until they are gone. Idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| {
            let db = self
                .inner
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            // The last handle's drop may write a checkpoint: without the GIL.
            drop(db);
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    /// The latest committed txid; 0 for an empty database.
    fn latest_txid(&self, py: Python<'_>) -> PyResult<u64> {
        let db = self.db(py)?;
        Ok(py.detach(move || db.latest_txid()).0)
    }

    /// Starts a write transaction over a snapshot of the latest state.
    ///
    /// Use it as a context manager: it commits when the block ends and
    /// rolls back if the block raises; ``tx.txid`` is the committed txid
    /// afterwards (``None`` if nothing was written).
    ///
    /// >>> with db.transaction(meta={"user": "ann"}) as tx:
    /// ...     tx.put("user", "1", b"Alice")
    #[pyo3(signature = (*, meta = None, durability = None))]
    fn transaction(
        &self,
        py: Python<'_>,
        meta: Option<&Bound<'_, PyAny>>,
        durability: Option<&str>,
    ) -> PyResult<PyTransaction> {
        let db = self.db(py)?;
        let meta = meta_arg(meta)?;
        let durability = durability.map(durability_arg).transpose()?;
        let tx = py
            .detach(move || {
                let mut tx = db.begin();
                if let Some(d) = durability {
                    tx.set_durability(d);
                }
                set_all_meta(&mut tx, meta).map(|()| tx)
            })
            .py_err(py)?;
        Ok(PyTransaction::new(tx))
    }

    /// A view of the latest committed state; it never changes while held.
    fn snapshot(&self, py: Python<'_>) -> PyResult<PyView> {
        let db = self.db(py)?;
        Ok(PyView::new(py.detach(move || db.snapshot())))
    }

    /// A view of the state right after ``txid`` committed (0: empty).
    /// ``FutureTxidError`` after the latest, ``HistoryPurgedError`` below
    /// the retention horizon.
    fn as_of(&self, py: Python<'_>, txid: u64) -> PyResult<PyView> {
        let db = self.db(py)?;
        let view = py.detach(move || db.as_of(TxId(txid))).py_err(py)?;
        Ok(PyView::new(view))
    }

    /// A view as of the last transaction committed at or before ``when``
    /// (an aware ``datetime``).
    fn as_of_time(&self, py: Python<'_>, when: &Bound<'_, PyAny>) -> PyResult<PyView> {
        let db = self.db(py)?;
        let time = timestamp_arg(when)?;
        let view = py.detach(move || db.as_of_time(time)).py_err(py)?;
        Ok(PyView::new(view))
    }

    /// The latest value of ``key`` in ``table`` (``None`` if absent).
    fn get<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyBytes>>> {
        let db = self.db(py)?;
        let key = key_arg(key)?;
        let value = py
            .detach(move || db.snapshot().get(table, &key))
            .py_err(py)?;
        Ok(value.map(|v| pyo3::types::PyBytes::new(py, &v)))
    }

    /// Names of the tables that exist now.
    fn tables(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let db = self.db(py)?;
        Ok(py.detach(move || db.snapshot().tables()))
    }

    /// Writes ``value`` under ``key`` in a transaction of its own; its txid
    /// (``None`` if the value was already there).
    #[pyo3(signature = (table, key, value, *, meta = None))]
    fn put(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<u64>> {
        let (key, value) = (key_arg(key)?, value_arg(value)?);
        self.one_shot(py, meta, |tx| tx.put(table, &key, &value))
    }

    /// Inserts ``key`` (``KeyExistsError`` if live) in a transaction of its own.
    #[pyo3(signature = (table, key, value, *, meta = None))]
    fn insert(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<u64>> {
        let (key, value) = (key_arg(key)?, value_arg(value)?);
        self.one_shot(py, meta, |tx| tx.insert(table, &key, &value))
    }

    /// Updates ``key`` (``KeyNotFoundError`` if not live) in a transaction of its own.
    #[pyo3(signature = (table, key, value, *, meta = None))]
    fn update(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<u64>> {
        let (key, value) = (key_arg(key)?, value_arg(value)?);
        self.one_shot(py, meta, |tx| tx.update(table, &key, &value))
    }

    /// Deletes ``key`` in a transaction of its own; its txid (``None`` if
    /// the key was not live).
    #[pyo3(signature = (table, key, *, meta = None))]
    fn delete(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<u64>> {
        let key = key_arg(key)?;
        self.one_shot(py, meta, |tx| tx.delete(table, &key).map(drop))
    }

    /// Writes the value ``key`` had as of ``to_txid`` back as a new version;
    /// the new txid (``None`` if that changes nothing).
    #[pyo3(signature = (table, key, to_txid, *, meta = None))]
    fn revert(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
        to_txid: u64,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<u64>> {
        let key = key_arg(key)?;
        self.one_shot(py, meta, |tx| {
            tx.revert(table, &key, TxId(to_txid)).map(drop)
        })
    }

    /// Writes the inverse of transaction ``txid``; the new txid.
    /// ``ConflictError`` if a later transaction changed one of its keys.
    #[pyo3(signature = (txid, *, meta = None))]
    fn undo(
        &self,
        py: Python<'_>,
        txid: u64,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<u64>> {
        self.one_shot(py, meta, |tx| tx.undo(TxId(txid)))
    }

    /// Time, metadata and every change of transaction ``txid``.
    fn transaction_record(&self, py: Python<'_>, txid: u64) -> PyResult<PyTxRecord> {
        let db = self.db(py)?;
        let record = py.detach(move || db.transaction(TxId(txid))).py_err(py)?;
        PyTxRecord::new(py, record)
    }

    /// The transactions ``first`` through ``last`` (inclusive; defaults:
    /// the oldest readable and the latest), oldest first, as an iterator of
    /// ``TxRecord``.
    #[pyo3(signature = (first = None, last = None))]
    fn log(&self, py: Python<'_>, first: Option<u64>, last: Option<u64>) -> PyResult<PyLogIter> {
        use std::ops::Bound;
        let db = self.db(py)?;
        let start = first.map_or(Bound::Unbounded, |t| Bound::Included(TxId(t)));
        let end = last.map_or(Bound::Unbounded, |t| Bound::Included(TxId(t)));
        let iter = py.detach(move || db.log((start, end))).py_err(py)?;
        Ok(PyLogIter::new(iter))
    }

    /// Every key of ``table`` whose value differs between the state as of
    /// ``from_txid`` and as of ``to_txid``, in key order, with both values.
    fn diff(
        &self,
        py: Python<'_>,
        table: &str,
        from_txid: u64,
        to_txid: u64,
    ) -> PyResult<Vec<PyDiffEntry>> {
        let db = self.db(py)?;
        let entries = py
            .detach(move || db.diff(table, TxId(from_txid), TxId(to_txid)))
            .py_err(py)?;
        Ok(entries
            .into_iter()
            .map(|d| PyDiffEntry::new(py, d))
            .collect())
    }

    /// A resumable cursor over the transactions after ``txid``: iterate it
    /// for what is committed now, ``wait_next(timeout)`` to block for the
    /// next; resume later from ``feed.position``.
    fn changes_since(&self, py: Python<'_>, txid: u64) -> PyResult<PyChangeFeed> {
        let db = self.db(py)?;
        let feed = db.changes_since(TxId(txid));
        // The last handle's drop may seal the log: without the GIL.
        py.detach(move || drop(db));
        Ok(PyChangeFeed::new(feed))
    }

    /// Drops history superseded at or before ``before``; the txid of the
    /// purge record (``None`` if the horizon is already there).
    /// ``HistoryInUseError`` while a live view reads an older txid.
    fn purge_history(&self, py: Python<'_>, before: u64) -> PyResult<Option<u64>> {
        let db = self.db(py)?;
        let txid = py
            .detach(move || db.purge_history(TxId(before)))
            .py_err(py)?;
        Ok(txid.map(|t| t.0))
    }

    /// Removes every version of ``key`` in ``table`` (physically at the next
    /// ``compact()``); the txid of the erasure.
    fn erase(&self, py: Python<'_>, table: &str, key: &Bound<'_, PyAny>) -> PyResult<u64> {
        let db = self.db(py)?;
        let key = key_arg(key)?;
        let txid = py.detach(move || db.erase(table, &key)).py_err(py)?;
        Ok(txid.0)
    }

    /// Moves the log into history runs and merges every run into one,
    /// dropping purged and erased versions (without history runs: rewrites
    /// sealed segments).
    fn compact(&self, py: Python<'_>) -> PyResult<PyCompactReport> {
        let db = self.db(py)?;
        let r = py.detach(move || db.compact()).py_err(py)?;
        Ok(compact_report(&r))
    }

    /// Moves the log into history runs as the background sealer does,
    /// merging only the newest runs by size; no retention applied.
    fn seal(&self, py: Python<'_>) -> PyResult<PyCompactReport> {
        let db = self.db(py)?;
        let r = py.detach(move || db.seal()).py_err(py)?;
        Ok(compact_report(&r))
    }

    /// Checks every checksum and invariant; ``CorruptError`` names the file
    /// and offset of any damage.
    fn verify(&self, py: Python<'_>) -> PyResult<PyVerifyReport> {
        let db = self.db(py)?;
        let r = py.detach(move || db.verify()).py_err(py)?;
        Ok(PyVerifyReport {
            txid: r.txid.0,
            n_segments: r.n_segments,
            n_frames: r.n_frames,
            n_versions: r.n_versions,
            n_bytes: r.n_bytes,
        })
    }

    /// Writes a consistent copy into ``dest`` (missing or empty) while the
    /// database stays in use; the txid the copy holds.
    fn backup(&self, py: Python<'_>, dest: PathBuf) -> PyResult<u64> {
        let db = self.db(py)?;
        let txid = py.detach(move || db.backup(&dest)).py_err(py)?;
        Ok(txid.0)
    }

    /// Writes an index checkpoint so the next open is fast.
    fn checkpoint(&self, py: Python<'_>) -> PyResult<PyCheckpointReport> {
        let db = self.db(py)?;
        let r = py.detach(move || db.checkpoint()).py_err(py)?;
        Ok(PyCheckpointReport {
            txid: r.txid.0,
            bytes: r.bytes,
        })
    }

    /// Fsyncs everything committed so far (for ``durability="buffered"``).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let db = self.db(py)?;
        py.detach(move || db.flush()).py_err(py)
    }

    /// Counts of what the database holds.
    fn stats(&self, py: Python<'_>) -> PyResult<PyStats> {
        let db = self.db(py)?;
        let s = py.detach(move || db.stats());
        Ok(PyStats {
            latest_txid: s.latest_txid.0,
            n_versions: s.n_versions,
            n_tables: s.n_tables,
            horizon: s.horizon.0,
            torn_tail_bytes: s.torn_tail_bytes,
            opened_from_checkpoint: s.opened_from_checkpoint,
            frames_replayed: s.frames_replayed,
            history_runs: s.history_runs as u64,
        })
    }

    /// A handle on one table whose values go through ``codec``
    /// (``"msgpack"``, ``"bytes"`` or an object with ``encode``/``decode``)
    /// and whose keys through ``key`` (``"bytes"``, ``"str"``, ``"u64"``,
    /// ``"i64"``); see ``timecask.Table``.
    #[pyo3(signature = (name, codec = None, key = None))]
    fn table<'py>(
        slf: Bound<'py, Self>,
        name: &str,
        codec: Option<Bound<'py, PyAny>>,
        key: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        make_table(slf.into_any(), name, codec, key)
    }

    fn __repr__(&self) -> String {
        format!(
            "<timecask.Db {:?}{}>",
            self.path,
            if self.closed() { " closed" } else { "" }
        )
    }
}

fn compact_report(r: &timecask::CompactReport) -> PyCompactReport {
    PyCompactReport {
        segments_scanned: r.segments_scanned,
        segments_rewritten: r.segments_rewritten,
        versions_dropped: r.versions_dropped,
        bytes_before: r.bytes_before,
        bytes_after: r.bytes_after,
    }
}
