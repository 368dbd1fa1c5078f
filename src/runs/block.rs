//! Blocks: the framing every block shares (checksum, compression) and the
//! encoding of version blocks. Tx blocks are in `txblock`. Pure, no I/O.
//!
//! A stored block is `u32 crc32 | u8 compression | u32 raw_len | bytes`;
//! the CRC covers everything after itself and is checked before anything
//! is decompressed or decoded.

use std::borrow::Cow;

use super::codec::{DecodeResult, Reader, put_varint, put_varint_bytes, put_varint_usize};
use super::grouped::{GroupedBlock, GroupedParts, put_group_key, seal_grouped};
use super::{BLOCK_RAW_SIZE_MAX, Compression, META_INLINE_SIZE_MAX, MetaRef, VersionEntry};
use crate::limits::{KEY_SIZE_MAX, VALUE_SIZE_MAX};
use crate::types::{Op, TableId, Timestamp, TxId};

/// `u32 crc32 | u8 compression | u32 raw_len`.
pub(crate) const BLOCK_HEADER_SIZE: usize = 9;

pub(super) const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_ZSTD: u8 = 1;
const COMPRESSION_LZ4: u8 = 2;

thread_local! {
    // One zstd context per thread, reused: creating one costs more than
    // decompressing a small block (measured 62 µs fresh against 16 µs
    // reused for a 4 KiB block).
    static ZSTD_DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static ZSTD_COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

fn zstd_compress(raw: &[u8], level: i32) -> Option<Vec<u8>> {
    ZSTD_COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(l, _)| *l != level) {
            *cell = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        let (_, compressor) = cell.as_mut()?;
        compressor.compress(raw).ok()
    })
}

fn zstd_decompress_into(body: &[u8], out: &mut [u8]) -> DecodeResult<usize> {
    ZSTD_DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| format!("no zstd decompressor: {e}"))?,
            );
        }
        let decompressor = cell.as_mut().ok_or("no zstd decompressor")?;
        decompressor
            .decompress_to_buffer(body, out)
            .map_err(|e| format!("zstd block does not decompress: {e}"))
    })
}

/// `raw` compressed with `compression` when that makes it smaller: the
/// codec byte and the body.
pub(super) fn compress_body(raw: &[u8], compression: Compression) -> (u8, Cow<'_, [u8]>) {
    let compressed = match compression {
        Compression::None => None,
        Compression::Zstd { level } => zstd_compress(raw, level).map(|c| (COMPRESSION_ZSTD, c)),
        Compression::Lz4 => Some((COMPRESSION_LZ4, lz4_flex::block::compress(raw))),
    };
    match compressed {
        Some((kind, c)) if c.len() < raw.len() => (kind, Cow::Owned(c)),
        _ => (COMPRESSION_NONE, Cow::Borrowed(raw)),
    }
}

/// Decodes `body` stored with codec `kind` into `out`, which must be
/// exactly as long as the raw bytes.
pub(super) fn decompress_into(kind: u8, body: &[u8], out: &mut [u8]) -> DecodeResult<()> {
    let raw_len = out.len();
    let n = match kind {
        COMPRESSION_NONE if body.len() == raw_len => {
            out.copy_from_slice(body);
            raw_len
        }
        COMPRESSION_NONE => {
            return Err(format!(
                "uncompressed block holds {} bytes, header says {raw_len}",
                body.len()
            ));
        }
        COMPRESSION_ZSTD => zstd_decompress_into(body, out)?,
        COMPRESSION_LZ4 => lz4_flex::block::decompress_into(body, out)
            .map_err(|e| format!("lz4 block does not decompress: {e}"))?,
        other => return Err(format!("unknown block compression {other}")),
    };
    if n != raw_len {
        return Err(format!(
            "compressed block holds {n} bytes, header says {raw_len}"
        ));
    }
    Ok(())
}

