//! `RunWriter`: builds one run file through the storage seam.
//!
//! Versions come first, in `(table, key, txid)` order, then one tx record
//! per txid of the range, in txid order; `finish` writes the indexes, the
//! filter and the footer and fsyncs. The order of the input is an invariant
//! of the caller (it comes from sorted runs or a sorted segment), so it is
//! asserted, not returned as an error. The file is created new at the path
//! the caller names; installing it (rename, manifest) is the caller's job.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::block::{Base, VersionBlockBuilder, seal_block};

/// Tx blocks close at the block target or at this, whichever is smaller:
/// a tx block is read and decompressed whole (`Run::tx`), so it stays
/// small when version blocks are large (their point reads decode one
/// group).
const TX_BLOCK_TARGET_MAX: usize = 16 * 1024;
use super::bloom::{Bloom, key_hash};
use super::footer::{
    BlockHandle, Footer, HEADER_SIZE, RUN_FORMAT_VERSION, Section, TxIndexEntry, VersionIndexEntry,
    encode_header,
};
use super::paged::{PAGE_ENTRIES_MAX, encode_pages};
use super::txblock::TxBlockBuilder;
use super::{
    BLOCK_TARGET_SIZE_MAX, BLOCK_TARGET_SIZE_MIN, META_INLINE_SIZE_MAX, MetaRef, RunConfig,
    RunSummary, TX_RECORD_SIZE_MAX, TxEntry, VersionEntry,
};
use crate::error::{Error, Result};
use crate::limits::{KEY_SIZE_MAX, META_SIZE_MAX, VALUE_SIZE_MAX};
use crate::log::frame::decode_meta;
use crate::storage::{Storage, StorageFile};
use crate::types::{Op, TableId, Timestamp, TxId};

/// Bytes buffered before one positioned write.
const WRITE_BUFFER_SIZE: usize = 1024 * 1024;

/// The txid range a run covers and the commit time of its first txid (the
/// base its entries' times are stored against).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RunRange {
    pub first_txid: TxId,
    pub last_txid: TxId,
    pub first_commit_time: Timestamp,
}

/// Writes one run; see the module docs for the order of calls.
#[derive(Debug)]
pub(crate) struct RunWriter {
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    config: RunConfig,
    range: RunRange,
    /// File offset of the first byte not yet written or buffered.
    offset: u64,
    out: Vec<u8>,
    vblock: Option<VersionBlockBuilder>,
    vindex: Vec<VersionIndexEntry>,
    last_version: Option<(TableId, Vec<u8>, TxId)>,
    n_versions: u64,
    key_hashes: Vec<u64>,
    tblock: Option<(TxBlockBuilder, TxId, Timestamp)>,
    tindex: Vec<TxIndexEntry>,
    next_txid: TxId,
    last_commit_time: Timestamp,
    n_changes: u64,
}

impl RunWriter {
    /// Creates `path` (it must not exist) and writes the header.
    pub(crate) fn create(
        storage: &dyn Storage,
        path: &Path,
        range: RunRange,
        config: RunConfig,
    ) -> Result<RunWriter> {
        if !(BLOCK_TARGET_SIZE_MIN..=BLOCK_TARGET_SIZE_MAX).contains(&config.block_target_bytes)
            || !(1..=64).contains(&config.bloom_bits_per_key)
            || !(1..=PAGE_ENTRIES_MAX).contains(&config.index_page_entries)
        {
            return Err(Error::InvalidConfig {
                reason: format!("run config out of range: {config:?}"),
            });
        }
        assert!(
            TxId::ZERO < range.first_txid && range.first_txid <= range.last_txid,
            "a run covers at least one txid, txid 0 is never one"
        );
        let file = storage.open(path, true).map_err(|e| Error::io(path, e))?;
        let mut out = Vec::with_capacity(WRITE_BUFFER_SIZE);
        out.extend_from_slice(&encode_header());
        Ok(RunWriter {
            path: path.to_path_buf(),
            file,
            config,
            range,
            offset: HEADER_SIZE as u64,
            out,
            vblock: None,
            vindex: Vec::new(),
            last_version: None,
            n_versions: 0,
            key_hashes: Vec::new(),
            tblock: None,
            tindex: Vec::new(),
            next_txid: range.first_txid,
            last_commit_time: range.first_commit_time,
            n_changes: 0,
        })
    }

