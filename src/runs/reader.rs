//! `Run`: an open run file. Open reads and checks the header, the footer
//! and the top tables of both block indexes (the run's in-memory summary;
//! each index page is read and checked when a read first needs it, see
//! `paged`, and the flat indexes of formats 1 and 2 are read whole); the bloom filter
//! is read and checked once point reads of keys the run lacks have been
//! frequent enough (histories and scans use it only once loaded), so
//! neither an open nor a read of a key the run has reads a filter. Every later read is one block (or, at a key's block boundary,
//! two), served from the [`BlockCache`] or read from disk and checked.

use std::cell::Cell;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use super::block::{Base, VersionCursor, open_block};
use super::bloom::{Bloom, key_hash};
use super::cache::{Block, BlockCache};
use super::footer::{
    BlockHandle, FOOTER_SIZE, Footer, HEADER_SIZE, RUN_FORMAT_VERSION, Refusal, Section,
    TxIndexEntry, VersionIndexEntry, check_header, decode_tx_index, decode_version_index,
};
use super::grouped::{GroupBuffers, GroupedBlock, KEPT_BUFFER_BYTES};
use super::paged::{IndexEntry, PageSource, PagedIndex, RunBounds, check_page_tiling, check_tiles};
use super::txblock::decode_tx_block;
use super::{Direction, KeyVersion, RunSummary, SECTION_SIZE_MAX, TxEntry, VersionEntry};
use crate::error::{Error, Result};
use crate::storage::{MappedFile, Storage, StorageFile};
use crate::types::{TableId, Timestamp, TxId};

/// Empty point reads of a run after which its bloom filter is loaded: a
/// cold filter read costs several block reads (at 200k keys, 250 KB
/// against a 16 KiB block), so a run that mostly answers reads of keys it
/// has never needs it.
const BLOOM_AFTER_MISSES: u32 = 8;

thread_local! {
    /// Where a mapped grouped block's directory is copied and its groups
    /// copied and decompressed, reused by every read on the thread (no
    /// allocation and no zeroing per read).
    static GROUP_BUFFERS: Cell<(Vec<u8>, GroupBuffers)> = Cell::new((Vec::new(), GroupBuffers::default()));
}

/// The version blocks `lo..=hi` of a run that may hold one key's versions
/// ([`Run::key_span`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeySpan {
    lo: usize,
    hi: usize,
}

/// An open, checked run file.
#[derive(Debug)]
pub(crate) struct Run {
    pub(super) path: PathBuf,
    file: Arc<dyn StorageFile>,
    uid: u64,
    pub(super) footer: Footer,
    pub(super) vindex: PagedIndex<VersionIndexEntry>,
    pub(super) tindex: PagedIndex<TxIndexEntry>,
    /// Loaded once point reads here have found nothing
    /// [`BLOOM_AFTER_MISSES`] times (`Run::bloom`).
    bloom: OnceLock<Bloom>,
    /// Point reads that found nothing while `bloom` was not loaded.
    misses: AtomicU32,
    cache: Arc<BlockCache>,
    file_len: u64,
    /// The whole file mapped, when the storage maps (`Storage::map_read_only`):
    /// blocks are then read from it without a system call or a copy.
    map: Option<MappedFile>,
}

