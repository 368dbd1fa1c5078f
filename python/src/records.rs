//! What reads return, as immutable Python objects: versions, transaction
//! records, changes, diff entries and reports.

use pyo3::BoundObject;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use timecask::{Change, DiffEntry, Metadata, TxRecord, Version};

use crate::convert::{datetime, op_name};

fn bytes_or_none(py: Python<'_>, value: Option<&[u8]>) -> Option<Py<PyAny>> {
    value.map(|v| PyBytes::new(py, v).into_any().unbind())
}

fn repr_of(py: Python<'_>, value: &Option<Py<PyAny>>) -> String {
    match value {
        None => "None".to_string(),
        Some(v) => v
            .bind(py)
            .repr()
            .map_or_else(|_| "?".to_string(), |r| r.to_string()),
    }
}

/// The Python `repr` of any value convertible to Python.
fn py_repr<'py, T: IntoPyObject<'py>>(py: Python<'py>, value: T) -> String {
    value
        .into_pyobject(py)
        .ok()
        .and_then(|o| o.into_bound().into_any().repr().ok().map(|r| r.to_string()))
        .unwrap_or_else(|| "?".to_string())
}

/// One version of a key: valid over ``[txid, end_txid)``.
///
/// ``end_txid`` is ``None`` while it is the newest version the view sees;
/// ``op`` is ``"insert"``, ``"update"`` or ``"delete"``; ``value`` is ``None``
/// for a delete; ``commit_time`` is an aware UTC ``datetime``;
/// ``meta`` the transaction's metadata.
#[pyclass(frozen, get_all, module = "timecask", name = "Version")]
pub struct PyVersion {
    /// The transaction that wrote this version.
    pub txid: u64,
    /// The transaction that wrote the next version, if the view sees one.
    pub end_txid: Option<u64>,
    /// ``"insert"``, ``"update"`` or ``"delete"``.
    pub op: &'static str,
    /// The value (``bytes``, or decoded by a table's codec); ``None`` for a delete.
    pub value: Option<Py<PyAny>>,
    /// When ``txid`` committed, an aware UTC ``datetime``.
    pub commit_time: Py<PyAny>,
    /// The same time in microseconds since the Unix epoch.
    pub commit_micros: u64,
    /// The metadata of ``txid``.
    pub meta: Metadata,
}

impl PyVersion {
    pub fn new(py: Python<'_>, v: Version) -> PyResult<PyVersion> {
        Ok(PyVersion {
            txid: v.txid.0,
            end_txid: v.end_txid.map(|t| t.0),
            op: op_name(v.op),
            value: bytes_or_none(py, v.value.as_deref()),
            commit_time: datetime(py, v.commit_time)?.unbind(),
            commit_micros: v.commit_time.as_micros(),
            meta: v.meta,
        })
    }
}

#[pymethods]
impl PyVersion {
    /// A copy with ``value`` replaced (table handles use it to decode).
    fn with_value(&self, py: Python<'_>, value: Option<Py<PyAny>>) -> PyVersion {
        PyVersion {
            txid: self.txid,
            end_txid: self.end_txid,
            op: self.op,
            value,
            commit_time: self.commit_time.clone_ref(py),
            commit_micros: self.commit_micros,
            meta: self.meta.clone(),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Version(txid={}, end_txid={}, op={}, value={}, meta={})",
            self.txid,
            py_repr(py, self.end_txid),
            py_repr(py, self.op),
            repr_of(py, &self.value),
            py_repr(py, &self.meta)
        )
    }
}

/// One change made by a transaction: ``table``, ``key`` (bytes), ``op``, ``value``.
#[pyclass(frozen, get_all, module = "timecask", name = "Change")]
pub struct PyChange {
    /// The table.
    pub table: String,
    /// The key, ``bytes``.
    pub key: Py<PyAny>,
    /// ``"insert"``, ``"update"`` or ``"delete"``.
    pub op: &'static str,
    /// The new value; ``None`` for a delete.
    pub value: Option<Py<PyAny>>,
}

impl PyChange {
    fn new(py: Python<'_>, c: Change) -> PyChange {
        PyChange {
            key: PyBytes::new(py, &c.key).into_any().unbind(),
            op: op_name(c.op),
            value: bytes_or_none(py, c.value.as_deref()),
            table: c.table,
        }
    }
}

#[pymethods]
impl PyChange {
    /// A copy with ``key`` and ``value`` replaced (table handles use it to decode).
    fn with_value(&self, key: Py<PyAny>, value: Option<Py<PyAny>>) -> PyChange {
        PyChange {
            table: self.table.clone(),
            key,
            op: self.op,
            value,
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Change(table={}, key={}, op={}, value={})",
            py_repr(py, &self.table),
            repr_of(py, &Some(self.key.clone_ref(py))),
            py_repr(py, self.op),
            repr_of(py, &self.value)
        )
    }
}

