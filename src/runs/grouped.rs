//! Grouped version blocks (run format 2). A version block is stored as its
//! restart groups (the entries from one restart point up to the next), each
//! compressed and checksummed on its own, behind a checksummed directory
//! that holds every group's first sort key. A point read or a history
//! checks the directory, binary-searches it and checks and decompresses
//! only the groups it decodes; a whole-block read (scans, merges, verify)
//! reassembles exactly the raw block `VersionBlockBuilder::finish` builds.
//! Pure, no I/O.
//!
//! Stored layout, integers little-endian:
//!
//! ```text
//! u32 crc | u8 kind = 3 | u32 raw_len | u32 n_entries | u32 n_groups
//! group[n_groups] | u32 keys_len | keys[keys_len] | bodies
//! group = u32 body_offset | u32 body_len | u32 raw_len | u32 body_crc
//!         | u8 codec | u32 key_offset                      (21 bytes)
//! keys  = per group: varint table | varint key_len | key | varint txid delta
//! ```
//!
//! The CRC covers bytes 4 up to the start of `bodies`; each body has its
//! own CRC; bodies tile the rest of the block in group order.

use super::block::{
    Base, COMPRESSION_NONE, RESTART_INTERVAL as GROUP_ENTRIES, compress_body, decompress_into,
    restart_entry_key,
};
use super::codec::{DecodeResult, Reader, put_varint, put_varint_bytes};
use super::{BLOCK_RAW_SIZE_MAX, BLOCK_STORED_SIZE_MAX, Compression};
use crate::limits::KEY_SIZE_MAX;
use crate::types::{TableId, TxId};

/// The kind byte (at offset 4, where whole blocks keep their compression).
pub(super) const KIND_GROUPED: u8 = 3;
/// `u32 crc | u8 kind | u32 raw_len | u32 n_entries | u32 n_groups`.
const HEADER_SIZE: usize = 17;
/// One directory entry.
const GROUP_SIZE: usize = 21;

/// Appends a directory key: `(table, key, txid)` relative to `base`.
pub(super) fn put_group_key(
    keys: &mut Vec<u8>,
    table: TableId,
    key: &[u8],
    txid: TxId,
    base: Base,
) {
    put_varint(keys, u64::from(table.0));
    put_varint_bytes(keys, key);
    put_varint(keys, txid.0 - base.first_txid.0);
}

/// What a finished version block hands over to be stored grouped.
pub(super) struct GroupedParts<'a> {
    /// The entries, as in the raw block.
    pub entries: &'a [u8],
    /// Offset in `entries` of each group's first entry.
    pub restarts: &'a [u32],
    pub n_entries: u64,
    /// Directory keys, one per group (`put_group_key`).
    pub keys: &'a [u8],
    /// Offset in `keys` of each group's key.
    pub key_offsets: &'a [u32],
    /// The length of the raw block these parts make.
    pub raw_len: usize,
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).expect("a block is far below 4 GiB")
}

/// Stores `parts` grouped, each group compressed with `compression` when
/// that makes it smaller.
pub(super) fn seal_grouped(parts: &GroupedParts<'_>, compression: Compression) -> Vec<u8> {
    let n_groups = parts.restarts.len();
    assert_eq!(n_groups, parts.key_offsets.len(), "one key per group");
    let mut directory = Vec::with_capacity(n_groups * GROUP_SIZE);
    let mut bodies = Vec::new();
    for (g, &start) in parts.restarts.iter().enumerate() {
        let end = parts
            .restarts
            .get(g + 1)
            .map_or(parts.entries.len(), |&e| e as usize);
        let raw = &parts.entries[start as usize..end];
        let (codec, body) = compress_body(raw, compression);
        for n in [
            u32_of(bodies.len()),
            u32_of(body.len()),
            u32_of(raw.len()),
            crc32fast::hash(&body),
        ] {
            directory.extend_from_slice(&n.to_le_bytes());
        }
        directory.push(codec);
        directory.extend_from_slice(&parts.key_offsets[g].to_le_bytes());
        bodies.extend_from_slice(&body);
    }
    let mut out =
        Vec::with_capacity(HEADER_SIZE + directory.len() + 4 + parts.keys.len() + bodies.len());
    out.extend_from_slice(&[0; 4]);
    out.push(KIND_GROUPED);
    for n in [
        u32_of(parts.raw_len),
        u32::try_from(parts.n_entries).expect("bounded by the block size"),
        u32_of(n_groups),
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&directory);
    out.extend_from_slice(&u32_of(parts.keys.len()).to_le_bytes());
    out.extend_from_slice(parts.keys);
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&bodies);
    assert!(
        out.len() <= BLOCK_STORED_SIZE_MAX,
        "a grouped version block stays within the stored block limit"
    );
    out
}

