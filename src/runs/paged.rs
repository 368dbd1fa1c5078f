//! A run's block index in pages (run format 3): the entries are stored in
//! pages of `page_entries` each, every page with its own CRC, behind a
//! small top table (`page offset | length | CRC | the page's last entry`)
//! that the footer checksums. Open reads only the top tables; a page is
//! read, checked and decoded the first time a read needs it and kept for
//! the life of the open run. So opening a run costs its top tables (one
//! entry per `page_entries` blocks), not its whole index, and a read of a
//! key costs at most one page more than before.
//!
//! Runs of formats 1 and 2 have one flat index section; their open
//! decodes it whole into a [`PagedIndex`] whose pages are all loaded, so
//! readers see one structure.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::codec::{DecodeResult, Reader};
use super::footer::{
    BlockHandle, TX_INDEX_ENTRY_SIZE, TxIndexEntry, VERSION_INDEX_ENTRY_FIXED_SIZE,
};
use super::footer::{VersionIndexEntry, decode_tx_entry, decode_version_entry};
use super::footer::{encode_tx_entry, encode_version_entry};
use crate::error::{Error, Result};
use crate::limits::KEY_SIZE_MAX;
use crate::types::{Timestamp, TxId};

/// Entries per index page the writer uses by default: a version index
/// page is about 4.5 KiB with 8-byte keys.
pub(crate) const PAGE_ENTRIES_DEFAULT: u32 = 128;
/// The most entries a page may hold.
pub(crate) const PAGE_ENTRIES_MAX: u32 = crate::limits::INDEX_PAGE_ENTRIES_MAX;
/// Bytes of a top table entry before its index entry:
/// `u64 page_offset | u32 page_len | u32 page_crc`.
const PAGE_REF_FIXED: usize = 16;
/// Bytes of a top table before its entries: `u32 page_entries | u32 n_pages`.
const TOP_HEADER: usize = 8;

/// What a block index entry must do to be paged.
pub(super) trait IndexEntry: Clone + PartialEq + std::fmt::Debug {
    /// Bytes an entry takes at least (the decoder's bound on a count).
    const MIN_SIZE: usize;
    /// Bytes an entry takes at most.
    const MAX_SIZE: usize;
    fn handle(&self) -> BlockHandle;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(r: &mut Reader<'_>) -> DecodeResult<Self>;
    /// Whether `self` may follow `prev` in the index (strict order).
    fn follows(&self, prev: &Self) -> bool;
    /// `self` against the run's footer (txid range, times); `first` when it
    /// is the index's first entry.
    fn check(&self, run: &RunBounds, first: bool) -> DecodeResult<()>;
    /// Heap bytes beyond the entry itself.
    fn heap_bytes(&self) -> usize {
        0
    }
}

/// The footer's facts an index entry is checked against.
#[derive(Clone, Copy, Debug)]
pub(super) struct RunBounds {
    pub first_txid: TxId,
    pub last_txid: TxId,
    pub first_commit_time: Timestamp,
    pub last_commit_time: Timestamp,
}

impl RunBounds {
    fn in_range(&self, txid: TxId) -> bool {
        self.first_txid <= txid && txid <= self.last_txid
    }
}

impl IndexEntry for VersionIndexEntry {
    const MIN_SIZE: usize = VERSION_INDEX_ENTRY_FIXED_SIZE;
    const MAX_SIZE: usize = VERSION_INDEX_ENTRY_FIXED_SIZE + KEY_SIZE_MAX;

    fn handle(&self) -> BlockHandle {
        self.handle
    }

    fn encode(&self, out: &mut Vec<u8>) {
        encode_version_entry(self, out);
    }

    fn decode(r: &mut Reader<'_>) -> DecodeResult<Self> {
        decode_version_entry(r)
    }

    fn follows(&self, prev: &Self) -> bool {
        prev.last() < self.last()
    }

    fn check(&self, run: &RunBounds, _first: bool) -> DecodeResult<()> {
        if run.in_range(self.last_txid) {
            Ok(())
        } else {
            Err("version index entry's txid is outside the run".into())
        }
    }

    fn heap_bytes(&self) -> usize {
        self.last_key.heap_bytes()
    }
}

impl IndexEntry for TxIndexEntry {
    const MIN_SIZE: usize = TX_INDEX_ENTRY_SIZE;
    const MAX_SIZE: usize = TX_INDEX_ENTRY_SIZE;

