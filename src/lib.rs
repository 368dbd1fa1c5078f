//! timecask: an embedded temporal key-value store.
//!
//! Every write is kept. Each record is an append-only chain of versions
//! keyed by `(table, key, txid)`; readers get snapshots of the latest state
//! or of any past transaction, full version histories and per-transaction
//! change sets, from one directory and no server.
//!
//! ```
//! use timecask::{Db, HistoryQuery, Op};
//!
//! # fn main() -> Result<(), timecask::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path())?;
//!
//! let mut tx = db.begin();
//! tx.set_meta("user", "admin")?;
//! tx.insert("user", b"1", br#"{"name":"Alice"}"#)?;
//! let t1 = tx.commit()?.expect("a change was written");
//!
//! let mut tx = db.begin();
//! tx.update("user", b"1", br#"{"name":"Bob"}"#)?;
//! let t2 = tx.commit()?.expect("a change was written");
//!
//! // The present, and the past.
//! assert_eq!(db.snapshot().get("user", b"1")?.as_deref(), Some(&br#"{"name":"Bob"}"#[..]));
//! assert_eq!(db.as_of(t1)?.get("user", b"1")?.as_deref(), Some(&br#"{"name":"Alice"}"#[..]));
//!
//! // Who changed what, when.
//! let history = db.snapshot().history("user", b"1", HistoryQuery::all())?;
//! assert_eq!(history[0].op, Op::Insert);
//! assert_eq!(history[0].meta["user"], "admin");
//! assert_eq!(history[1].txid, t2);
//! # Ok(()) }
//! ```
//!
//! See `ARCHITECTURE.md` for how it works and `FORMAT.md` for the bytes on disk.

#![deny(missing_docs)]
#![deny(clippy::unwrap_used)]

mod checkpoint;
mod compact;
mod config;
mod db;
mod durable;
mod engine;
mod error;
mod follow;
/// Fuzz harnesses for `fuzz/` and the corpus replay: behind the
/// `test-support` feature, not part of the supported API.
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod fuzz_harness;
mod index;
pub mod limits;
mod log;
mod manifest;
mod pins;
mod read;
mod record;
mod runs;
mod seal;
mod sealed;
mod sealer;
pub mod storage;
mod temporal;
#[cfg(test)]
mod test_support;
/// Test doubles (`FaultyStorage`) for `tests/`: behind the `test-support`
/// feature, not part of the supported API.
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod testing;
mod trigger;
mod tx;
mod tx_range;
pub mod typed;
mod types;
mod verify;

pub use checkpoint::CheckpointReport;
pub use config::{Config, Recovery, RetentionPolicy, RunCompression};
pub use db::{Db, LogIter, Stats};
pub use error::{Error, KeyBytes, Result};
pub use read::{RangeIter, Snapshot};
pub use record::CompactReport;
pub use record::{Change, HistoryQuery, TxRecord, Version};
pub use temporal::{ChangeFeed, DiffEntry, FOLLOW_POLL_INTERVAL};
pub use tx::WriteTx;
pub use typed::{Key, KeyEncode, TableDef, TypedError};
pub use types::{Durability, Op, Timestamp, TxId};
pub use verify::VerifyReport;

/// The README's example, compiled by `cargo test`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Transaction metadata: a small string map (`user`, `remote_addr`,
/// `reason`, ...), at most [`limits::META_SIZE_MAX`] bytes encoded.
pub type Metadata = std::collections::BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    /// Handles can be shared across threads.
    #[test]
    fn handles_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<crate::Db>();
        assert_send_sync::<crate::Snapshot>();
        assert_send_sync::<crate::WriteTx>();
        assert_send_sync::<crate::RangeIter>();
        assert_send_sync::<crate::Error>();
    }
}
