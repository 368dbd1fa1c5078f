//! History runs: immutable, key-clustered, checksummed files of sealed
//! history (issue 12).
//!
//! A run holds every version of a contiguous txid range
//! `[first_txid, last_txid]`, sorted by `(table, key, txid)` so one key's
//! versions are contiguous, plus one record per txid of the range (commit
//! time, metadata, the changes that survive in the run). The byte layout is
//! in FORMAT.md, "History run file".
//!
//! - `codec`: varints and the bounds-checked reader every decoder uses.
//! - `block`: block framing (checksum, compression) and the version and tx
//!   block encodings. Pure, no I/O.
//! - `txblock`: the encoding of tx blocks. Pure, no I/O.
//! - `bloom`: the per-run filter over `(table, key)`.
//! - `footer`: the file header, the fixed-size footer and the two block
//!   indexes' entries. Pure, no I/O.
//! - `paged`: [`PagedIndex`], a block index in checksummed pages behind a
//!   top table, each page read and checked on first use (format 3).
//! - `writer`: [`RunWriter`], which builds a run through the storage seam.
//! - `reader`: [`Run`], an open run: point reads, histories, tx records.
//! - `iter`: whole-run iterators over versions and tx records.
//! - `scan`: [`Run::scan_visible`], batched range scans at a txid.
//! - `verify`: [`Run::verify`], a full re-read of every byte.
//! - `merge`: [`merge`], the k-way merge of adjacent runs.
//! - `cache`: [`BlockCache`], decompressed blocks shared by every run.
//!
//! **Invariant:** `runs` knows nothing about the engine, snapshots, table
//! names or the log's files; it stores and returns versions and tx records.
//! Every byte it returns was covered by a CRC-32 checked after it was read
//! from disk (blocks served from the cache were checked when first read).

#![cfg_attr(
    not(test),
    allow(
        dead_code,
        unused_imports,
        reason = "wired into the engine by issue 12's next step"
    )
)]

mod block;
mod bloom;
mod cache;
mod codec;
mod footer;
mod grouped;
mod iter;
mod merge;
mod paged;
mod reader;
mod scan;
mod txblock;
mod verify;
mod writer;

#[cfg(test)]
mod damage_tests;
#[cfg(test)]
mod measure;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

pub(crate) use cache::BlockCache;
pub(crate) use merge::{for_each_with_next, merge};
pub(crate) use reader::Run;
pub(crate) use scan::ScanBatch;
pub(crate) use writer::{RunRange, RunWriter};

use crate::limits::{KEY_SIZE_MAX, META_SIZE_MAX, TX_SIZE_MAX, VALUE_SIZE_MAX};
use crate::types::{Op, TableId, Timestamp, TxId};

/// Metadata of at most this many encoded bytes is copied into every version
/// entry of its transaction; larger metadata is only in the tx record.
pub(crate) const META_INLINE_SIZE_MAX: usize = 256;
/// Smallest block target a [`RunConfig`] may ask for (tests use tiny blocks
/// so that keys span several).
pub(crate) use crate::limits::{BLOCK_TARGET_SIZE_MAX, BLOCK_TARGET_SIZE_MIN};
/// Largest encoded version entry: a maximal key, value and inline metadata
/// plus varints and the flags byte.
pub(crate) const ENTRY_SIZE_MAX: usize = KEY_SIZE_MAX + VALUE_SIZE_MAX + META_INLINE_SIZE_MAX + 64;
/// Largest encoded tx record. Its changes are at most 12 bytes plus the key
/// each where the log's frame spends at least 9 plus the key, so a record
/// is below twice the largest frame.
pub(crate) const TX_RECORD_SIZE_MAX: usize = 2 * TX_SIZE_MAX;
/// Largest uncompressed block: a block is closed once it reaches its target,
/// so it holds at most the target plus one entry or record.
pub(crate) const BLOCK_RAW_SIZE_MAX: usize = BLOCK_TARGET_SIZE_MAX + TX_RECORD_SIZE_MAX;
/// Largest block as stored (zstd's worst-case expansion is far below 1 MiB
/// for a block of this size, and a block is stored raw when that is smaller).
pub(crate) const BLOCK_STORED_SIZE_MAX: usize = BLOCK_RAW_SIZE_MAX + block::BLOCK_HEADER_SIZE;
/// Largest index or filter section a run may have.
pub(crate) const SECTION_SIZE_MAX: u64 = 1 << 40;