    fn handle(&self) -> BlockHandle {
        self.handle
    }

    fn encode(&self, out: &mut Vec<u8>) {
        encode_tx_entry(self, out);
    }

    fn decode(r: &mut Reader<'_>) -> DecodeResult<Self> {
        decode_tx_entry(r)
    }

    fn follows(&self, prev: &Self) -> bool {
        prev.first_txid < self.first_txid && prev.first_commit_time <= self.first_commit_time
    }

    fn check(&self, run: &RunBounds, first: bool) -> DecodeResult<()> {
        if first
            && (self.first_txid != run.first_txid
                || self.first_commit_time != run.first_commit_time)
        {
            return Err("tx index does not start at the run's first txid".into());
        }
        if run.in_range(self.first_txid) && self.first_commit_time <= run.last_commit_time {
            Ok(())
        } else {
            Err("tx index entry is outside the run".into())
        }
    }
}

/// Where a page is, and the last entry it holds.
#[derive(Clone, Debug)]
pub(super) struct PageRef<E> {
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
    pub last: E,
}

/// Reads a page's stored bytes (the caller checks nothing): the run file,
/// through its map or `pread`.
pub(super) trait PageSource {
    fn page_bytes(&self, offset: u64, len: u32) -> Result<Vec<u8>>;
    fn corrupt(&self, offset: u64, reason: String) -> Error;
}

/// A block index whose pages load on first use.
#[derive(Debug)]
pub(super) struct PagedIndex<E> {
    len: usize,
    page_entries: usize,
    /// Where the index's first block starts (its blocks tile from here).
    start: u64,
    bounds: RunBounds,
    top: Vec<PageRef<E>>,
    pages: Box<[OnceLock<Box<[E]>>]>,
    /// Pages not loaded yet (0 once every page is: no search then to find
    /// one to prefetch).
    unloaded: AtomicUsize,
}

impl<E: IndexEntry> PagedIndex<E> {
    /// An index of a flat section already decoded and checked whole
    /// (formats 1 and 2): every page loaded.
    pub(super) fn loaded(entries: Vec<E>, start: u64, bounds: RunBounds) -> PagedIndex<E> {
        let page_entries = PAGE_ENTRIES_DEFAULT as usize;
        let len = entries.len();
        let mut top = Vec::new();
        let mut pages = Vec::new();
        let mut entries = entries.into_iter();
        loop {
            let page: Box<[E]> = entries.by_ref().take(page_entries).collect();
            let Some(last) = page.last().cloned() else {
                break;
            };
            top.push(PageRef {
                offset: 0,
                len: 0,
                crc: 0,
                last,
            });
            pages.push(OnceLock::from(page));
        }
        PagedIndex {
            len,
            page_entries,
            start,
            bounds,
            top,
            pages: pages.into_boxed_slice(),
            unloaded: AtomicUsize::new(0),
        }
    }

