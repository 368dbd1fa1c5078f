//! The append-only log: the source of truth.
//!
//! Invariant: the log knows nothing about tables, keys or snapshots; it
//! stores and returns frames. `frame` is pure encoding, `segment` the file
//! header and naming, `writer` the single appender, `recovery` the replay on
//! open, `files` the positioned reads, `poison` the one fsync path, `witness`
//! the durable record of the last acknowledged txid, `tail` a follower's
//! reading of a log another process writes.

pub(crate) mod files;
pub(crate) mod frame;
pub(crate) mod poison;
pub(crate) mod recovery;
pub(crate) mod segment;
pub(crate) mod tail;
pub(crate) mod value_cache;
pub(crate) mod witness;
pub(crate) mod writer;