impl Run {
    /// Opens `path` read-only and checks everything but the blocks. `uid`
    /// names this open run in `cache` and must never be reused by another.
    pub(crate) fn open(
        storage: &dyn Storage,
        path: &Path,
        uid: u64,
        cache: Arc<BlockCache>,
    ) -> Result<Run> {
        let file = storage
            .open_read_only(path)
            .map_err(|e| Error::io(path, e))?;
        let corrupt = |offset: u64, reason: String| Error::corrupt(path, offset, reason);
        let refused = |offset: u64, refusal: Refusal| match refusal {
            Refusal::Corrupt(reason) => corrupt(offset, reason),
            Refusal::Newer(found) => Error::UnsupportedFormat {
                path: path.to_path_buf(),
                found,
                supported: RUN_FORMAT_VERSION,
            },
        };
        let file_len = file.len().map_err(|e| Error::io(path, e))?;
        if file_len < (HEADER_SIZE + FOOTER_SIZE) as u64 {
            return Err(corrupt(
                0,
                format!("run file of {file_len} bytes has no room for header and footer"),
            ));
        }
        let mut header = [0; HEADER_SIZE];
        read_at(&*file, path, &mut header, 0)?;
        check_header(&header).map_err(|r| refused(0, r))?;
        let footer_at = file_len - FOOTER_SIZE as u64;
        let mut footer = [0; FOOTER_SIZE];
        read_at(&*file, path, &mut footer, footer_at)?;
        let footer = Footer::decode(&footer).map_err(|r| refused(footer_at, r))?;
        check_footer(&footer, footer_at).map_err(|reason| corrupt(footer_at, reason))?;
        let header_version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if footer.version != header_version {
            return Err(corrupt(
                footer_at,
                format!(
                    "footer says format {} and the header {header_version}",
                    footer.version
                ),
            ));
        }
        let (vindex, tindex) = open_indexes(&*file, path, &footer)?;
        // A map that fails, or that does not show the file opened above,
        // leaves reads on `read_exact_at`.
        let map = match storage.map_read_only(path) {
            Ok(Some(map)) if map.len() as u64 == file_len => Some(map),
            _ => None,
        };
        Ok(Run {
            path: path.to_path_buf(),
            file,
            uid,
            footer,
            vindex,
            tindex,
            bloom: OnceLock::new(),
            misses: AtomicU32::new(0),
            cache,
            file_len,
            map,
        })
    }

    /// Reads, checks and decodes the bloom filter from disk.
    pub(super) fn read_bloom(&self) -> Result<Bloom> {
        let section = self.footer.bloom;
        let bytes = read_section(&*self.file, &self.path, section)?;
        Bloom::decode(&bytes).map_err(|r| self.corrupt(section.offset, r))
    }

    /// The bloom filter, read on first use.
    fn bloom(&self) -> Result<&Bloom> {
        if let Some(bloom) = self.bloom.get() {
            return Ok(bloom);
        }
        let bloom = self.read_bloom()?;
        Ok(self.bloom.get_or_init(|| bloom))
    }

    /// Whether the filter rules `(table, key)` out; false while it is not
    /// loaded (for reads that would not load it).
    fn ruled_out_if_loaded(&self, table: TableId, key: &[u8]) -> bool {
        self.bloom
            .get()
            .is_some_and(|b| !b.may_contain(key_hash(table, key)))
    }

    /// What the run holds.
    pub(crate) fn summary(&self) -> RunSummary {
        let f = &self.footer;
        RunSummary {
            first_txid: f.first_txid,
            last_txid: f.last_txid,
            first_commit_time: f.first_commit_time,
            last_commit_time: f.last_commit_time,
            n_versions: f.n_versions,
            n_keys: f.n_keys,
            n_txs: f.n_txs,
            n_version_blocks: f.n_version_blocks,
            n_tx_blocks: f.n_tx_blocks,
            file_bytes: self.file_len,
        }
    }

    /// Bytes this open run keeps in memory (indexes, filter, itself).
    pub(crate) fn summary_bytes(&self) -> usize {
        std::mem::size_of::<Run>()
            + self.path.as_os_str().len()
            + self.vindex.heap_bytes()
            + self.tindex.heap_bytes()
            + self.bloom.get().map_or(0, Bloom::heap_bytes)
    }

    /// The open handle (a backup copies through it).
    pub(crate) fn file(&self) -> &Arc<dyn StorageFile> {
        &self.file
    }

