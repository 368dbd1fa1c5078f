//! The run file's header, its fixed-size footer and the two block indexes.
//! Pure, no I/O; offsets are built from sizes (FORMAT.md has the tables).

use super::codec::{DecodeResult, Reader};
use crate::limits::KEY_SIZE_MAX;
use crate::types::{TableId, Timestamp, TxId};

/// `TCASKRUN`, at the start of the header and of the footer.
pub(super) const RUN_MAGIC: [u8; 8] = *b"TCASKRUN";
/// The run format this build writes and reads.
pub(super) const RUN_FORMAT_VERSION: u32 = 3;
/// The oldest run format this build reads: version 1 differs from 2 only in
/// that its version blocks are framed whole (no grouped blocks), and 2 from
/// 3 only in that its block indexes are flat sections, not pages behind a
/// top table (FORMAT.md).
pub(super) const RUN_FORMAT_VERSION_MIN: u32 = 1;
/// `magic | u32 version | u32 crc32(bytes 0..12)`.
pub(super) const HEADER_SIZE: usize = 16;
/// Bytes of the footer covered by its CRC.
const FOOTER_BODY_SIZE: usize = 140;
/// The footer: its body and its CRC.
pub(super) const FOOTER_SIZE: usize = FOOTER_BODY_SIZE + 4;
/// One tx index entry: `u64 offset | u32 length | u64 first_txid | u64 first_commit_time`.
pub(super) const TX_INDEX_ENTRY_SIZE: usize = 28;
/// Fixed part of a version index entry:
/// `u64 offset | u32 length | u32 table | u64 txid | u32 key_len`.
pub(super) const VERSION_INDEX_ENTRY_FIXED_SIZE: usize = 28;

const _: () = assert!(HEADER_SIZE == RUN_MAGIC.len() + 4 + 4);

/// Why a header or footer was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Damage or a foreign file.
    Corrupt(String),
    /// A well-formed header or footer of a newer format version.
    Newer(u32),
}