/// Frames `raw` as a stored block, compressed when that is smaller.
pub(super) fn seal_block(raw: &[u8], compression: Compression) -> Vec<u8> {
    assert!(
        raw.len() <= BLOCK_RAW_SIZE_MAX,
        "blocks are bounded by the writer"
    );
    let (kind, body) = compress_body(raw, compression);
    let mut out = Vec::with_capacity(BLOCK_HEADER_SIZE + body.len());
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    out.extend_from_slice(
        &u32::try_from(raw.len())
            .expect("bounded above")
            .to_le_bytes(),
    );
    out.extend_from_slice(&body);
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a stored block's CRC, then decompresses it. The CRC is checked
/// before any other byte of the block is looked at; a grouped version
/// block (`grouped`) is checked group by group and reassembled.
pub(super) fn open_block(stored: &[u8]) -> DecodeResult<Vec<u8>> {
    if let Some(grouped) = GroupedBlock::parse(stored)? {
        return grouped.reassemble();
    }
    if stored.len() < BLOCK_HEADER_SIZE {
        return Err(format!(
            "block of {} bytes is shorter than its header",
            stored.len()
        ));
    }
    let mut r = Reader::new(stored);
    let crc = r.u32("block crc")?;
    let actual = crc32fast::hash(&stored[4..]);
    if crc != actual {
        return Err(format!(
            "block checksum mismatch: stored {crc:#010x}, computed {actual:#010x}"
        ));
    }
    let kind = r.u8("compression")?;
    let raw_len = r.u32("raw length")? as usize;
    if raw_len > BLOCK_RAW_SIZE_MAX {
        return Err(format!(
            "raw block length {raw_len} exceeds the limit {BLOCK_RAW_SIZE_MAX}"
        ));
    }
    let body = &stored[BLOCK_HEADER_SIZE..];
    if kind == COMPRESSION_NONE && body.len() == raw_len {
        return Ok(body.to_vec());
    }
    let mut raw = vec![0; raw_len];
    decompress_into(kind, body, &mut raw)?;
    Ok(raw)
}

/// What a block's entries are relative to: the run's txid range and first
/// commit time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Base {
    pub first_txid: TxId,
    pub last_txid: TxId,
    pub first_commit_time: Timestamp,
}

const META_NONE: u8 = 0;
const META_INLINE: u8 = 1;
const META_IN_TX: u8 = 2;

/// Every this many entries one is a restart point: its key is stored
/// whole and its txid absolute, so decoding can start there. A point read
/// binary-searches the restart points and decodes at most this many
/// entries after one.
pub(super) const RESTART_INTERVAL: u64 = 16;
/// `u32 n_restarts | u32 n_entries` at the end of a version block.
const VERSION_BLOCK_TRAILER_SIZE: usize = 8;

/// Accumulates the entries of one version block.
#[derive(Debug)]
pub(super) struct VersionBlockBuilder {
    base: Base,
    entries: Vec<u8>,
    restarts: Vec<u32>,
    n_entries: u64,
    prev: Option<(TableId, Vec<u8>, TxId)>,
    /// Each restart entry's sort key (`grouped::put_group_key`), for the
    /// directory of a grouped block.
    restart_keys: Vec<u8>,
    restart_key_offsets: Vec<u32>,
}

impl VersionBlockBuilder {
    pub(super) fn new(base: Base) -> VersionBlockBuilder {
        VersionBlockBuilder {
            base,
            entries: Vec::new(),
            restarts: Vec::new(),
            n_entries: 0,
            prev: None,
            restart_keys: Vec::new(),
            restart_key_offsets: Vec::new(),
        }
    }

    /// Uncompressed bytes so far.
    pub(super) fn raw_len(&self) -> usize {
        self.entries.len() + 4 * self.restarts.len() + VERSION_BLOCK_TRAILER_SIZE
    }

    pub(super) fn is_empty(&self) -> bool {
        self.n_entries == 0
    }

    /// Appends `e`, which the caller has checked sorts after the previous
    /// entry and lies in the run's range.
    pub(super) fn add(&mut self, e: &VersionEntry) {
        let restart = self.n_entries.is_multiple_of(RESTART_INTERVAL);
        if restart {
            let at = u32::try_from(self.entries.len()).expect("blocks are below 4 GiB");
            self.restarts.push(at);
            let key_at = u32::try_from(self.restart_keys.len()).expect("blocks are below 4 GiB");
            self.restart_key_offsets.push(key_at);
            put_group_key(&mut self.restart_keys, e.table, &e.key, e.txid, self.base);
        }
        let buf = &mut self.entries;
        put_varint(buf, u64::from(e.table.0));
        let (shared, same_key, prev_txid) = match &self.prev {
            Some((table, key, txid)) if !restart => {
                let shared = common_prefix(key, &e.key);
                let same = *table == e.table && shared == key.len() && shared == e.key.len();
                (shared, same, *txid)
            }
            _ => (0, false, TxId::ZERO),
        };
        put_varint_usize(buf, shared);
        put_varint_bytes(buf, &e.key[shared..]);
        let meta_kind = match &e.meta {
            MetaRef::None => META_NONE,
            MetaRef::Inline(_) => META_INLINE,
            MetaRef::InTx => META_IN_TX,
        };
        buf.push(e.op.to_byte() | (meta_kind << 2));
        if same_key {
            assert!(e.txid > prev_txid, "versions of a key are in txid order");
            put_varint(buf, e.txid.0 - prev_txid.0);
        } else {
            put_varint(buf, e.txid.0 - self.base.first_txid.0);
        }
        let time = e.commit_time.as_micros();
        let base_time = self.base.first_commit_time.as_micros();
        assert!(time >= base_time, "commit times never decrease");
        put_varint(buf, time - base_time);
        if let MetaRef::Inline(meta) = &e.meta {
            assert!(
                meta.len() <= META_INLINE_SIZE_MAX,
                "inline metadata is small"
            );
            put_varint_bytes(buf, meta);
        }
        assert_eq!(
            e.value.is_some(),
            e.op != Op::Delete,
            "a value exactly when not a delete"
        );
        if let Some(value) = &e.value {
            put_varint_bytes(buf, value);
        }
        self.n_entries += 1;
        match &mut self.prev {
            Some((table, key, txid)) => {
                *table = e.table;
                key.clear();
                key.extend_from_slice(&e.key);
                *txid = e.txid;
            }
            None => self.prev = Some((e.table, e.key.clone(), e.txid)),
        }
    }

