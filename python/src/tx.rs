//! `Transaction`: a write transaction and context manager.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use timecask::{RetentionPolicy, TxId, WriteTx};

use crate::convert::{bound_arg, durability_arg, key_arg, value_arg};
use crate::db::make_table;
use crate::errors::{IntoPyResult, named};
use crate::view::prefix_range;

enum State {
    Open(WriteTx),
    Committed(Option<TxId>),
    RolledBack,
}

/// A write transaction from ``db.transaction()``: reads see its begin
/// snapshot plus its own writes; nothing is visible to others until it
/// commits. As a context manager it commits when the block ends and rolls
/// back if the block raises. Safe to share between threads (calls are
/// serialized).
#[pyclass(frozen, module = "timecask", name = "Transaction")]
pub struct PyTransaction {
    state: Mutex<State>,
    base_txid: u64,
}

enum Outcome<R> {
    Done(timecask::Result<R>),
    Finished(&'static str),
}

impl PyTransaction {
    pub fn new(tx: WriteTx) -> PyTransaction {
        PyTransaction {
            base_txid: tx.base_txid().0,
            state: Mutex::new(State::Open(tx)),
        }
    }

    /// Runs `f` on the open transaction, without the GIL.
    fn with<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut WriteTx) -> timecask::Result<R> + Send,
    ) -> PyResult<R> {
        let outcome = py.detach(|| {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            match &mut *state {
                State::Open(tx) => Outcome::Done(f(tx)),
                State::Committed(_) => Outcome::Finished("committed"),
                State::RolledBack => Outcome::Finished("rolled back"),
            }
        });
        match outcome {
            Outcome::Done(result) => result.py_err(py),
            Outcome::Finished(how) => Err(named(
                py,
                "ClosedError",
                format!("this transaction is already {how}; start a new one"),
            )),
        }
    }
}

#[pymethods]
impl PyTransaction {
    /// The txid of the snapshot this transaction reads from.
    #[getter]
    fn base_txid(&self) -> u64 {
        self.base_txid
    }

    /// The committed txid: ``None`` before commit, after a rollback, or when
    /// the transaction wrote nothing.
    #[getter]
    fn txid(&self, py: Python<'_>) -> Option<u64> {
        py.detach(
            || match &*self.state.lock().unwrap_or_else(PoisonError::into_inner) {
                State::Committed(t) => t.map(|t| t.0),
                _ => None,
            },
        )
    }

    /// ``"open"``, ``"committed"`` or ``"rolled_back"``.
    #[getter]
    fn state(&self, py: Python<'_>) -> &'static str {
        py.detach(
            || match &*self.state.lock().unwrap_or_else(PoisonError::into_inner) {
                State::Open(_) => "open",
                State::Committed(_) => "committed",
                State::RolledBack => "rolled_back",
            },
        )
    }

    /// Sets a metadata entry (``user``, ``remote_addr``, ``reason``, ...).
    fn set_meta(&self, py: Python<'_>, key: String, value: String) -> PyResult<()> {
        self.with(py, |tx| tx.set_meta(key, value))
    }

    /// Overrides the durability of this commit: ``"immediate"`` or ``"buffered"``.
    fn set_durability(&self, py: Python<'_>, durability: &str) -> PyResult<()> {
        let d = durability_arg(durability)?;
        self.with(py, |tx| {
            tx.set_durability(d);
            Ok(())
        })
    }

    /// Writes ``value`` under ``key`` (insert or update).
    fn put(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (key, value) = (key_arg(key)?, value_arg(value)?);
        self.with(py, |tx| tx.put(table, &key, &value))
    }

    /// Inserts ``key``; ``KeyExistsError`` if it is live.
    fn insert(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (key, value) = (key_arg(key)?, value_arg(value)?);
        self.with(py, |tx| tx.insert(table, &key, &value))
    }

    /// Updates ``key``; ``KeyNotFoundError`` if it is not live.
    fn update(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (key, value) = (key_arg(key)?, value_arg(value)?);
        self.with(py, |tx| tx.update(table, &key, &value))
    }

    /// Deletes ``key``; whether it was live.
    fn delete(&self, py: Python<'_>, table: &str, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_arg(key)?;
        self.with(py, |tx| tx.delete(table, &key))
    }

    /// The value of ``key`` as this transaction sees it.
    fn get<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let key = key_arg(key)?;
        let value = self.with(py, |tx| tx.get(table, &key))?;
        Ok(value.map(|v| PyBytes::new(py, &v)))
    }

    /// Whether ``key`` is live as this transaction sees it.
    fn contains(&self, py: Python<'_>, table: &str, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_arg(key)?;
        self.with(py, |tx| tx.contains(table, &key))
    }