const _: () = assert!(ENTRY_SIZE_MAX < TX_RECORD_SIZE_MAX);
const _: () = assert!(META_INLINE_SIZE_MAX < META_SIZE_MAX);
const _: () = assert!(BLOCK_TARGET_SIZE_MIN < BLOCK_TARGET_SIZE_MAX);
const _: () = assert!(BLOCK_STORED_SIZE_MAX <= u32::MAX as usize);

/// How blocks are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    /// Every block stored as is.
    None,
    /// zstd at the given level; a block whose compressed form is not
    /// smaller is stored as is.
    Zstd {
        /// zstd level (3 is zstd's default).
        level: i32,
    },
    /// LZ4 (its block format); a block whose compressed form is not
    /// smaller is stored as is.
    Lz4,
}

/// How a [`RunWriter`] lays out a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RunConfig {
    /// A block is closed once its uncompressed bytes reach this.
    pub block_target_bytes: usize,
    /// Block compression.
    pub compression: Compression,
    /// Bloom filter bits per distinct `(table, key)`.
    pub bloom_bits_per_key: u32,
    /// Block index entries per index page (format 3; 1 ..=
    /// `paged::PAGE_ENTRIES_MAX`).
    pub index_page_entries: u32,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            block_target_bytes: 64 * 1024,
            compression: Compression::Lz4,
            bloom_bits_per_key: 10,
            index_page_entries: paged::PAGE_ENTRIES_DEFAULT,
        }
    }
}

/// Where a version's transaction metadata is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MetaRef {
    /// The transaction has no metadata.
    None,
    /// The encoded metadata section (as in the log), at most
    /// [`META_INLINE_SIZE_MAX`] bytes.
    Inline(Vec<u8>),
    /// Too large to repeat per version: read the tx record.
    InTx,
}

impl MetaRef {
    /// The reference a version of a transaction with this encoded metadata
    /// section (`u32 n, (u32 klen, key, u32 vlen, value)*`) gets.
    pub(crate) fn for_tx_meta(meta: &[u8]) -> MetaRef {
        if meta.is_empty() || meta == EMPTY_META {
            MetaRef::None
        } else if meta.len() <= META_INLINE_SIZE_MAX {
            MetaRef::Inline(meta.to_vec())
        } else {
            MetaRef::InTx
        }
    }
}

/// The encoded metadata section of an empty map.
pub(crate) const EMPTY_META: [u8; 4] = [0; 4];

/// A version of the key a history read asks for, as
/// [`Run::versions_in_span`] yields it: no key (the caller's), the value
/// borrowed from the decoded block, so the caller builds its own record
/// without an intermediate one.
#[derive(Debug)]
pub(crate) struct KeyVersion<'a> {
    pub txid: TxId,
    pub op: Op,
    pub commit_time: Timestamp,
    pub meta: MetaRef,
    /// `Some` exactly when `op` is not `Delete`.
    pub value: Option<&'a [u8]>,
}

/// One version as a run stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VersionEntry {
    pub table: TableId,
    pub key: Vec<u8>,
    pub txid: TxId,
    pub op: Op,
    pub commit_time: Timestamp,
    pub meta: MetaRef,
    /// `Some` exactly when `op` is not `Delete`.
    pub value: Option<Vec<u8>>,
}

impl VersionEntry {
    /// The sort key of a run: `(table, key, txid)`.
    pub(crate) fn sort_key(&self) -> (TableId, &[u8], TxId) {
        (self.table, &self.key, self.txid)
    }
}

/// One change listed in a tx record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TxChange {
    pub table: TableId,
    pub key: Vec<u8>,
    pub op: Op,
}

/// What a run keeps of one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TxEntry {
    pub txid: TxId,
    pub commit_time: Timestamp,
    /// The encoded metadata section as the log stores it
    /// (`crate::log::frame::decode_meta` reads it); [`EMPTY_META`] for none.
    pub meta: Vec<u8>,
    /// The changes whose versions are in this run, in the order given.
    pub changes: Vec<TxChange>,
}

/// Order of a [`Run::history`] answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first.
    Reverse,
}

/// What a finished (or opened) run holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RunSummary {
    pub first_txid: TxId,
    pub last_txid: TxId,
    pub first_commit_time: Timestamp,
    pub last_commit_time: Timestamp,
    pub n_versions: u64,
    pub n_keys: u64,
    pub n_txs: u64,
    pub n_version_blocks: u32,
    pub n_tx_blocks: u32,
    /// Length of the whole file.
    pub file_bytes: u64,
}