    /// The range this writer was created for.
    pub(crate) fn range(&self) -> RunRange {
        self.range
    }

    fn base(&self) -> Base {
        Base {
            first_txid: self.range.first_txid,
            last_txid: self.range.last_txid,
            first_commit_time: self.range.first_commit_time,
        }
    }

    /// Adds the next version. Panics if it does not sort after the previous
    /// one, lies outside the range, or comes after the first tx record.
    pub(crate) fn add_version(&mut self, e: &VersionEntry) -> Result<()> {
        assert!(
            self.tindex.is_empty() && self.tblock.is_none(),
            "versions come before tx records"
        );
        assert!(
            self.range.first_txid <= e.txid && e.txid <= self.range.last_txid,
            "version txid {} outside the run's range",
            e.txid
        );
        assert!(
            e.key.len() <= KEY_SIZE_MAX,
            "keys are checked on the way in"
        );
        assert!(
            e.value.as_ref().is_none_or(|v| v.len() <= VALUE_SIZE_MAX),
            "values too"
        );
        assert_eq!(
            e.value.is_some(),
            e.op != Op::Delete,
            "a value exactly when not a delete"
        );
        if let MetaRef::Inline(meta) = &e.meta {
            assert!(
                meta.len() <= META_INLINE_SIZE_MAX,
                "inline metadata is small"
            );
        }
        let new_key = match &self.last_version {
            Some((table, key, txid)) => {
                let prev = (*table, &key[..], *txid);
                assert!(
                    prev < e.sort_key(),
                    "versions are added in (table, key, txid) order"
                );
                prev.0 != e.table || prev.1 != e.key
            }
            None => true,
        };
        if new_key {
            self.key_hashes.push(key_hash(e.table, &e.key));
        }
        let base = self.base();
        let block = self
            .vblock
            .get_or_insert_with(|| VersionBlockBuilder::new(base));
        block.add(e);
        let full = block.raw_len() >= self.config.block_target_bytes;
        self.n_versions += 1;
        match &mut self.last_version {
            Some((table, key, txid)) => {
                *table = e.table;
                key.clear();
                key.extend_from_slice(&e.key);
                *txid = e.txid;
            }
            None => self.last_version = Some((e.table, e.key.clone(), e.txid)),
        }
        if full {
            self.flush_version_block()?;
        }
        Ok(())
    }

    fn flush_version_block(&mut self) -> Result<()> {
        let Some(block) = self.vblock.take() else {
            return Ok(());
        };
        assert!(!block.is_empty());
        let stored = block.seal(self.config.compression);
        let handle = self.write_stored(&stored)?;
        let (table, key, txid) = self.last_version.as_ref().expect("a block holds a version");
        self.vindex.push(VersionIndexEntry {
            handle,
            last_table: *table,
            last_key: key[..].into(),
            last_txid: *txid,
        });
        Ok(())
    }

    fn write_block(&mut self, raw: &[u8]) -> Result<BlockHandle> {
        let stored = seal_block(raw, self.config.compression);
        self.write_stored(&stored)
    }

    fn write_stored(&mut self, stored: &[u8]) -> Result<BlockHandle> {
        let handle = BlockHandle {
            offset: self.offset,
            len: u32::try_from(stored.len()).expect("BLOCK_STORED_SIZE_MAX fits u32"),
        };
        self.write(stored)?;
        Ok(handle)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.extend_from_slice(bytes);
        self.offset += bytes.len() as u64;
        if self.out.len() >= WRITE_BUFFER_SIZE {
            self.flush_out()?;
        }
        Ok(())
    }

    fn flush_out(&mut self) -> Result<()> {
        let at = self.offset - self.out.len() as u64;
        self.file
            .write_all_at(&self.out, at)
            .map_err(|e| Error::io(&self.path, e))?;
        self.out.clear();
        Ok(())
    }