/// One directory entry, decoded.
#[derive(Clone, Copy, Debug)]
struct Group {
    body_offset: usize,
    body_len: usize,
    raw_len: usize,
    body_crc: u32,
    codec: u8,
    key_offset: usize,
}

/// A grouped block whose header and directory were checked.
#[derive(Debug)]
pub(super) struct GroupedBlock<'a> {
    raw_len: usize,
    n_entries: u64,
    groups: &'a [u8],
    keys: &'a [u8],
    bodies: &'a [u8],
    /// Whether `bodies` are shared bytes another process could change
    /// (a map): then a body is copied before its CRC is checked, so the
    /// bytes decoded are the bytes checked.
    shared_bodies: bool,
}

/// Buffers a grouped read reuses: a copy of a shared body, a decompressed
/// group.
#[derive(Debug, Default)]
pub(super) struct GroupBuffers {
    body: Vec<u8>,
    raw: Vec<u8>,
}

/// Bytes a reused buffer may keep between reads; one that grew past this
/// (a group holding a large value) is freed after its read.
pub(super) const KEPT_BUFFER_BYTES: usize = 1 << 20;

impl GroupBuffers {
    /// Frees the buffers that grew past [`KEPT_BUFFER_BYTES`].
    pub(super) fn trim(&mut self) {
        for buf in [&mut self.body, &mut self.raw] {
            if buf.capacity() > KEPT_BUFFER_BYTES {
                *buf = Vec::new();
            }
        }
    }
}

/// `bytes` copied into `buf` (grown, never shrunk), as a slice of it.
fn copy_into<'b>(bytes: &[u8], buf: &'b mut Vec<u8>) -> &'b [u8] {
    buf.clear();
    buf.extend_from_slice(bytes);
    buf
}

impl<'a> GroupedBlock<'a> {
    /// `parse` of a block in shared bytes (a map another process could
    /// write into): header and directory are copied into `dir` and checked
    /// there, and every body is copied before it is checked (`group_raw`),
    /// so what is decoded is always what was checked.
    pub(super) fn parse_shared(
        stored: &'a [u8],
        dir: &'a mut Vec<u8>,
    ) -> DecodeResult<Option<GroupedBlock<'a>>> {
        if stored.get(4) != Some(&KIND_GROUPED) {
            return Ok(None);
        }
        // The directory's extent from unchecked bytes, bounded by the
        // block; the copy is checked (and its extent recomputed) below.
        let u32_at = |at: usize| -> DecodeResult<usize> {
            let b = stored
                .get(at..at + 4)
                .ok_or("grouped block is shorter than its directory")?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let keys_len_at = (u32_at(13)?)
            .checked_mul(GROUP_SIZE)
            .and_then(|n| n.checked_add(HEADER_SIZE))
            .ok_or("group directory overflows")?;
        let dir_end = keys_len_at
            .checked_add(4)
            .and_then(|n| n.checked_add(u32_at(keys_len_at).ok()?))
            .filter(|&end| end <= stored.len())
            .ok_or("group directory runs past the block")?;
        let copy = copy_into(&stored[..dir_end], dir);
        let Some(mut block) = GroupedBlock::parse(copy)? else {
            return Err("block kind changed while read".into());
        };
        if !block.bodies.is_empty() {
            return Err("block directory changed while read".into());
        }
        block.bodies = &stored[dir_end..];
        block.shared_bodies = true;
        Ok(Some(block))
    }