    /// Decodes a top table (format 3) of an index of `n` entries whose
    /// blocks tile from `start`, and checks it: page count and sizes, the
    /// pages' last entries in order and within the run. Where the pages
    /// lie is checked by [`check_page_tiling`].
    pub(super) fn from_top(
        bytes: &[u8],
        n: u32,
        start: u64,
        bounds: RunBounds,
    ) -> DecodeResult<PagedIndex<E>> {
        let mut r = Reader::new(bytes);
        let page_entries = r.u32("page entries")?;
        let n_pages = r.u32("page count")? as usize;
        if !(1..=PAGE_ENTRIES_MAX).contains(&page_entries) {
            return Err(format!("index page of {page_entries} entries"));
        }
        let page_entries = page_entries as usize;
        let len = n as usize;
        if n_pages != len.div_ceil(page_entries) {
            return Err(format!(
                "{n_pages} index pages for {len} entries of {page_entries} a page"
            ));
        }
        if n_pages > bytes.len().saturating_sub(TOP_HEADER) / (PAGE_REF_FIXED + E::MIN_SIZE) {
            return Err(format!(
                "{n_pages} index pages cannot fit {} bytes",
                bytes.len()
            ));
        }
        let mut top: Vec<PageRef<E>> = Vec::with_capacity(n_pages);
        for p in 0..n_pages {
            let offset = r.u64("page offset")?;
            let page_len = r.u32("page length")?;
            let crc = r.u32("page crc")?;
            let last = E::decode(&mut r)?;
            let count = page_entries.min(len - p * page_entries);
            let fits = (count * E::MIN_SIZE..=count * E::MAX_SIZE).contains(&(page_len as usize));
            if !fits {
                return Err(format!(
                    "index page {p} of {page_len} bytes for {count} entries"
                ));
            }
            last.check(&bounds, false)?;
            if let Some(prev) = top.last()
                && (!last.follows(&prev.last) || last.handle().offset <= prev.last.handle().offset)
            {
                return Err(format!("index page {p} is out of order"));
            }
            top.push(PageRef {
                offset,
                len: page_len,
                crc,
                last,
            });
        }
        if !r.is_empty() {
            return Err("index top table has trailing bytes".into());
        }
        let pages = (0..n_pages).map(|_| OnceLock::new()).collect();
        Ok(PagedIndex {
            len,
            page_entries,
            start,
            bounds,
            top,
            pages,
            unloaded: AtomicUsize::new(n_pages),
        })
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pages' places, in order (format 3).
    pub(super) fn page_refs(&self) -> &[PageRef<E>] {
        &self.top
    }

    /// Where the blocks of this index end: the last entry's block end, or
    /// `start` for an empty index.
    pub(super) fn end(&self) -> u64 {
        self.top
            .last()
            .map_or(self.start, |p| end_of(p.last.handle()))
    }

    /// Entry `i` (`i < len`).
    pub(super) fn get(&self, src: &dyn PageSource, i: usize) -> Result<&E> {
        let page = self.page(src, i / self.page_entries)?;
        Ok(&page[i % self.page_entries])
    }

    /// The first `i` whose entry fails `pred`, for a `pred` true on a
    /// prefix of the index (as `slice::partition_point`): one page loaded
    /// at most.
    pub(super) fn partition_point(
        &self,
        src: &dyn PageSource,
        pred: impl Fn(&E) -> bool,
    ) -> Result<usize> {
        let p = self.top.partition_point(|r| pred(&r.last));
        if p == self.top.len() {
            return Ok(self.len);
        }
        let page = self.page(src, p)?;
        Ok(p * self.page_entries + page.partition_point(pred))
    }

    /// Where the page `partition_point(pred)` would read is, if it is not
    /// loaded yet (so a caller can start reading it early).
    pub(super) fn unloaded_page_for(&self, pred: impl Fn(&E) -> bool) -> Option<(u64, u32)> {
        if self.unloaded.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let p = self.top.partition_point(|r| pred(&r.last));
        let at = self.top.get(p)?;
        (self.pages[p].get().is_none()).then_some((at.offset, at.len))
    }

    /// Loads every page (a full check: `verify`).
    pub(super) fn load_all(&self, src: &dyn PageSource) -> Result<()> {
        for p in 0..self.top.len() {
            self.page(src, p)?;
        }
        Ok(())
    }

    /// Every entry, each page loaded (tests).
    #[cfg(test)]
    pub(super) fn all_entries(&self, src: &dyn PageSource) -> Vec<E> {
        (0..self.len)
            .map(|i| self.get(src, i).expect("index page").clone())
            .collect()
    }

    /// Whether page `p` is loaded (tests).
    #[cfg(test)]
    pub(super) fn page_loaded(&self, p: usize) -> bool {
        self.pages[p].get().is_some()
    }

    /// Heap bytes held: the top table and the pages loaded so far.
    pub(super) fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<E>();
        let top: usize = self
            .top
            .iter()
            .map(|p| std::mem::size_of::<PageRef<E>>() + p.last.heap_bytes())
            .sum();
        let pages: usize = self
            .pages
            .iter()
            .filter_map(OnceLock::get)
            .map(|page| page.iter().map(|e| entry + e.heap_bytes()).sum::<usize>())
            .sum();
        top + pages + self.pages.len() * std::mem::size_of::<OnceLock<Box<[E]>>>()
    }