/// The header at offset 0.
pub(super) fn encode_header() -> [u8; HEADER_SIZE] {
    let mut h = [0; HEADER_SIZE];
    h[..8].copy_from_slice(&RUN_MAGIC);
    h[8..12].copy_from_slice(&RUN_FORMAT_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks magic, then the CRC, then the version: a flipped bit is damage,
/// and only an intact header of a newer version is `Newer`.
pub(super) fn check_header(h: &[u8; HEADER_SIZE]) -> Result<(), Refusal> {
    check_magic_crc_version(h, 12, "header")
}

fn check_magic_crc_version(bytes: &[u8], crc_at: usize, what: &str) -> Result<(), Refusal> {
    if bytes[..8] != RUN_MAGIC {
        return Err(Refusal::Corrupt(format!(
            "run {what} has the wrong magic (not a run file)"
        )));
    }
    let stored = u32::from_le_bytes(bytes[crc_at..crc_at + 4].try_into().expect("4 bytes"));
    let actual = crc32fast::hash(&bytes[..crc_at]);
    if stored != actual {
        return Err(Refusal::Corrupt(format!("run {what} checksum mismatch")));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    match version {
        RUN_FORMAT_VERSION_MIN..=RUN_FORMAT_VERSION => Ok(()),
        v if v > RUN_FORMAT_VERSION => Err(Refusal::Newer(v)),
        v => Err(Refusal::Corrupt(format!(
            "run {what} has format version {v}"
        ))),
    }
}

/// Everything the footer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Footer {
    /// The run format version (as the header's).
    pub version: u32,
    pub first_txid: TxId,
    pub last_txid: TxId,
    pub first_commit_time: Timestamp,
    pub last_commit_time: Timestamp,
    pub n_versions: u64,
    pub n_keys: u64,
    pub n_txs: u64,
    pub version_index: Section,
    pub tx_index: Section,
    pub bloom: Section,
    pub n_version_blocks: u32,
    pub n_tx_blocks: u32,
}

/// Where a section is and its CRC-32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(super) struct Section {
    pub offset: u64,
    pub len: u64,
    pub crc: u32,
}

impl Footer {
    pub(super) fn encode(&self) -> [u8; FOOTER_SIZE] {
        let mut b = Vec::with_capacity(FOOTER_SIZE);
        b.extend_from_slice(&RUN_MAGIC);
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for n in [
            self.first_txid.0,
            self.last_txid.0,
            self.first_commit_time.as_micros(),
            self.last_commit_time.as_micros(),
            self.n_versions,
            self.n_keys,
            self.n_txs,
            self.version_index.offset,
            self.version_index.len,
            self.tx_index.offset,
            self.tx_index.len,
            self.bloom.offset,
            self.bloom.len,
        ] {
            b.extend_from_slice(&n.to_le_bytes());
        }
        for n in [
            self.n_version_blocks,
            self.n_tx_blocks,
            self.version_index.crc,
            self.tx_index.crc,
            self.bloom.crc,
        ] {
            b.extend_from_slice(&n.to_le_bytes());
        }
        assert_eq!(b.len(), FOOTER_BODY_SIZE);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b.try_into().expect("footer size")
    }

    /// Checks magic, CRC and version, then decodes. Relations between the
    /// fields and the file are checked by the reader.
    pub(super) fn decode(bytes: &[u8; FOOTER_SIZE]) -> Result<Footer, Refusal> {
        check_magic_crc_version(bytes, FOOTER_BODY_SIZE, "footer")?;
        let mut r = Reader::new(&bytes[16..FOOTER_BODY_SIZE]);
        let mut u64s = [0u64; 13];
        for n in &mut u64s {
            *n = r.u64("footer field").map_err(Refusal::Corrupt)?;
        }
        let mut u32s = [0u32; 5];
        for n in &mut u32s {
            *n = r.u32("footer field").map_err(Refusal::Corrupt)?;
        }
        let reserved = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
        if reserved != 0 {
            return Err(Refusal::Corrupt(format!(
                "footer reserved field is {reserved}"
            )));
        }
        let [
            first,
            last,
            t0,
            t1,
            n_versions,
            n_keys,
            n_txs,
            vo,
            vl,
            to,
            tl,
            bo,
            bl,
        ] = u64s;
        let [n_version_blocks, n_tx_blocks, vcrc, tcrc, bcrc] = u32s;
        Ok(Footer {
            version: u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")),
            first_txid: TxId(first),
            last_txid: TxId(last),
            first_commit_time: Timestamp::from_micros(t0),
            last_commit_time: Timestamp::from_micros(t1),
            n_versions,
            n_keys,
            n_txs,
            version_index: Section {
                offset: vo,
                len: vl,
                crc: vcrc,
            },
            tx_index: Section {
                offset: to,
                len: tl,
                crc: tcrc,
            },
            bloom: Section {
                offset: bo,
                len: bl,
                crc: bcrc,
            },
            n_version_blocks,
            n_tx_blocks,
        })
    }
}

/// Where a block is in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BlockHandle {
    pub offset: u64,
    pub len: u32,
}

/// A version block's index entry: its last `(table, key, txid)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct VersionIndexEntry {
    pub handle: BlockHandle,
    pub last_table: TableId,
    pub last_key: IndexKey,
    pub last_txid: TxId,
}

/// Bytes of a key an [`IndexKey`] holds without a heap allocation.
const INDEX_KEY_INLINE: usize = 22;

/// An index entry's key: inline up to [`INDEX_KEY_INLINE`] bytes (no
/// allocation per entry when an open decodes a run's index), else boxed.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum IndexKey {
    Inline {
        len: u8,
        bytes: [u8; INDEX_KEY_INLINE],
    },
    Heap(Box<[u8]>),
}

impl From<&[u8]> for IndexKey {
    fn from(key: &[u8]) -> IndexKey {
        if key.len() <= INDEX_KEY_INLINE {
            let mut bytes = [0; INDEX_KEY_INLINE];
            bytes[..key.len()].copy_from_slice(key);
            IndexKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            IndexKey::Heap(key.into())
        }
    }
}

