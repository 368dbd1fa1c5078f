//! `timecask::Error` to the Python exception classes of `timecask._errors`,
//! with the variant's fields as keyword arguments (so as attributes).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict};
use timecask::Error;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// The Python exception for `error`.
pub fn to_py(py: Python<'_>, error: Error) -> PyErr {
    build(py, &error).unwrap_or_else(|failed| failed)
}

/// An exception of class `class` (a name in `timecask._errors`) with no fields.
pub fn named(py: Python<'_>, class: &str, message: String) -> PyErr {
    instantiate(py, class, message, &PyDict::new(py)).unwrap_or_else(|failed| failed)
}

/// Shorthand for `ClosedError`.
pub fn closed(py: Python<'_>, what: &str) -> PyErr {
    named(py, "ClosedError", format!("this {what} is closed"))
}

fn instantiate(
    py: Python<'_>,
    class: &str,
    message: String,
    fields: &Bound<'_, PyDict>,
) -> PyResult<PyErr> {
    let module = ERRORS.get_or_try_init(py, || py.import("timecask._errors").map(Bound::unbind))?;
    let class = module.bind(py).getattr(class)?;
    let instance = class.call((message,), Some(fields))?;
    Ok(PyErr::from_value(instance))
}

fn build(py: Python<'_>, error: &Error) -> PyResult<PyErr> {
    let kw = PyDict::new(py);
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let class = match error {
        Error::Io { path: p, source } => {
            kw.set_item("path", path(p))?;
            kw.set_item("errno", source.raw_os_error())?;
            "IoError"
        }
        Error::Locked { path: p } => {
            kw.set_item("path", path(p))?;
            "LockedError"
        }
        Error::Corrupt {
            path: p,
            offset,
            reason,
        } => {
            kw.set_item("path", path(p))?;
            kw.set_item("offset", offset)?;
            kw.set_item("reason", reason)?;
            "CorruptError"
        }
        Error::UnsupportedFormat {
            path: p,
            found,
            supported,
        } => {
            kw.set_item("path", path(p))?;
            kw.set_item("found", found)?;
            kw.set_item("supported", supported)?;
            "UnsupportedFormatError"
        }
        Error::NotADatabase { path: p } => {
            kw.set_item("path", path(p))?;
            "NotADatabaseError"
        }
        Error::NotFound { path: p } => {
            kw.set_item("path", path(p))?;
            "NotFoundError"
        }
        Error::FutureTxid { requested, latest } => {
            kw.set_item("requested", requested.0)?;
            kw.set_item("latest", latest.0)?;
            "FutureTxidError"
        }
        Error::HistoryPurged { requested, horizon } => {
            kw.set_item("requested", requested.0)?;
            kw.set_item("horizon", horizon.0)?;
            "HistoryPurgedError"
        }
        Error::HistoryInUse {
            requested,
            oldest_view,
        } => {
            kw.set_item("requested", requested.0)?;
            kw.set_item("oldest_view", oldest_view.0)?;
            "HistoryInUseError"
        }
        Error::NoSuchTransaction { txid } => {
            kw.set_item("txid", txid.0)?;
            "NoSuchTransactionError"
        }
        Error::KeyTooLarge { size, max } => limit(&kw, *size, *max, "KeyTooLargeError")?,
        Error::ValueTooLarge { size, max } => limit(&kw, *size, *max, "ValueTooLargeError")?,
        Error::MetadataTooLarge { size, max } => limit(&kw, *size, *max, "MetadataTooLargeError")?,
        Error::TransactionTooLarge { size, max } => {
            limit(&kw, *size, *max, "TransactionTooLargeError")?
        }
        Error::InvalidTableName { name, reason } => {
            kw.set_item("name", name)?;
            kw.set_item("reason", *reason)?;
            "InvalidTableNameError"
        }
        Error::KeyExists { table, key } => {
            table_key(&kw, table, &key.0)?;
            "KeyExistsError"
        }
        Error::KeyNotFound { table, key } => {
            table_key(&kw, table, &key.0)?;
            "KeyNotFoundError"
        }
        Error::Conflict { table, key } => {
            table_key(&kw, table, &key.0)?;
            "ConflictError"
        }
        Error::Poisoned { reason } => {
            kw.set_item("reason", reason)?;
            "PoisonedError"
        }
        Error::IndexMismatch { reason } => {
            kw.set_item("reason", reason)?;
            "IndexMismatchError"
        }
        Error::InvalidConfig { reason } => {
            kw.set_item("reason", reason)?;
            "InvalidConfigError"
        }
        Error::ReadOnly { path: p } => {
            kw.set_item("path", path(p))?;
            "ReadOnlyError"
        }
        // A variant added after this binding was written: the base class,
        // with the message.
        _ => "Error",
    };
    instantiate(py, class, error.to_string(), &kw)
}

fn limit(
    kw: &Bound<'_, PyDict>,
    size: usize,
    max: usize,
    class: &'static str,
) -> PyResult<&'static str> {
    kw.set_item("size", size)?;
    kw.set_item("max", max)?;
    Ok(class)
}

fn table_key(kw: &Bound<'_, PyDict>, table: &str, key: &[u8]) -> PyResult<()> {
    kw.set_item("table", table)?;
    kw.set_item("key", PyBytes::new(kw.py(), key))
}

/// `Result<T, timecask::Error>` to `PyResult<T>`.
pub trait IntoPyResult<T> {
    /// Maps the error to its Python exception.
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for timecask::Result<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}
