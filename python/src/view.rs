//! `View`: a snapshot of the latest state or of a past txid, and its range
//! iterator.

use std::ops::Bound as Edge;
use std::sync::{Mutex, PoisonError, RwLock};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use timecask::{HistoryQuery, RangeIter, Snapshot, TxId};

use crate::convert::{bound_arg, key_arg};
use crate::db::make_table;
use crate::errors::{IntoPyResult, closed};
use crate::records::PyVersion;

/// A read-only view at one txid (``db.snapshot()``, ``db.as_of(txid)``,
/// ``db.as_of_time(when)``). It never changes while held. It pins its txid:
/// ``purge_history`` past it fails until the view is closed or collected.
#[pyclass(frozen, module = "timecask", name = "View")]
pub struct PyView {
    inner: RwLock<Option<Snapshot>>,
    txid: u64,
}

impl PyView {
    pub fn new(snapshot: Snapshot) -> PyView {
        PyView {
            txid: snapshot.txid().0,
            inner: RwLock::new(Some(snapshot)),
        }
    }

    fn snap(&self, py: Python<'_>) -> PyResult<Snapshot> {
        let guard = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        guard.clone().ok_or_else(|| closed(py, "view"))
    }
}

/// A key range as `(start, end)` bounds.
pub type KeyRange = (Edge<Vec<u8>>, Edge<Vec<u8>>);

/// The bounds of a key range: `start` included, `end` excluded.
fn key_range(
    start: Option<&Bound<'_, PyAny>>,
    end: Option<&Bound<'_, PyAny>>,
) -> PyResult<KeyRange> {
    let start = bound_arg(start)?.map_or(Edge::Unbounded, Edge::Included);
    let end = bound_arg(end)?.map_or(Edge::Unbounded, Edge::Excluded);
    Ok((start, end))
}

/// The range of keys starting with `prefix`.
pub fn prefix_range(prefix: &[u8]) -> KeyRange {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return (Edge::Included(prefix.to_vec()), Edge::Excluded(end));
        }
    }
    (Edge::Included(prefix.to_vec()), Edge::Unbounded)
}

/// A txid window, both ends inclusive.
pub fn txid_window(first: Option<u64>, last: Option<u64>) -> (Edge<TxId>, Edge<TxId>) {
    (
        first.map_or(Edge::Unbounded, |t| Edge::Included(TxId(t))),
        last.map_or(Edge::Unbounded, |t| Edge::Included(TxId(t))),
    )
}

#[pymethods]
impl PyView {
    /// The txid this view reads at.
    #[getter]
    fn txid(&self) -> u64 {
        self.txid
    }

    /// Releases the view (and its pin on history) before it is collected.
    fn close(&self, py: Python<'_>) {
        py.detach(|| {
            drop(
                self.inner
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take(),
            )
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    /// The value of ``key`` in ``table`` here (``None`` if absent).
    fn get<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let snap = self.snap(py)?;
        let key = key_arg(key)?;
        let value = py.detach(|| snap.get(table, &key)).py_err(py)?;
        Ok(value.map(|v| PyBytes::new(py, &v)))
    }

    /// Whether ``key`` is live in ``table`` here.
    fn contains(&self, py: Python<'_>, table: &str, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let snap = self.snap(py)?;
        let key = key_arg(key)?;
        py.detach(|| snap.contains(table, &key)).py_err(py)
    }

    /// The newest version of ``key`` visible here (a delete's for a deleted
    /// key); ``None`` if it was never written up to this txid.
    fn get_version(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<Option<PyVersion>> {
        let snap = self.snap(py)?;
        let key = key_arg(key)?;
        let version = py.detach(|| snap.get_version(table, &key)).py_err(py)?;
        version.map(|v| PyVersion::new(py, v)).transpose()
    }

    /// ``(key, value)`` pairs of ``table`` with ``start <= key < end`` (either
    /// may be ``None``), in key order or reversed.
    #[pyo3(signature = (table, start = None, end = None, *, reverse = false))]
    fn range(
        &self,
        py: Python<'_>,
        table: &str,
        start: Option<&Bound<'_, PyAny>>,
        end: Option<&Bound<'_, PyAny>>,
        reverse: bool,
    ) -> PyResult<PyRangeIter> {
        let snap = self.snap(py)?;
        let bounds = key_range(start, end)?;
        let iter = snap.range(table, bounds).py_err(py)?;
        Ok(PyRangeIter::new(iter, reverse))
    }

    /// ``(key, value)`` pairs of ``table`` whose key starts with ``prefix``.
    #[pyo3(signature = (table, prefix, *, reverse = false))]
    fn prefix(
        &self,
        py: Python<'_>,
        table: &str,
        prefix: &Bound<'_, PyAny>,
        reverse: bool,
    ) -> PyResult<PyRangeIter> {
        let snap = self.snap(py)?;
        let bounds = prefix_range(&key_arg(prefix)?);
        let iter = snap.range(table, bounds).py_err(py)?;
        Ok(PyRangeIter::new(iter, reverse))
    }

    /// Number of live keys in ``table`` here.
    fn count(&self, py: Python<'_>, table: &str) -> PyResult<u64> {
        let snap = self.snap(py)?;
        py.detach(|| snap.count(table)).py_err(py)
    }

    /// Names of the tables that exist here, in name order.
    fn tables(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let snap = self.snap(py)?;
        Ok(py.detach(|| snap.tables()))
    }

    /// The versions of ``key`` up to this view's txid, oldest first (or
    /// ``newest_first``); only those valid at some txid ``first`` through
    /// ``last`` (inclusive) when given, as SQL:2011 ``FOR SYSTEM_TIME``
    /// means (the version current at ``first`` is included); at most
    /// ``limit``.
    #[pyo3(signature = (table, key, *, first = None, last = None, newest_first = false, limit = None))]
    #[expect(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn history(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
        first: Option<u64>,
        last: Option<u64>,
        newest_first: bool,
        limit: Option<usize>,
    ) -> PyResult<Vec<PyVersion>> {
        let snap = self.snap(py)?;
        let key = key_arg(key)?;
        let mut query = HistoryQuery::all().txids(txid_window(first, last));
        if newest_first {
            query = query.newest_first();
        }
        if let Some(n) = limit {
            query = query.limit(n);
        }
        let versions = py.detach(|| snap.history(table, &key, query)).py_err(py)?;
        versions
            .into_iter()
            .map(|v| PyVersion::new(py, v))
            .collect()
    }

    /// A typed handle on ``table`` in this view (see ``Db.table``).
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
        format!("<timecask.View txid={}>", self.txid)
    }
}

type KvIter = Box<dyn Iterator<Item = timecask::Result<(Vec<u8>, Vec<u8>)>> + Send>;

/// An iterator of ``(key, value)`` pairs (both ``bytes``) from ``View.range``
/// or ``View.prefix``. It holds its own view: later commits never show.
#[pyclass(frozen, module = "timecask", name = "RangeIterator")]
pub struct PyRangeIter {
    inner: Mutex<KvIter>,
}

impl PyRangeIter {
    fn new(iter: RangeIter, reverse: bool) -> PyRangeIter {
        let iter: KvIter = if reverse {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        PyRangeIter {
            inner: Mutex::new(iter),
        }
    }
}

#[pymethods]
impl PyRangeIter {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        let next = py.detach(|| {
            self.inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .next()
        });
        match next {
            None => Ok(None),
            Some(kv) => {
                let (k, v) = kv.py_err(py)?;
                Ok(Some((PyBytes::new(py, &k), PyBytes::new(py, &v))))
            }
        }
    }
}