impl std::ops::Deref for IndexKey {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            IndexKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            IndexKey::Heap(key) => key,
        }
    }
}

impl std::fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("IndexKey").field(&&**self).finish()
    }
}

impl IndexKey {
    /// Heap bytes beyond the entry itself.
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            IndexKey::Inline { .. } => 0,
            IndexKey::Heap(key) => key.len(),
        }
    }
}

impl VersionIndexEntry {
    pub(super) fn last(&self) -> (TableId, &[u8], TxId) {
        (self.last_table, &self.last_key, self.last_txid)
    }
}

/// A tx block's index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TxIndexEntry {
    pub handle: BlockHandle,
    pub first_txid: TxId,
    pub first_commit_time: Timestamp,
}

pub(super) fn encode_version_index(entries: &[VersionIndexEntry]) -> Vec<u8> {
    let mut b = Vec::new();
    for e in entries {
        encode_version_entry(e, &mut b);
    }
    b
}

/// One version index entry: `u64 offset | u32 len | u32 table | u64 txid |
/// u32 key_len | key`.
pub(super) fn encode_version_entry(e: &VersionIndexEntry, b: &mut Vec<u8>) {
    b.extend_from_slice(&e.handle.offset.to_le_bytes());
    b.extend_from_slice(&e.handle.len.to_le_bytes());
    b.extend_from_slice(&e.last_table.0.to_le_bytes());
    b.extend_from_slice(&e.last_txid.0.to_le_bytes());
    let len = u32::try_from(e.last_key.len()).expect("keys fit u32");
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&e.last_key);
}

/// Decodes what [`encode_version_entry`] wrote.
pub(super) fn decode_version_entry(r: &mut Reader<'_>) -> DecodeResult<VersionIndexEntry> {
    let offset = r.u64("block offset")?;
    let len = r.u32("block length")?;
    let last_table = TableId(r.u32("table id")?);
    let last_txid = TxId(r.u64("txid")?);
    let key_len = r.u32("key length")? as usize;
    if key_len > KEY_SIZE_MAX {
        return Err(format!("index key length {key_len} exceeds the limit"));
    }
    let last_key = IndexKey::from(r.take(key_len, "key")?);
    Ok(VersionIndexEntry {
        handle: BlockHandle { offset, len },
        last_table,
        last_key,
        last_txid,
    })
}

pub(super) fn decode_version_index(bytes: &[u8], n: u32) -> DecodeResult<Vec<VersionIndexEntry>> {
    if n as usize > bytes.len() / VERSION_INDEX_ENTRY_FIXED_SIZE {
        return Err(format!(
            "{n} version index entries cannot fit {} bytes",
            bytes.len()
        ));
    }
    let mut r = Reader::new(bytes);
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        out.push(decode_version_entry(&mut r)?);
    }
    if !r.is_empty() {
        return Err("version index has trailing bytes".into());
    }
    Ok(out)
}