    /// The file this run was opened from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn base(&self) -> Base {
        Base {
            first_txid: self.footer.first_txid,
            last_txid: self.footer.last_txid,
            first_commit_time: self.footer.first_commit_time,
        }
    }

    /// Reads a block, checks its CRC and decompresses it; through the cache
    /// when `cached` (a hit is not checked again: it was when read).
    pub(super) fn read_block(&self, handle: BlockHandle, cached: bool) -> Result<Block> {
        if cached && let Some(block) = self.cache.get(self.uid, handle.offset) {
            return Ok(block);
        }
        // Not through the map: whole blocks are read by scans and merges,
        // which the kernel's read-ahead serves better than page faults of
        // a map advised for random access.
        let mut stored = vec![0; handle.len as usize];
        read_at(&*self.file, &self.path, &mut stored, handle.offset)?;
        let raw: Block = Arc::new(open_block(&stored).map_err(|r| self.corrupt(handle.offset, r))?);
        if cached {
            self.cache.insert(self.uid, handle.offset, Arc::clone(&raw));
        }
        Ok(raw)
    }

    /// The stored bytes of a block, from the map (`open` checked that every
    /// block lies inside the file, which is as long as the map).
    fn mapped(&self, handle: BlockHandle) -> Option<&[u8]> {
        let map = self.map.as_deref()?;
        let start = usize::try_from(handle.offset).ok()?;
        map.get(start..start.checked_add(handle.len as usize)?)
    }

    pub(super) fn corrupt(&self, offset: u64, reason: impl Into<String>) -> Error {
        Error::corrupt(&self.path, offset, reason)
    }

    /// Calls `f` on each entry of version block `i` in order until it
    /// returns false, decoding from its start or from the restart point
    /// `seek` finds for a target (see `VersionCursor::seek`). A grouped
    /// block in a mapped run is decoded group by group straight from the
    /// map (each group's CRC checked as it is reached) without the cache;
    /// any other block is read whole through `read_block`.
    pub(super) fn scan_block(
        &self,
        i: usize,
        cached: bool,
        seek: Option<(TableId, &[u8], TxId)>,
        mut f: impl FnMut(super::block::EntryView<'_>) -> bool,
    ) -> Result<()> {
        let handle = self.block(i)?.handle;
        let err =
            |pos: usize, r: String| self.corrupt(handle.offset, format!("{r} (block byte {pos})"));
        if let Some(stored) = self.mapped(handle) {
            let (mut dir, mut bufs) = GROUP_BUFFERS.with(Cell::take);
            let done = match GroupedBlock::parse_shared(stored, &mut dir) {
                Ok(Some(block)) => Some(self.scan_groups(&block, handle, seek, &mut bufs, &mut f)),
                Ok(None) => None,
                Err(r) => Some(Err(err(0, r))),
            };
            // Put back, not borrowed meanwhile: `f` may read another block.
            // A thread keeps at most about 1 MiB per buffer between reads.
            bufs.trim();
            if dir.capacity() > KEPT_BUFFER_BYTES {
                dir = Vec::new();
            }
            GROUP_BUFFERS.with(|cell| cell.set((dir, bufs)));
            if let Some(done) = done {
                return done;
            }
        }
        let raw = self.read_block(handle, cached)?;
        let mut cursor = VersionCursor::new(&raw, self.base()).map_err(|r| err(0, r))?;
        if let Some(target) = seek {
            cursor.seek(target).map_err(|r| err(0, r))?;
        }
        loop {
            let pos = cursor.pos();
            match cursor.next_entry().map_err(|r| err(pos, r))? {
                Some(e) => {
                    if !f(e) {
                        return Ok(());
                    }
                }
                None => return Ok(()),
            }
        }
    }

    /// `scan_block` over a grouped block: from the group `seek` picks, each
    /// group checked and decoded as it is reached; a group's first entry
    /// must be the key the directory gives it.
    fn scan_groups(
        &self,
        block: &GroupedBlock<'_>,
        handle: BlockHandle,
        seek: Option<(TableId, &[u8], TxId)>,
        bufs: &mut GroupBuffers,
        f: &mut impl FnMut(super::block::EntryView<'_>) -> bool,
    ) -> Result<()> {
        let base = self.base();
        let err = |g: usize, r: String| self.corrupt(handle.offset, format!("{r} (group {g})"));
        let first = match seek {
            Some(target) => block.seek(target, base).map_err(|r| err(0, r))?,
            None => 0,
        };
        for g in first..block.n_groups() {
            let raw = block.group_raw(g, bufs).map_err(|r| err(g, r))?;
            let (at, count) = block.entries_of(g);
            let mut cursor = VersionCursor::for_group(raw, base, at, count);
            let mut leading = true;
            while let Some(e) = cursor.next_entry().map_err(|r| err(g, r))? {
                if leading {
                    leading = false;
                    if block.key(g, base).map_err(|r| err(g, r))? != e.sort_key() {
                        return Err(err(
                            g,
                            "group's first entry differs from its directory key".into(),
                        ));
                    }
                }
                if !f(e) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn block_last_is_key(&self, i: usize, table: TableId, key: &[u8]) -> Result<bool> {
        let e = self.block(i)?;
        Ok(e.last_table == table && *e.last_key == *key)
    }

    /// Version block `i`'s index entry (its page read on first use).
    pub(super) fn block(&self, i: usize) -> Result<&VersionIndexEntry> {
        self.vindex.get(self, i)
    }

    /// The first version block whose index entry fails `pred` (true on a
    /// prefix of the index), or the block count.
    pub(super) fn first_block_not(
        &self,
        pred: impl Fn(&VersionIndexEntry) -> bool,
    ) -> Result<usize> {
        self.vindex.partition_point(self, pred)
    }

    /// Tx block `j`'s index entry.
    pub(super) fn tx_block_entry(&self, j: usize) -> Result<TxIndexEntry> {
        self.tindex.get(self, j).copied()
    }

    /// How many versions of `table` the run holds; reads only the blocks
    /// that hold them (through the cache).
    pub(crate) fn count_in_table(&self, table: TableId) -> Result<u64> {
        let first = self.first_block_not(|e| e.last_table < table)?;
        let mut n = 0;
        for i in first..self.vindex.len() {
            let mut past = false;
            self.scan_block(i, true, None, |e| {
                past = e.table > table;
                n += u64::from(e.table == table);
                !past
            })?;
            if past || self.block(i)?.last_table > table {
                break;
            }
        }
        Ok(n)
    }

    /// The last version of `(table, key)` with a txid at most `txid`.
    /// A key the filter rules out costs no block read.
    pub(crate) fn get_at(
        &self,
        table: TableId,
        key: &[u8],
        txid: TxId,
    ) -> Result<Option<VersionEntry>> {
        if txid < self.footer.first_txid || self.vindex.is_empty() {
            return Ok(None);
        }
        match self.bloom.get() {
            Some(bloom) if !bloom.may_contain(key_hash(table, key)) => Ok(None),
            Some(_) => self.find_at(table, key, txid),
            None => {
                // Not loaded yet: a read of a key the run has needs no
                // filter; the filter is read once lookups here have come
                // back empty often enough for it to pay.
                let found = self.find_at(table, key, txid)?;
                if found.is_none()
                    && self.misses.fetch_add(1, Ordering::Relaxed) + 1 >= BLOOM_AFTER_MISSES
                {
                    self.bloom()?;
                }
                Ok(found)
            }
        }
    }

    /// `get_at` without the filter.
    fn find_at(&self, table: TableId, key: &[u8], txid: TxId) -> Result<Option<VersionEntry>> {
        let target = (table, key, txid);
        let i = self.first_block_not(|e| e.last() < target)?;
        if i < self.vindex.len() {
            // The greatest entry <= target, if block i holds one.
            let (mut best, mut any, mut of_key) = (None, false, false);
            self.scan_block(i, true, Some(target), |e| {
                if e.sort_key() > target {
                    return false;
                }
                any = true;
                of_key = e.table == table && e.key == key;
                if of_key {
                    e.copy_into(&mut best);
                }
                true
            })?;
            if any {
                return Ok(if of_key { best } else { None });
            }
        }
        // Every entry of block i is after the target: the greatest entry
        // before it is the last of block i - 1, known from the index.
        if i == 0 || !self.block_last_is_key(i - 1, table, key)? {
            return Ok(None);
        }
        self.last_entry_of_block(i - 1).map(Some)
    }

    fn last_entry_of_block(&self, i: usize) -> Result<VersionEntry> {
        let mut last = None;
        let index = self.block(i)?;
        self.scan_block(i, true, Some(index.last()), |e| {
            if e.sort_key() == index.last() {
                last = Some(e.to_entry());
            }
            true
        })?;
        last.ok_or_else(|| {
            self.corrupt(
                index.handle.offset,
                "block does not end with its index entry",
            )
        })
    }

    /// The version blocks that may hold `(table, key)`'s versions up to
    /// `upto`: `None` when the run has none (before its range, empty, or
    /// ruled out by a loaded filter). Computed once per history read, for
    /// both [`Run::prefetch_span`] and [`Run::versions_in_span`].
    pub(crate) fn key_span(
        &self,
        table: TableId,
        key: &[u8],
        upto: TxId,
    ) -> Result<Option<KeySpan>> {
        if upto < self.footer.first_txid
            || self.vindex.is_empty()
            || self.ruled_out_if_loaded(table, key)
        {
            return Ok(None);
        }
        let lo = self.first_block_not(|e| e.last() < (table, key, TxId::ZERO))?;
        // A key's versions span few blocks: walk from `lo` rather than
        // search again.
        let n = self.vindex.len();
        let mut hi = lo;
        while hi + 1 < n && self.block(hi)?.last() < (table, key, upto) {
            hi += 1;
        }
        Ok((lo < n).then_some(KeySpan { lo, hi }))
    }

    /// Starts reading (`MappedFile::prefetch`) the block-index page that
    /// [`Run::key_span`] of `(table, key)` will need, if it is not loaded
    /// yet; says whether it did (then the run's blocks are probably not in
    /// memory either). No system call once the page is loaded.
    pub(crate) fn prefetch_index_page(&self, table: TableId, key: &[u8]) -> bool {
        let Some(map) = &self.map else { return false };
        if self.ruled_out_if_loaded(table, key) {
            return false;
        }
        match self
            .vindex
            .unloaded_page_for(|e| e.last() < (table, key, TxId::ZERO))
        {
            Some((offset, len)) => {
                map.prefetch(offset as usize, len as usize);
                true
            }
            None => false,
        }
    }

    /// Starts reading (`MappedFile::prefetch`) the blocks of `span`, so
    /// that a history over several runs waits for their I/O once, not run
    /// after run. Nothing for an unmapped run.
    pub(crate) fn prefetch_span(&self, span: KeySpan) {
        let Some(map) = &self.map else { return };
        // Only a hint: the span's pages were loaded by `key_span`.
        if let (Ok(first), Ok(last)) = (self.block(span.lo), self.block(span.hi)) {
            let start = first.handle.offset as usize;
            let end = last.handle.offset as usize + last.handle.len as usize;
            map.prefetch(start, end - start);
        }
    }

    /// Calls `out` with every version of `(table, key)` with a txid at
    /// most `upto` in the blocks of `span` (from [`Run::key_span`] with the
    /// same arguments), oldest first, the value borrowed from the decoded
    /// block: the caller allocates only what it keeps.
    pub(crate) fn versions_in_span(
        &self,
        span: KeySpan,
        table: TableId,
        key: &[u8],
        upto: TxId,
        out: &mut impl FnMut(KeyVersion<'_>),
    ) -> Result<()> {
        let start = (table, key, TxId::ZERO);
        for i in span.lo..=span.hi {
            let mut past = false;
            // The entry before was of `key`: one with the same key as it is
            // too, without a comparison.
            let mut matched = false;
            self.scan_block(i, true, Some(start), |e| {
                let order = if matched && e.same_key {
                    std::cmp::Ordering::Equal
                } else {
                    (e.table, e.key).cmp(&(table, key))
                };
                matched = order.is_eq();
                match order {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Equal if e.txid <= upto => {
                        out(e.to_key_version());
                        true
                    }
                    _ => {
                        past = true;
                        false
                    }
                }
            })?;
            if past {
                break;
            }
        }
        Ok(())
    }

    /// The versions of `(table, key)` valid at some point of `window` as
    /// far as this run knows: those with a txid in the window and the last
    /// one before it (whose successor, if in this run, is in the window),
    /// at most `limit`, oldest or newest first.
    pub(crate) fn history(
        &self,
        table: TableId,
        key: &[u8],
        window: RangeInclusive<TxId>,
        limit: usize,
        direction: Direction,
    ) -> Result<Vec<VersionEntry>> {
        let (from, to) = (*window.start(), *window.end());
        let mut out = Vec::new();
        if from > to || limit == 0 || to < self.footer.first_txid || self.vindex.is_empty() {
            return Ok(out);
        }
        if self.ruled_out_if_loaded(table, key) {
            return Ok(out);
        }
        let n = self.vindex.len();
        let lo = self.first_block_not(|e| e.last() < (table, key, from))?;
        let lo = if lo > 0 && self.block_last_is_key(lo - 1, table, key)? {
            lo - 1
        } else {
            lo
        };
        let hi = self
            .first_block_not(|e| e.last() < (table, key, to))?
            .min(n - 1);
        if lo > hi {
            return Ok(out);
        }
        let of_key = |e: &super::block::EntryView<'_>| e.table == table && e.key == key;
        match direction {
            Direction::Forward => {
                let mut before: Option<VersionEntry> = None;
                let mut done = false;
                for i in lo..=hi {
                    self.scan_block(i, true, Some((table, key, from)), |e| {
                        if e.sort_key() > (table, key, to) {
                            done = true;
                            return false;
                        }
                        if !of_key(&e) {
                            return true;
                        }
                        if e.txid <= from {
                            before = Some(e.to_entry());
                        } else {
                            out.extend(before.take());
                            out.push(e.to_entry());
                        }
                        done = out.len() >= limit;
                        !done
                    })?;
                    if done {
                        break;
                    }
                }
                out.extend(before.take());
                out.truncate(limit);
            }
            Direction::Reverse => {
                for i in (lo..=hi).rev() {
                    let mut block = Vec::new();
                    self.scan_block(i, true, Some((table, key, TxId::ZERO)), |e| {
                        if e.sort_key() > (table, key, to) {
                            return false;
                        }
                        if of_key(&e) {
                            block.push(e.to_entry());
                        }
                        true
                    })?;
                    for e in block.into_iter().rev() {
                        let last = e.txid <= from;
                        out.push(e);
                        if last || out.len() == limit {
                            return Ok(out);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Decodes tx block `j` (its records are `first_txid` up to the next
    /// block's first txid).
    pub(super) fn tx_block(&self, j: usize, cached: bool) -> Result<Vec<TxEntry>> {
        let e = self.tx_block_entry(j)?;
        let end = if j + 1 < self.tindex.len() {
            self.tx_block_entry(j + 1)?.first_txid
        } else {
            self.footer.last_txid.next()
        };
        let raw = self.read_block(e.handle, cached)?;
        let records = decode_tx_block(&raw, e.first_txid, end.0 - e.first_txid.0, self.base())
            .map_err(|r| self.corrupt(e.handle.offset, r))?;
        if records[0].commit_time != e.first_commit_time {
            return Err(self.corrupt(
                e.handle.offset,
                "tx block's first time differs from its index entry",
            ));
        }
        Ok(records)
    }

    /// The record of `txid`, `None` outside the run's range.
    pub(crate) fn tx(&self, txid: TxId) -> Result<Option<TxEntry>> {
        if txid < self.footer.first_txid || txid > self.footer.last_txid {
            return Ok(None);
        }
        let j = self
            .tindex
            .partition_point(self, |e| e.first_txid <= txid)?
            - 1;
        let first = self.tx_block_entry(j)?.first_txid;
        let mut records = self.tx_block(j, true)?;
        Ok(Some(records.swap_remove((txid.0 - first.0) as usize)))
    }

    /// The last txid of the run committed at or before `time`; `None` if
    /// the run's first commit is later.
    pub(crate) fn txid_at_time(&self, time: Timestamp) -> Result<Option<TxId>> {
        if time < self.footer.first_commit_time {
            return Ok(None);
        }
        if time >= self.footer.last_commit_time {
            return Ok(Some(self.footer.last_txid));
        }
        let j = self
            .tindex
            .partition_point(self, |e| e.first_commit_time <= time)?
            - 1;
        let records = self.tx_block(j, true)?;
        let k = records.partition_point(|r| r.commit_time <= time);
        Ok(Some(records[k - 1].txid))
    }
}

impl PageSource for Run {
    fn page_bytes(&self, offset: u64, len: u32) -> Result<Vec<u8>> {
        // `open` checked that the pages lie inside the file. Copied out of
        // the map, so the CRC checked is over the bytes decoded; the page
        // is first advised whole, so a cold page (a few KiB over two
        // memory pages) is one round of I/O, not a fault per memory page.
        if let (Some(map), Some(bytes)) = (&self.map, self.mapped(BlockHandle { offset, len })) {
            map.prefetch(offset as usize, len as usize);
            return Ok(bytes.to_vec());
        }
        let mut bytes = vec![0; len as usize];
        read_at(&*self.file, &self.path, &mut bytes, offset)?;
        Ok(bytes)
    }

    fn corrupt(&self, offset: u64, reason: String) -> Error {
        Error::corrupt(&self.path, offset, reason)
    }
}

fn read_at(file: &dyn StorageFile, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::corrupt(path, offset, "run file ends inside a block or section")
        } else {
            Error::io(path, e)
        }
    })
}

fn read_section(file: &dyn StorageFile, path: &Path, s: Section) -> Result<Vec<u8>> {
    // `check_footer` bounded the section by the file and SECTION_SIZE_MAX.
    let mut bytes = vec![0; s.len as usize];
    read_at(file, path, &mut bytes, s.offset)?;
    if crc32fast::hash(&bytes) != s.crc {
        return Err(Error::corrupt(
            path,
            s.offset,
            "run section checksum mismatch",
        ));
    }
    Ok(bytes)
}

/// The footer's fields against each other and the file: sections are
/// contiguous and end where the footer starts.
fn check_footer(f: &Footer, footer_at: u64) -> Result<(), String> {
    let txs = f
        .last_txid
        .0
        .checked_sub(f.first_txid.0)
        .and_then(|d| d.checked_add(1));
    if f.first_txid == TxId::ZERO || txs != Some(f.n_txs) {
        return Err("footer txid range and tx count disagree".into());
    }
    if f.first_commit_time > f.last_commit_time
        || f.n_keys > f.n_versions
        || (f.n_keys == 0) != (f.n_versions == 0)
        || (f.n_version_blocks == 0) != (f.n_versions == 0)
        || u64::from(f.n_version_blocks) > f.n_versions
        || f.n_tx_blocks == 0
        || u64::from(f.n_tx_blocks) > f.n_txs
    {
        return Err("footer counts are inconsistent".into());
    }
    let mut at = f.version_index.offset;
    if at < HEADER_SIZE as u64 {
        return Err("version index starts inside the header".into());
    }
    for s in [f.version_index, f.tx_index, f.bloom] {
        if s.offset != at || s.len > SECTION_SIZE_MAX {
            return Err("footer sections are not contiguous".into());
        }
        at = at.checked_add(s.len).ok_or("footer section overflows")?;
    }
    if at != footer_at {
        return Err("footer sections do not end at the footer".into());
    }
    Ok(())
}

type Indexes = (PagedIndex<VersionIndexEntry>, PagedIndex<TxIndexEntry>);

/// Reads and checks the two block indexes: in format 3 their top tables
/// (the pages load on first use), before that the flat sections whole.
fn open_indexes(file: &dyn StorageFile, path: &Path, f: &Footer) -> Result<Indexes> {
    let corrupt = |offset: u64, reason: String| Error::corrupt(path, offset, reason);
    let bounds = RunBounds {
        first_txid: f.first_txid,
        last_txid: f.last_txid,
        first_commit_time: f.first_commit_time,
        last_commit_time: f.last_commit_time,
    };
    let vbytes = read_section(file, path, f.version_index)?;
    let tbytes = read_section(file, path, f.tx_index)?;
    let header = HEADER_SIZE as u64;
    if f.version >= 3 {
        let vindex = PagedIndex::from_top(&vbytes, f.n_version_blocks, header, bounds)
            .map_err(|r| corrupt(f.version_index.offset, r))?;
        let tindex = PagedIndex::from_top(&tbytes, f.n_tx_blocks, vindex.end(), bounds)
            .map_err(|r| corrupt(f.tx_index.offset, r))?;
        // The blocks end where the pages start; the pages tile up to the
        // top tables.
        let pages = vindex
            .page_refs()
            .iter()
            .map(|p| (p.offset, p.len))
            .chain(tindex.page_refs().iter().map(|p| (p.offset, p.len)));
        check_page_tiling(pages, tindex.end(), f.version_index.offset)
            .map_err(|r| corrupt(f.version_index.offset, r))?;
        return Ok((vindex, tindex));
    }
    let v = decode_version_index(&vbytes, f.n_version_blocks)
        .map_err(|r| corrupt(f.version_index.offset, r))?;
    let t = decode_tx_index(&tbytes, f.n_tx_blocks).map_err(|r| corrupt(f.tx_index.offset, r))?;
    check_flat_indexes(f, &v, &t, &bounds).map_err(|r| corrupt(f.version_index.offset, r))?;
    let vindex = PagedIndex::loaded(v, header, bounds);
    let tindex = PagedIndex::loaded(t, vindex.end(), bounds);
    Ok((vindex, tindex))
}

/// Both flat indexes (formats 1 and 2): blocks tile the file from the
/// header to the version index, version blocks first; entries in order and
/// within the run.
fn check_flat_indexes(
    f: &Footer,
    v: &[VersionIndexEntry],
    t: &[TxIndexEntry],
    bounds: &RunBounds,
) -> Result<(), String> {
    let mut at = HEADER_SIZE as u64;
    let handles = v.iter().map(|e| e.handle).chain(t.iter().map(|e| e.handle));
    for h in handles {
        check_tiles(h, at)?;
        at += u64::from(h.len);
    }
    if at != f.version_index.offset {
        return Err("blocks do not end where the version index starts".into());
    }
    if t.is_empty() {
        return Err("a run has at least one tx block".into());
    }
    check_in_order(v, bounds)?;
    check_in_order(t, bounds)
}

fn check_in_order<E: IndexEntry>(entries: &[E], bounds: &RunBounds) -> Result<(), String> {
    for (i, e) in entries.iter().enumerate() {
        e.check(bounds, i == 0)?;
        if i > 0 && !e.follows(&entries[i - 1]) {
            return Err("index entries are out of order".into());
        }
    }
    Ok(())
}