    /// The block's uncompressed bytes:
    /// `entry* | u32 restart_offset* | u32 n_restarts | u32 n_entries`.
    #[cfg(test)]
    pub(super) fn finish(self) -> Vec<u8> {
        let mut raw = self.entries;
        for r in &self.restarts {
            raw.extend_from_slice(&r.to_le_bytes());
        }
        let n_restarts = u32::try_from(self.restarts.len()).expect("bounded by the block size");
        raw.extend_from_slice(&n_restarts.to_le_bytes());
        let n = u32::try_from(self.n_entries).expect("bounded by the block size");
        raw.extend_from_slice(&n.to_le_bytes());
        raw
    }

    /// The block as stored in a run of format 2: grouped (`grouped`), each
    /// restart group compressed with `compression` when that is smaller.
    pub(super) fn seal(self, compression: Compression) -> Vec<u8> {
        let raw_len = self.raw_len();
        seal_grouped(
            &GroupedParts {
                entries: &self.entries,
                restarts: &self.restarts,
                n_entries: self.n_entries,
                keys: &self.restart_keys,
                key_offsets: &self.restart_key_offsets,
                raw_len,
            },
            compression,
        )
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A decoded entry borrowing the block (value, metadata) and the cursor
/// (the reconstructed key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct EntryView<'a> {
    pub table: TableId,
    pub key: &'a [u8],
    pub txid: TxId,
    pub op: Op,
    pub commit_time: Timestamp,
    /// `Some(bytes)` for inline metadata.
    pub meta_inline: Option<&'a [u8]>,
    pub meta_in_tx: bool,
    pub value: Option<&'a [u8]>,
    /// The same `(table, key)` as the entry before it in the block (never
    /// for the first entry of a group): a caller that matched that one
    /// need not compare the key again.
    pub same_key: bool,
}

impl<'a> EntryView<'a> {
    pub(super) fn sort_key(&self) -> (TableId, &[u8], TxId) {
        (self.table, self.key, self.txid)
    }

    fn meta(&self) -> MetaRef {
        match (self.meta_inline, self.meta_in_tx) {
            (Some(m), _) => MetaRef::Inline(m.to_vec()),
            (None, true) => MetaRef::InTx,
            (None, false) => MetaRef::None,
        }
    }

    pub(super) fn to_entry(self) -> VersionEntry {
        VersionEntry {
            key: self.key.to_vec(),
            ..self.to_entry_keyless()
        }
    }

    /// The entry as a history read takes it: no key, the value borrowed.
    pub(super) fn to_key_version(self) -> super::KeyVersion<'a> {
        super::KeyVersion {
            txid: self.txid,
            op: self.op,
            commit_time: self.commit_time,
            meta: self.meta(),
            value: self.value,
        }
    }

    /// `to_entry` with an empty key, for a caller that knows it.
    pub(super) fn to_entry_keyless(self) -> VersionEntry {
        VersionEntry {
            table: self.table,
            key: Vec::new(),
            txid: self.txid,
            op: self.op,
            commit_time: self.commit_time,
            meta: self.meta(),
            value: self.value.map(<[u8]>::to_vec),
        }
    }