    fn page(&self, src: &dyn PageSource, p: usize) -> Result<&[E]> {
        if let Some(page) = self.pages[p].get() {
            return Ok(page);
        }
        let at = &self.top[p];
        let bytes = src.page_bytes(at.offset, at.len)?;
        if crc32fast::hash(&bytes) != at.crc {
            return Err(src.corrupt(at.offset, "index page checksum mismatch".into()));
        }
        let entries = self
            .decode_page(p, &bytes)
            .map_err(|r| src.corrupt(at.offset, format!("index page {p}: {r}")))?;
        let mut stored = false;
        let page = self.pages[p].get_or_init(|| {
            stored = true;
            entries
        });
        if stored {
            self.unloaded.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(page)
    }

    /// Page `p`'s entries, checked: the count, order (after the previous
    /// page's last entry), the run's bounds, that its blocks tile from
    /// where the previous page's end, and that it ends with its top entry.
    fn decode_page(&self, p: usize, bytes: &[u8]) -> DecodeResult<Box<[E]>> {
        let count = self.page_entries.min(self.len - p * self.page_entries);
        let mut r = Reader::new(bytes);
        let mut entries: Vec<E> = Vec::with_capacity(count);
        let (mut prev, mut at) = match p.checked_sub(1) {
            Some(q) => (Some(&self.top[q].last), end_of(self.top[q].last.handle())),
            None => (None, self.start),
        };
        for k in 0..count {
            let e = E::decode(&mut r)?;
            e.check(&self.bounds, p == 0 && k == 0)?;
            if prev.is_some_and(|prev| !e.follows(prev)) {
                return Err("index entries are out of order".into());
            }
            check_tiles(e.handle(), at)?;
            at = end_of(e.handle());
            entries.push(e);
            prev = entries.last();
        }
        if !r.is_empty() {
            return Err("index page has trailing bytes".into());
        }
        if entries.last() != Some(&self.top[p].last) {
            return Err("index page does not end with its top table entry".into());
        }
        Ok(entries.into_boxed_slice())
    }
}

/// A block handle must start where the previous block ended and have a
/// block's size.
pub(super) fn check_tiles(h: BlockHandle, at: u64) -> DecodeResult<()> {
    let len = h.len as usize;
    if h.offset != at
        || !(super::block::BLOCK_HEADER_SIZE..=super::BLOCK_STORED_SIZE_MAX).contains(&len)
    {
        return Err(format!(
            "block at {} is not where the previous one ends",
            h.offset
        ));
    }
    Ok(())
}

fn end_of(h: BlockHandle) -> u64 {
    h.offset + u64::from(h.len)
}

/// Checks that `pages` (offset, length), in order, tile the file from
/// `from` to `to` exactly.
pub(super) fn check_page_tiling(
    pages: impl IntoIterator<Item = (u64, u32)>,
    from: u64,
    to: u64,
) -> DecodeResult<()> {
    let mut at = from;
    for (offset, len) in pages {
        if offset != at {
            return Err(format!(
                "index page at {offset} is not where the previous one ends"
            ));
        }
        at = at
            .checked_add(u64::from(len))
            .ok_or("index page overflows")?;
    }
    if at != to {
        return Err("index pages do not end where the top tables start".into());
    }
    Ok(())
}

/// Encodes `entries` into pages of `page_entries`, written from `offset`
/// on: the page bytes in order and the top table that describes them.
pub(super) fn encode_pages<E: IndexEntry>(
    entries: &[E],
    page_entries: usize,
    mut offset: u64,
) -> (Vec<u8>, Vec<u8>) {
    let mut pages = Vec::new();
    let mut top = Vec::with_capacity(TOP_HEADER);
    let n_pages = u32::try_from(entries.len().div_ceil(page_entries)).expect("pages fit u32");
    top.extend_from_slice(
        &u32::try_from(page_entries)
            .expect("checked by the config")
            .to_le_bytes(),
    );
    top.extend_from_slice(&n_pages.to_le_bytes());
    let mut page = Vec::new();
    for chunk in entries.chunks(page_entries) {
        page.clear();
        for e in chunk {
            e.encode(&mut page);
        }
        top.extend_from_slice(&offset.to_le_bytes());
        top.extend_from_slice(
            &u32::try_from(page.len())
                .expect("a page fits u32")
                .to_le_bytes(),
        );
        top.extend_from_slice(&crc32fast::hash(&page).to_le_bytes());
        chunk.last().expect("chunks are not empty").encode(&mut top);
        offset += page.len() as u64;
        pages.extend_from_slice(&page);
    }
    (pages, top)
}