    /// Adds the record of the next txid. Panics unless it is the next txid
    /// of the range and its commit time does not go back.
    pub(crate) fn add_tx(&mut self, tx: &TxEntry) -> Result<()> {
        self.flush_version_block()?;
        assert_eq!(
            tx.txid, self.next_txid,
            "tx records are dense and in txid order"
        );
        if tx.txid == self.range.first_txid {
            assert_eq!(
                tx.commit_time, self.range.first_commit_time,
                "the range's first time"
            );
        }
        assert!(
            tx.commit_time >= self.last_commit_time,
            "commit times never decrease"
        );
        assert!(
            tx.meta.len() <= META_SIZE_MAX + 4,
            "metadata is checked on commit"
        );
        assert!(
            decode_meta(&tx.meta).is_ok(),
            "metadata is the log's encoding"
        );
        let record_size: usize = tx.changes.iter().map(|c| 12 + c.key.len()).sum();
        assert!(
            record_size + tx.meta.len() + 20 <= TX_RECORD_SIZE_MAX,
            "bounded by TX_SIZE_MAX"
        );
        let base = self.base();
        let (block, _, _) = self
            .tblock
            .get_or_insert_with(|| (TxBlockBuilder::new(base), tx.txid, tx.commit_time));
        block.add(tx);
        let full = block.raw_len() >= self.config.block_target_bytes.min(TX_BLOCK_TARGET_MAX);
        self.next_txid = tx.txid.next();
        self.last_commit_time = tx.commit_time;
        self.n_changes += tx.changes.len() as u64;
        if full {
            self.flush_tx_block()?;
        }
        Ok(())
    }

    fn flush_tx_block(&mut self) -> Result<()> {
        let Some((block, first_txid, first_commit_time)) = self.tblock.take() else {
            return Ok(());
        };
        let handle = self.write_block(&block.finish())?;
        self.tindex.push(TxIndexEntry {
            handle,
            first_txid,
            first_commit_time,
        });
        Ok(())
    }

    /// Writes the indexes, the filter and the footer, fsyncs the file and
    /// says what it holds. Panics unless every txid of the range got its
    /// record and the records list exactly as many changes as there are
    /// versions.
    pub(crate) fn finish(mut self) -> Result<RunSummary> {
        assert_eq!(
            self.next_txid,
            self.range.last_txid.next(),
            "every txid has its record"
        );
        assert_eq!(
            self.n_changes, self.n_versions,
            "each change lists a version of this run"
        );
        self.flush_tx_block()?;
        // The index pages, then their top tables (the sections the footer
        // names).
        let per_page = self.config.index_page_entries as usize;
        let (vpages, vtop) = encode_pages(&self.vindex, per_page, self.offset);
        self.write(&vpages)?;
        let (tpages, ttop) = encode_pages(&self.tindex, per_page, self.offset);
        self.write(&tpages)?;
        let version_index = self.write_section(&vtop)?;
        let tx_index = self.write_section(&ttop)?;
        let bloom = Bloom::build(&self.key_hashes, self.config.bloom_bits_per_key).encode();
        let bloom = self.write_section(&bloom)?;
        let footer = Footer {
            version: RUN_FORMAT_VERSION,
            first_txid: self.range.first_txid,
            last_txid: self.range.last_txid,
            first_commit_time: self.range.first_commit_time,
            last_commit_time: self.last_commit_time,
            n_versions: self.n_versions,
            n_keys: self.key_hashes.len() as u64,
            n_txs: self.range.last_txid.0 - self.range.first_txid.0 + 1,
            version_index,
            tx_index,
            bloom,
            n_version_blocks: u32::try_from(self.vindex.len()).expect("blocks fit u32"),
            n_tx_blocks: u32::try_from(self.tindex.len()).expect("blocks fit u32"),
        };
        self.write(&footer.encode())?;
        self.flush_out()?;
        self.file
            .sync_data()
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(RunSummary {
            first_txid: footer.first_txid,
            last_txid: footer.last_txid,
            first_commit_time: footer.first_commit_time,
            last_commit_time: footer.last_commit_time,
            n_versions: footer.n_versions,
            n_keys: footer.n_keys,
            n_txs: footer.n_txs,
            n_version_blocks: footer.n_version_blocks,
            n_tx_blocks: footer.n_tx_blocks,
            file_bytes: self.offset,
        })
    }

    fn write_section(&mut self, bytes: &[u8]) -> Result<Section> {
        let section = Section {
            offset: self.offset,
            len: bytes.len() as u64,
            crc: crc32fast::hash(bytes),
        };
        self.write(bytes)?;
        Ok(section)
    }
}