/// A committed transaction: ``txid``, ``commit_time``, ``meta`` and its ``changes``.
#[pyclass(frozen, get_all, module = "timecask", name = "TxRecord")]
pub struct PyTxRecord {
    /// Its txid.
    pub txid: u64,
    /// When it committed, an aware UTC ``datetime``.
    pub commit_time: Py<PyAny>,
    /// The same time in microseconds since the Unix epoch.
    pub commit_micros: u64,
    /// Its metadata (``user``, ``remote_addr``, ``reason``, ...).
    pub meta: Metadata,
    /// Every change, in table-name then key order.
    pub changes: Vec<Py<PyChange>>,
}

impl PyTxRecord {
    pub fn new(py: Python<'_>, r: TxRecord) -> PyResult<PyTxRecord> {
        let changes = r
            .changes
            .into_iter()
            .map(|c| Py::new(py, PyChange::new(py, c)))
            .collect::<PyResult<_>>()?;
        Ok(PyTxRecord {
            txid: r.txid.0,
            commit_time: datetime(py, r.commit_time)?.unbind(),
            commit_micros: r.commit_time.as_micros(),
            meta: r.meta,
            changes,
        })
    }
}

#[pymethods]
impl PyTxRecord {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "TxRecord(txid={}, meta={}, changes=<{} changes>)",
            self.txid,
            py_repr(py, &self.meta),
            self.changes.len()
        )
    }
}

/// A key whose value differs between two txids: ``key``, ``before``, ``after``
/// (``None``: absent).
#[pyclass(frozen, get_all, module = "timecask", name = "DiffEntry")]
pub struct PyDiffEntry {
    /// The key, ``bytes``.
    pub key: Py<PyAny>,
    /// Its value at the first txid (``None``: absent).
    pub before: Option<Py<PyAny>>,
    /// Its value at the second txid (``None``: absent).
    pub after: Option<Py<PyAny>>,
}

impl PyDiffEntry {
    pub fn new(py: Python<'_>, d: DiffEntry) -> PyDiffEntry {
        PyDiffEntry {
            key: PyBytes::new(py, &d.key).into_any().unbind(),
            before: bytes_or_none(py, d.before.as_deref()),
            after: bytes_or_none(py, d.after.as_deref()),
        }
    }
}

#[pymethods]
impl PyDiffEntry {
    /// A copy with every field replaced (table handles use it to decode).
    fn with_values(
        &self,
        key: Py<PyAny>,
        before: Option<Py<PyAny>>,
        after: Option<Py<PyAny>>,
    ) -> PyDiffEntry {
        PyDiffEntry { key, before, after }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "DiffEntry(key={}, before={}, after={})",
            repr_of(py, &Some(self.key.clone_ref(py))),
            repr_of(py, &self.before),
            repr_of(py, &self.after)
        )
    }
}

/// Defines a plain read-only report class with a `__repr__` listing its fields.
macro_rules! report {
    ($(#[$doc:meta])* $name:ident as $py_name:literal { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[pyclass(frozen, get_all, module = "timecask", name = $py_name)]
        pub struct $name {
            $(pub $field: $ty),*
        }

        #[pymethods]
        impl $name {
            fn __repr__(&self, py: Python<'_>) -> String {
                let mut out = format!("{}(", $py_name);
                $(out.push_str(&format!("{}={}, ", stringify!($field), py_repr(py, self.$field)));)*
                out.truncate(out.len() - 2);
                out.push(')');
                out
            }
        }
    };
}

report! {
    /// Counts of what the database holds, from ``Db.stats()``.
    PyStats as "Stats" {
        latest_txid: u64,
        n_versions: u64,
        n_tables: usize,
        horizon: u64,
        torn_tail_bytes: u64,
        opened_from_checkpoint: bool,
        frames_replayed: u64,
        history_runs: u64,
    }
}

report! {
    /// What ``Db.verify()`` checked.
    PyVerifyReport as "VerifyReport" {
        txid: u64,
        n_segments: usize,
        n_frames: u64,
        n_versions: u64,
        n_bytes: u64,
    }
}

report! {
    /// What ``Db.compact()`` did.
    PyCompactReport as "CompactReport" {
        segments_scanned: usize,
        segments_rewritten: usize,
        versions_dropped: u64,
        bytes_before: u64,
        bytes_after: u64,
    }
}

report! {
    /// What ``Db.checkpoint()`` wrote.
    PyCheckpointReport as "CheckpointReport" {
        txid: u64,
        bytes: u64,
    }
}
