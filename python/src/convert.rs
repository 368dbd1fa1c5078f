//! Arguments from Python (keys, values, metadata, times) and small values to
//! Python.

use std::borrow::Cow;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyString};
use timecask::{Durability, Metadata, Op, Timestamp};

/// A key: `bytes`, `bytearray` or `str` (UTF-8).
pub fn key_arg<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Cow::Owned(s.to_cow()?.into_owned().into_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Cow::Owned(b.to_vec()));
    }
    Err(PyTypeError::new_err(format!(
        "a key is bytes or str, not {}",
        type_name(obj)
    )))
}

/// A value: `bytes` or `bytearray` (use a table handle with a codec for
/// other objects).
pub fn value_arg<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Cow::Owned(b.to_vec()));
    }
    Err(PyTypeError::new_err(format!(
        "a value is bytes, not {}; for other objects use db.table(name, codec=\"msgpack\")",
        type_name(obj)
    )))
}

/// An optional range bound: `None` or a key.
pub fn bound_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<u8>>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => Ok(Some(key_arg(o)?.into_owned())),
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_string(), |n| n.to_string())
}

/// Metadata: a `dict[str, str]`.
pub fn meta_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Metadata> {
    match obj {
        None => Ok(Metadata::new()),
        Some(o) if o.is_none() => Ok(Metadata::new()),
        Some(o) => o.extract::<Metadata>().map_err(|_| {
            PyTypeError::new_err(format!(
                "meta is a dict of str to str, not {}",
                type_name(o)
            ))
        }),
    }
}

/// `"immediate"` or `"buffered"`.
pub fn durability_arg(name: &str) -> PyResult<Durability> {
    match name {
        "immediate" => Ok(Durability::Immediate),
        "buffered" => Ok(Durability::Buffered),
        other => Err(PyValueError::new_err(format!(
            "durability is \"immediate\" or \"buffered\", not {other:?}"
        ))),
    }
}

/// The lowercase name of an op, as Python sees it.
pub fn op_name(op: Op) -> &'static str {
    op.as_str()
}

static FROM_MICROS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TO_MICROS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A commit time as an aware UTC `datetime`.
pub fn datetime<'py>(py: Python<'py>, time: Timestamp) -> PyResult<Bound<'py, PyAny>> {
    FROM_MICROS
        .import(py, "timecask._util", "from_micros")?
        .call1((time.as_micros(),))
}

/// An aware `datetime` as a timestamp.
pub fn timestamp_arg(obj: &Bound<'_, PyAny>) -> PyResult<Timestamp> {
    let micros: u64 = TO_MICROS
        .import(obj.py(), "timecask._util", "to_micros")?
        .call1((obj,))?
        .extract()?;
    Ok(Timestamp::from_micros(micros))
}