pub(super) fn encode_tx_index(entries: &[TxIndexEntry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(entries.len() * TX_INDEX_ENTRY_SIZE);
    for e in entries {
        encode_tx_entry(e, &mut b);
    }
    b
}

/// One tx index entry: `u64 offset | u32 len | u64 first_txid | u64
/// first_commit_time`.
pub(super) fn encode_tx_entry(e: &TxIndexEntry, b: &mut Vec<u8>) {
    b.extend_from_slice(&e.handle.offset.to_le_bytes());
    b.extend_from_slice(&e.handle.len.to_le_bytes());
    b.extend_from_slice(&e.first_txid.0.to_le_bytes());
    b.extend_from_slice(&e.first_commit_time.as_micros().to_le_bytes());
}

/// Decodes what [`encode_tx_entry`] wrote.
pub(super) fn decode_tx_entry(r: &mut Reader<'_>) -> DecodeResult<TxIndexEntry> {
    Ok(TxIndexEntry {
        handle: BlockHandle {
            offset: r.u64("block offset")?,
            len: r.u32("block length")?,
        },
        first_txid: TxId(r.u64("first txid")?),
        first_commit_time: Timestamp::from_micros(r.u64("first commit time")?),
    })
}

pub(super) fn decode_tx_index(bytes: &[u8], n: u32) -> DecodeResult<Vec<TxIndexEntry>> {
    if bytes.len() != n as usize * TX_INDEX_ENTRY_SIZE {
        return Err(format!(
            "{n} tx index entries do not fill {} bytes",
            bytes.len()
        ));
    }
    let mut r = Reader::new(bytes);
    (0..n).map(|_| decode_tx_entry(&mut r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footer() -> Footer {
        Footer {
            version: RUN_FORMAT_VERSION,
            first_txid: TxId(5),
            last_txid: TxId(9),
            first_commit_time: Timestamp::from_micros(100),
            last_commit_time: Timestamp::from_micros(200),
            n_versions: 7,
            n_keys: 3,
            n_txs: 5,
            version_index: Section {
                offset: 10,
                len: 20,
                crc: 1,
            },
            tx_index: Section {
                offset: 30,
                len: 28,
                crc: 2,
            },
            bloom: Section {
                offset: 58,
                len: 16,
                crc: 3,
            },
            n_version_blocks: 1,
            n_tx_blocks: 1,
        }
    }

    #[test]
    fn index_keys_are_inline_up_to_the_limit_and_compare_as_bytes() {
        for len in [0, 1, INDEX_KEY_INLINE, INDEX_KEY_INLINE + 1, 300] {
            let key: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let k = IndexKey::from(&key[..]);
            assert_eq!(&*k, &key[..]);
            assert_eq!(
                matches!(k, IndexKey::Inline { .. }),
                len <= INDEX_KEY_INLINE,
                "{len}"
            );
            assert_eq!(
                k.heap_bytes(),
                if len <= INDEX_KEY_INLINE { 0 } else { len }
            );
            assert_eq!(k, IndexKey::from(&key[..]));
        }
    }

    #[test]
    fn footer_round_trips_and_every_flipped_bit_is_refused() {
        let bytes = footer().encode();
        assert_eq!(Footer::decode(&bytes), Ok(footer()));
        for i in 0..FOOTER_SIZE * 8 {
            let mut damaged = bytes;
            damaged[i / 8] ^= 1 << (i % 8);
            assert!(
                matches!(Footer::decode(&damaged), Err(Refusal::Corrupt(_))),
                "bit {i}"
            );
        }
    }

    #[test]
    fn an_intact_newer_footer_or_header_is_newer_and_a_foreign_one_corrupt() {
        let mut bytes = footer().encode();
        bytes[8..12].copy_from_slice(&4u32.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..FOOTER_BODY_SIZE]);
        bytes[FOOTER_BODY_SIZE..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Footer::decode(&bytes), Err(Refusal::Newer(4)));
        let mut header = encode_header();
        assert_eq!(check_header(&header), Ok(()));
        header[..8].copy_from_slice(b"TCASKLOG");
        assert!(matches!(check_header(&header), Err(Refusal::Corrupt(_))));
    }

    #[test]
    fn indexes_round_trip() {
        let v = vec![VersionIndexEntry {
            handle: BlockHandle {
                offset: 16,
                len: 40,
            },
            last_table: TableId(2),
            last_key: b"key"[..].into(),
            last_txid: TxId(7),
        }];
        assert_eq!(decode_version_index(&encode_version_index(&v), 1), Ok(v));
        let t = vec![TxIndexEntry {
            handle: BlockHandle {
                offset: 56,
                len: 30,
            },
            first_txid: TxId(5),
            first_commit_time: Timestamp::from_micros(100),
        }];
        assert!(decode_tx_index(&encode_tx_index(&t), 2).is_err());
        assert_eq!(decode_tx_index(&encode_tx_index(&t), 1), Ok(t));
    }
}