    /// Overwrites `out` with this entry, reusing its buffers (a scan that
    /// keeps "the best so far" allocates once, not once per entry).
    pub(super) fn copy_into(self, out: &mut Option<VersionEntry>) {
        let Some(e) = out else {
            *out = Some(self.to_entry());
            return;
        };
        e.table = self.table;
        e.key.clear();
        e.key.extend_from_slice(self.key);
        e.txid = self.txid;
        e.op = self.op;
        e.commit_time = self.commit_time;
        match (&mut e.meta, self.meta_inline) {
            (MetaRef::Inline(m), Some(bytes)) => {
                m.clear();
                m.extend_from_slice(bytes);
            }
            _ => e.meta = self.meta(),
        }
        match (&mut e.value, self.value) {
            (Some(v), Some(bytes)) => {
                v.clear();
                v.extend_from_slice(bytes);
            }
            (v, bytes) => *v = bytes.map(<[u8]>::to_vec),
        }
    }
}

/// The sort key of the restart entry `r` is at, its txid as stored (the
/// offset from the run's first txid).
pub(super) fn restart_entry_key<'a>(r: &mut Reader<'a>) -> DecodeResult<(TableId, &'a [u8], u64)> {
    let table = TableId(r.varint_max(u64::from(u32::MAX), "table id")? as u32);
    r.varint_max(0, "shared key prefix at a restart")?;
    let key = r.varint_bytes(KEY_SIZE_MAX, "key")?;
    r.u8("entry flags")?;
    Ok((table, key, r.varint("txid")?))
}

/// Decodes a version block entry by entry, checking every length, the
/// restart points, the sort order within the block and that txids and
/// times fit the run.
pub(super) struct VersionCursor<'a> {
    r: Reader<'a>,
    restarts: &'a [u8],
    base: Base,
    n_entries: u64,
    /// Ordinal of the next entry.
    index: u64,
    key: Vec<u8>,
    prev: Option<(TableId, TxId)>,
}

