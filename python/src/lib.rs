//! The native half of the `timecask` Python package: thin PyO3 classes over
//! the Rust API. The pure-Python half (`python/timecask/`) holds the
//! exception classes, the codecs and the typed table handles.
//!
//! Invariants: every call that reads or writes the database releases the
//! GIL (`Python::detach`); a lock of this crate is only ever taken with the
//! GIL released, so a thread waiting for one never holds the GIL; nothing
//! from the caller is unwrapped — bad input is a Python exception.

#![deny(clippy::unwrap_used)]

use pyo3::prelude::*;

mod convert;
mod db;
mod errors;
mod feed;
mod records;
mod tx;
mod view;

/// The native module, `timecask._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<db::PyDb>()?;
    m.add_class::<view::PyView>()?;
    m.add_class::<view::PyRangeIter>()?;
    m.add_class::<tx::PyTransaction>()?;
    m.add_class::<feed::PyChangeFeed>()?;
    m.add_class::<feed::PyLogIter>()?;
    m.add_class::<records::PyVersion>()?;
    m.add_class::<records::PyChange>()?;
    m.add_class::<records::PyTxRecord>()?;
    m.add_class::<records::PyDiffEntry>()?;
    m.add_class::<records::PyStats>()?;
    m.add_class::<records::PyVerifyReport>()?;
    m.add_class::<records::PyCompactReport>()?;
    m.add_class::<records::PyCheckpointReport>()?;
    Ok(())
}