    /// ``(key, value)`` pairs with ``start <= key < end`` as this
    /// transaction sees them (its writes over its snapshot), as a list.
    #[pyo3(signature = (table, start = None, end = None, *, reverse = false))]
    fn range<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        start: Option<&Bound<'py, PyAny>>,
        end: Option<&Bound<'py, PyAny>>,
        reverse: bool,
    ) -> PyResult<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        use std::ops::Bound as B;
        let start = bound_arg(start)?.map_or(B::Unbounded, B::Included);
        let end = bound_arg(end)?.map_or(B::Unbounded, B::Excluded);
        let pairs = self.with(py, |tx| tx.range(table, (start, end)))?;
        Ok(pairs_to_py(py, pairs, reverse))
    }

    /// ``(key, value)`` pairs whose key starts with ``prefix``, as a list.
    #[pyo3(signature = (table, prefix, *, reverse = false))]
    fn prefix<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        prefix: &Bound<'py, PyAny>,
        reverse: bool,
    ) -> PyResult<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        let bounds = prefix_range(&key_arg(prefix)?);
        let pairs = self.with(py, |tx| tx.range(table, bounds))?;
        Ok(pairs_to_py(py, pairs, reverse))
    }

    /// Creates ``table`` (empty) if it does not exist.
    fn create_table(&self, py: Python<'_>, table: &str) -> PyResult<()> {
        self.with(py, |tx| tx.create_table(table))
    }

    /// Writes the value ``key`` had as of ``to_txid`` back; whether that
    /// changes anything.
    fn revert(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
        to_txid: u64,
    ) -> PyResult<bool> {
        let key = key_arg(key)?;
        self.with(py, |tx| tx.revert(table, &key, TxId(to_txid)))
    }

    /// Writes the inverse of transaction ``txid`` (``ConflictError`` if a
    /// later transaction touched one of its keys).
    fn undo(&self, py: Python<'_>, txid: u64) -> PyResult<()> {
        self.with(py, |tx| tx.undo(TxId(txid)))
    }

    /// Erases every version of ``key`` when this commits.
    fn erase(&self, py: Python<'_>, table: &str, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = key_arg(key)?;
        self.with(py, |tx| tx.erase(table, &key))
    }

    /// Drops history superseded at or before ``before`` when this commits.
    fn purge_history(&self, py: Python<'_>, before: u64) -> PyResult<()> {
        self.with(py, |tx| tx.purge_history(TxId(before)))
    }

    /// Sets ``table``'s retention policy, applied by ``compact()``: keep the
    /// last ``keep_last`` versions of each key and/or every version younger
    /// than ``keep_for`` seconds (a number or a ``timedelta``).
    #[pyo3(signature = (table, *, keep_last = None, keep_for = None))]
    fn set_retention(
        &self,
        py: Python<'_>,
        table: &str,
        keep_last: Option<u32>,
        keep_for: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let keep_for = match keep_for {
            None => None,
            Some(d) => {
                let secs: f64 = if d.hasattr("total_seconds")? {
                    d.call_method0("total_seconds")?.extract()?
                } else {
                    d.extract()?
                };
                Some(Duration::try_from_secs_f64(secs).map_err(|_| {
                    PyValueError::new_err(format!("keep_for is a duration >= 0, not {secs}"))
                })?)
            }
        };
        let policy = RetentionPolicy {
            keep_last,
            keep_for,
        };
        self.with(py, |tx| tx.set_retention(table, policy))
    }

    /// Commits; the new txid, or ``None`` if nothing was written. Raises
    /// ``ConflictError`` if another transaction committed one of the same
    /// keys first. The transaction is finished either way.
    fn commit(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        let outcome = py.detach(|| {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            match std::mem::replace(&mut *state, State::RolledBack) {
                State::Open(tx) => {
                    let result = tx.commit();
                    if let Ok(txid) = &result {
                        *state = State::Committed(*txid);
                    }
                    Outcome::Done(result)
                }
                done @ State::Committed(_) => {
                    *state = done;
                    Outcome::Finished("committed")
                }
                State::RolledBack => Outcome::Finished("rolled back"),
            }
        });
        match outcome {
            Outcome::Done(result) => result.py_err(py).map(|t| t.map(|t| t.0)),
            Outcome::Finished(how) => Err(named(
                py,
                "ClosedError",
                format!("this transaction is already {how}"),
            )),
        }
    }

    /// Discards every write. Idempotent; a no-op after commit.
    fn rollback(&self, py: Python<'_>) {
        py.detach(|| {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let State::Open(_) = &*state {
                *state = State::RolledBack;
            }
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Commits if the block ended normally (and the transaction is still
    /// open), rolls back if it raised. Never swallows the exception.
    #[pyo3(signature = (exc_type, _exc_value = None, _traceback = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc_value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let open = self.state(py) == "open";
        if open {
            if exc_type.is_none_or(|t| t.is_none()) {
                self.commit(py)?;
            } else {
                self.rollback(py);
            }
        }
        Ok(false)
    }

    /// A typed handle on ``table`` in this transaction (see ``Db.table``).
    #[pyo3(signature = (name, codec = None, key = None))]
    fn table<'py>(
        slf: Bound<'py, Self>,
        name: &str,
        codec: Option<Bound<'py, PyAny>>,
        key: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        make_table(slf.into_any(), name, codec, key)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<timecask.Transaction {} base_txid={} txid={}>",
            self.state(py),
            self.base_txid,
            self.txid(py)
                .map_or_else(|| "None".to_string(), |t| t.to_string())
        )
    }
}

fn pairs_to_py(
    py: Python<'_>,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    reverse: bool,
) -> Vec<(Bound<'_, PyBytes>, Bound<'_, PyBytes>)> {
    let to_py = |(k, v): (Vec<u8>, Vec<u8>)| (PyBytes::new(py, &k), PyBytes::new(py, &v));
    if reverse {
        pairs.into_iter().rev().map(to_py).collect()
    } else {
        pairs.into_iter().map(to_py).collect()
    }
}