impl<'a> VersionCursor<'a> {
    pub(super) fn new(raw: &'a [u8], base: Base) -> DecodeResult<VersionCursor<'a>> {
        let len = raw.len();
        if len < VERSION_BLOCK_TRAILER_SIZE {
            return Err("version block is shorter than its trailer".into());
        }
        let mut t = Reader::new(&raw[len - VERSION_BLOCK_TRAILER_SIZE..]);
        let n_restarts = t.u32("restart count")? as usize;
        let n_entries = u64::from(t.u32("entry count")?);
        if n_entries == 0 || n_restarts as u64 != n_entries.div_ceil(RESTART_INTERVAL) {
            return Err(format!(
                "version block of {n_entries} entries has {n_restarts} restarts"
            ));
        }
        let entries_end = (len - VERSION_BLOCK_TRAILER_SIZE)
            .checked_sub(4 * n_restarts)
            .ok_or("restart points run past the block")?;
        // Every entry takes at least 6 bytes.
        if n_entries > entries_end as u64 / 6 {
            return Err(format!(
                "{n_entries} entries cannot fit {entries_end} bytes"
            ));
        }
        let restarts = &raw[entries_end..len - VERSION_BLOCK_TRAILER_SIZE];
        let cursor = VersionCursor {
            r: Reader::new(&raw[..entries_end]),
            restarts,
            base,
            n_entries,
            index: 0,
            key: Vec::new(),
            prev: None,
        };
        let mut prev = None;
        for i in 0..n_restarts {
            let at = cursor.restart_offset(i);
            if prev.is_none_or(|p| p < at) && at < entries_end && (i > 0 || at == 0) {
                prev = Some(at);
            } else {
                return Err(format!("restart point {i} at {at} is out of order"));
            }
        }
        Ok(cursor)
    }

    /// A cursor over one restart group of a grouped block: `raw` holds
    /// the group's entries only, `first` is the ordinal of its first entry
    /// (a restart point) and `count` how many entries it holds.
    pub(super) fn for_group(raw: &'a [u8], base: Base, first: u64, count: u64) -> Self {
        VersionCursor {
            r: Reader::new(raw),
            restarts: &[],
            base,
            n_entries: first + count,
            index: first,
            key: Vec::new(),
            prev: None,
        }
    }

    fn restart_offset(&self, i: usize) -> usize {
        let b = &self.restarts[4 * i..4 * i + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    /// Byte position inside the block (for error messages).
    pub(super) fn pos(&self) -> usize {
        self.r.pos()
    }

    /// Moves to the last restart point whose entry is at most `target`
    /// (the first one if none is), so that the next entries include the
    /// greatest entry at most `target`, if the block has one.
    pub(super) fn seek(&mut self, target: (TableId, &[u8], TxId)) -> DecodeResult<()> {
        let n_restarts = self.restarts.len() / 4;
        let (mut lo, mut hi) = (1, n_restarts);
        // Restart 0 is where a fresh cursor starts; search the others.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.restart_key(mid)? <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let r = lo - 1;
        self.r.set_pos(self.restart_offset(r));
        self.index = r as u64 * RESTART_INTERVAL;
        self.key.clear();
        self.prev = None;
        Ok(())
    }

    /// The sort key of the entry at restart point `i` (stored whole).
    fn restart_key(&self, i: usize) -> DecodeResult<(TableId, &'a [u8], TxId)> {
        let mut r = self.r.clone();
        r.set_pos(self.restart_offset(i));
        let (table, key, delta) = restart_entry_key(&mut r)?;
        let txid = self
            .base
            .first_txid
            .0
            .checked_add(delta)
            .ok_or("restart txid overflows")?;
        Ok((table, key, TxId(txid)))
    }

    /// The next entry, `None` after the last (then every byte was used).
    pub(super) fn next_entry(&mut self) -> DecodeResult<Option<EntryView<'_>>> {
        if self.index == self.n_entries {
            if !self.r.is_empty() {
                return Err("version block has trailing bytes".into());
            }
            return Ok(None);
        }
        let restart = self.index.is_multiple_of(RESTART_INTERVAL);
        // A group cursor (no restart table) starts at its restart point.
        if restart
            && !self.restarts.is_empty()
            && self.r.pos() != self.restart_offset((self.index / RESTART_INTERVAL) as usize)
        {
            return Err("restart point does not match its entry".into());
        }
        self.index += 1;
        let r = &mut self.r;
        let table = TableId(r.varint_max(u64::from(u32::MAX), "table id")? as u32);
        let max_shared = if restart { 0 } else { self.key.len() };
        let shared = r.varint_max(max_shared as u64, "shared key prefix")? as usize;
        let suffix = r.varint_bytes(KEY_SIZE_MAX - shared, "key suffix")?;
        let flags = r.u8("entry flags")?;
        let op = Op::from_byte(flags & 3).ok_or_else(|| format!("bad entry flags {flags:#x}"))?;
        let meta_kind = flags >> 2;
        if meta_kind > META_IN_TX {
            return Err(format!("bad entry flags {flags:#x}"));
        }
        // The new key is the previous one's first `shared` bytes and then
        // `suffix`, so it compares with the previous key as `suffix` does
        // with the previous key's bytes after `shared`.
        let key_order = if suffix.is_empty() && shared == self.key.len() {
            // The common case within a key's versions: no call to compare
            // two empty tails.
            std::cmp::Ordering::Equal
        } else {
            suffix.cmp(&self.key[shared..])
        };
        let same_key =
            !restart && matches!(self.prev, Some((t, _)) if t == table) && key_order.is_eq();
        let delta = r.varint("txid")?;
        let txid = match (same_key, self.prev) {
            (true, Some((_, prev))) if delta > 0 => prev.0.checked_add(delta),
            (true, _) => None,
            (false, _) => self.base.first_txid.0.checked_add(delta),
        }
        .filter(|&t| t <= self.base.last_txid.0)
        .ok_or_else(|| "entry txid outside the run's range".to_string())?;
        let time = r.varint("commit time")?;
        let commit_time = self
            .base
            .first_commit_time
            .as_micros()
            .checked_add(time)
            .ok_or_else(|| "entry commit time overflows".to_string())?;
        let meta_inline = match meta_kind {
            META_INLINE => Some(r.varint_bytes(META_INLINE_SIZE_MAX, "inline metadata")?),
            _ => None,
        };
        let value = match op {
            Op::Delete => None,
            Op::Insert | Op::Update => Some(r.varint_bytes(VALUE_SIZE_MAX, "value")?),
        };
        if let Some((prev_table, prev_txid)) = self.prev {
            let ordered = table > prev_table
                || (table == prev_table
                    && (key_order.is_gt() || (key_order.is_eq() && txid > prev_txid.0)));
            if !ordered {
                return Err("version block entries are out of order".into());
            }
        }
        self.key.truncate(shared);
        self.key.extend_from_slice(suffix);
        self.prev = Some((table, TxId(txid)));
        Ok(Some(EntryView {
            table,
            key: &self.key,
            txid: TxId(txid),
            op,
            commit_time: Timestamp::from_micros(commit_time),
            meta_inline,
            meta_in_tx: meta_kind == META_IN_TX,
            value,
            same_key,
        }))
    }
}