    /// `None` when `stored` is not a grouped block; else checks the
    /// directory's CRC (before anything else of it is used) and sizes.
    pub(super) fn parse(stored: &'a [u8]) -> DecodeResult<Option<GroupedBlock<'a>>> {
        if stored.get(4) != Some(&KIND_GROUPED) {
            return Ok(None);
        }
        if stored.len() < HEADER_SIZE {
            return Err(format!(
                "grouped block of {} bytes is shorter than its header",
                stored.len()
            ));
        }
        let mut r = Reader::new(stored);
        let crc = r.u32("block crc")?;
        r.u8("block kind")?;
        let raw_len = r.u32("raw length")? as usize;
        let n_entries = u64::from(r.u32("entry count")?);
        let n_groups = r.u32("group count")? as usize;
        let groups_len = n_groups
            .checked_mul(GROUP_SIZE)
            .ok_or("group directory overflows")?;
        let groups = r.take(groups_len, "group directory")?;
        let keys_len = r.u32("group keys length")? as usize;
        let keys = r.take(keys_len, "group keys")?;
        let dir_end = r.pos();
        let actual = crc32fast::hash(&stored[4..dir_end]);
        if crc != actual {
            return Err(format!(
                "block directory checksum mismatch: stored {crc:#010x}, computed {actual:#010x}"
            ));
        }
        if raw_len > BLOCK_RAW_SIZE_MAX
            || n_entries == 0
            || n_groups as u64 != n_entries.div_ceil(GROUP_ENTRIES)
        {
            return Err(format!(
                "grouped block of {n_entries} entries has {n_groups} groups and {raw_len} raw bytes"
            ));
        }
        Ok(Some(GroupedBlock {
            raw_len,
            n_entries,
            groups,
            keys,
            bodies: &stored[dir_end..],
            shared_bodies: false,
        }))
    }

    pub(super) fn n_groups(&self) -> usize {
        self.groups.len() / GROUP_SIZE
    }

    /// Ordinal of group `g`'s first entry, and how many entries it has.
    pub(super) fn entries_of(&self, g: usize) -> (u64, u64) {
        let first = g as u64 * GROUP_ENTRIES;
        (first, GROUP_ENTRIES.min(self.n_entries - first))
    }

    fn group(&self, g: usize) -> Group {
        let b = &self.groups[g * GROUP_SIZE..(g + 1) * GROUP_SIZE];
        let u = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        Group {
            body_offset: u(0),
            body_len: u(4),
            raw_len: u(8),
            body_crc: u(12) as u32,
            codec: b[16],
            key_offset: u(17),
        }
    }

    /// The sort key of group `g`'s first entry, from the directory.
    pub(super) fn key(&self, g: usize, base: Base) -> DecodeResult<(TableId, &'a [u8], TxId)> {
        let (table, key, delta) = self.stored_key(g)?;
        let txid = base
            .first_txid
            .0
            .checked_add(delta)
            .filter(|&t| t <= base.last_txid.0)
            .ok_or("group txid outside the run's range")?;
        Ok((table, key, TxId(txid)))
    }

    /// Group `g`'s directory key with its txid as stored (the offset from
    /// the run's first txid, as in a restart entry).
    fn stored_key(&self, g: usize) -> DecodeResult<(TableId, &'a [u8], u64)> {
        let at = self.group(g).key_offset;
        let mut r = Reader::new(self.keys.get(at..).ok_or("group key offset out of range")?);
        let table = TableId(r.varint_max(u64::from(u32::MAX), "group table id")? as u32);
        let key = r.varint_bytes(KEY_SIZE_MAX, "group key")?;
        Ok((table, key, r.varint("group txid")?))
    }

    /// The last group whose first entry is at most `target` (group 0 if
    /// none is), so that it and the groups after it include the greatest
    /// entry at most `target`, if the block has one.
    pub(super) fn seek(&self, target: (TableId, &[u8], TxId), base: Base) -> DecodeResult<usize> {
        let (mut lo, mut hi) = (1, self.n_groups());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.key(mid, base)? <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo - 1)
    }

