//! The change feed and the log iterator.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use timecask::{ChangeFeed, LogIter};

use crate::errors::IntoPyResult;
use crate::records::PyTxRecord;

/// How long one wait without the GIL lasts before checking for Ctrl-C.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// A resumable cursor over committed transactions (``db.changes_since(txid)``).
///
/// Iterating it yields the ``TxRecord`` of every transaction committed so
/// far and stops; iterate again later for newer ones. ``wait_next(timeout)``
/// blocks for the next commit. ``position`` is the last txid delivered: pass
/// it to ``changes_since`` to resume after a restart.
#[pyclass(frozen, module = "timecask", name = "ChangeFeed")]
pub struct PyChangeFeed {
    inner: Mutex<ChangeFeed>,
}

impl PyChangeFeed {
    pub fn new(feed: ChangeFeed) -> PyChangeFeed {
        PyChangeFeed {
            inner: Mutex::new(feed),
        }
    }
}

#[pymethods]
impl PyChangeFeed {
    /// The last txid delivered (or the starting txid).
    #[getter]
    fn position(&self, py: Python<'_>) -> u64 {
        py.detach(|| {
            self.inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .position()
                .0
        })
    }

    /// The next transaction if one is committed, else ``None``, at once.
    fn try_next(&self, py: Python<'_>) -> PyResult<Option<PyTxRecord>> {
        let next = py
            .detach(|| {
                self.inner
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .try_next()
            })
            .py_err(py)?;
        next.map(|r| PyTxRecord::new(py, r)).transpose()
    }

    /// The next transaction, waiting up to ``timeout`` seconds (``None``:
    /// forever) for one to commit; ``None`` when the time runs out. The
    /// GIL is released while waiting; Ctrl-C interrupts it.
    #[pyo3(signature = (timeout = None))]
    fn wait_next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyTxRecord>> {
        let deadline = match timeout {
            None => None,
            Some(secs) => Some(
                Instant::now()
                    + Duration::try_from_secs_f64(secs).map_err(|_| {
                        PyValueError::new_err(format!("timeout is seconds >= 0, not {secs}"))
                    })?,
            ),
        };
        loop {
            let slice = deadline.map_or(WAIT_SLICE, |d| {
                d.saturating_duration_since(Instant::now()).min(WAIT_SLICE)
            });
            let next = py
                .detach(|| {
                    self.inner
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .wait_next(slice)
                })
                .py_err(py)?;
            if let Some(record) = next {
                return PyTxRecord::new(py, record).map(Some);
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyTxRecord>> {
        self.try_next(py)
    }
}

/// An iterator of ``TxRecord`` over a txid range, from ``db.log()``.
#[pyclass(frozen, module = "timecask", name = "LogIterator")]
pub struct PyLogIter {
    inner: Mutex<LogIter>,
}

impl PyLogIter {
    pub fn new(iter: LogIter) -> PyLogIter {
        PyLogIter {
            inner: Mutex::new(iter),
        }
    }
}

#[pymethods]
impl PyLogIter {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyTxRecord>> {
        let next = py.detach(|| {
            self.inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .next()
        });
        match next {
            None => Ok(None),
            Some(record) => PyTxRecord::new(py, record.py_err(py)?).map(Some),
        }
    }
}