    /// Group `g`'s entries, CRC checked: borrowed from the block when
    /// stored as is (copied first when the block is shared), else
    /// decompressed into `bufs`.
    pub(super) fn group_raw<'b>(
        &'b self,
        g: usize,
        bufs: &'b mut GroupBuffers,
    ) -> DecodeResult<&'b [u8]> {
        let group = self.group(g);
        let body = group
            .body_offset
            .checked_add(group.body_len)
            .and_then(|end| self.bodies.get(group.body_offset..end))
            .ok_or_else(|| format!("group {g} runs past the block"))?;
        let GroupBuffers {
            body: body_buf,
            raw,
        } = bufs;
        let body = if self.shared_bodies {
            copy_into(body, body_buf)
        } else {
            body
        };
        let actual = crc32fast::hash(body);
        if actual != group.body_crc {
            return Err(format!(
                "group {g} checksum mismatch: stored {:#010x}, computed {actual:#010x}",
                group.body_crc
            ));
        }
        if group.raw_len > self.raw_len {
            return Err(format!("group {g} is larger than its block"));
        }
        if group.codec == COMPRESSION_NONE {
            if body.len() != group.raw_len {
                return Err(format!(
                    "group {g} holds {} bytes, directory says {}",
                    body.len(),
                    group.raw_len
                ));
            }
            return Ok(body);
        }
        if raw.len() < group.raw_len {
            raw.resize(group.raw_len, 0);
        }
        let out = &mut raw[..group.raw_len];
        decompress_into(group.codec, body, out)?;
        Ok(out)
    }

    /// Each group's codec byte.
    #[cfg(test)]
    pub(super) fn codecs(&self) -> Vec<u8> {
        (0..self.n_groups()).map(|g| self.group(g).codec).collect()
    }

    /// The whole raw block (entries, restart offsets, trailer), every group
    /// checked, and its first entry against its directory key; the bodies
    /// must tile the block exactly.
    pub(super) fn reassemble(&self) -> DecodeResult<Vec<u8>> {
        let n_groups = self.n_groups();
        let mut raw = Vec::with_capacity(self.raw_len);
        let mut restarts = Vec::with_capacity(n_groups);
        let mut bufs = GroupBuffers::default();
        let mut tiled = 0;
        for g in 0..n_groups {
            let group = self.group(g);
            if group.body_offset != tiled {
                return Err(format!(
                    "group {g} does not start where the previous one ends"
                ));
            }
            tiled += group.body_len;
            restarts.push(u32_of(raw.len()));
            let bytes = self.group_raw(g, &mut bufs)?;
            if restart_entry_key(&mut Reader::new(bytes))? != self.stored_key(g)? {
                return Err(format!(
                    "group {g}'s first entry differs from its directory key"
                ));
            }
            raw.extend_from_slice(bytes);
            if raw.len() > self.raw_len {
                return Err("groups hold more than the raw block".into());
            }
        }
        if tiled != self.bodies.len() {
            return Err("grouped block has bytes after its last group".into());
        }
        for r in &restarts {
            raw.extend_from_slice(&r.to_le_bytes());
        }
        raw.extend_from_slice(&u32_of(n_groups).to_le_bytes());
        let n_entries = u32::try_from(self.n_entries).expect("read from a u32");
        raw.extend_from_slice(&n_entries.to_le_bytes());
        if raw.len() != self.raw_len {
            return Err(format!(
                "grouped block reassembles to {} bytes, header says {}",
                raw.len(),
                self.raw_len
            ));
        }
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::super::block::{Base, VersionBlockBuilder, open_block};
    use super::super::testutil::{medium_history, time_of};
    use super::super::{Compression, block::RESTART_INTERVAL};
    use super::GroupedBlock;
    use crate::types::TxId;

    fn base() -> Base {
        Base {
            first_txid: TxId(1),
            last_txid: TxId(medium_history().1.len() as u64),
            first_commit_time: time_of(1),
        }
    }

    fn builder(n: usize) -> VersionBlockBuilder {
        let (versions, _) = medium_history();
        let mut b = VersionBlockBuilder::new(base());
        for v in versions.iter().take(n) {
            b.add(v);
        }
        b
    }

    /// Sealed grouped with any codec, a block reassembles to exactly the
    /// raw block, and its directory keys are its restart entries' keys.
    #[test]
    fn a_grouped_block_reassembles_to_the_raw_block() {
        let total = medium_history().0.len();
        for n in [1, 15, 16, 17, 33, total] {
            let raw = builder(n).finish();
            for compression in [
                Compression::None,
                Compression::Lz4,
                Compression::Zstd { level: 3 },
            ] {
                let stored = builder(n).seal(compression);
                let block = GroupedBlock::parse(&stored)
                    .expect("valid")
                    .expect("grouped");
                assert_eq!(
                    block.n_groups() as u64,
                    (n as u64).div_ceil(RESTART_INTERVAL)
                );
                assert_eq!(block.reassemble().expect("reassemble"), raw, "{n} entries");
                assert_eq!(open_block(&stored).expect("open"), raw, "{n} entries");
                let versions = medium_history().0;
                for g in 0..block.n_groups() {
                    let v = &versions[g * RESTART_INTERVAL as usize];
                    let want = (v.table, &v.key[..], v.txid);
                    assert_eq!(block.key(g, base()).expect("key"), want, "group {g}");
                }
            }
        }
    }
}
