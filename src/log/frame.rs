//! One commit = one frame: `u32 len | u32 crc32 | payload`, little-endian.
//!
//! This module encodes and decodes frames and their payloads. It does no I/O
//! and knows nothing about segments or the index. The byte layout is written
//! down in FORMAT.md and pinned by the golden test at the bottom.

use crate::Metadata;
use crate::limits::{
    KEY_SIZE_MAX, META_SIZE_MAX, TABLE_NAME_SIZE_MAX, TX_SIZE_MAX, VALUE_SIZE_MAX,
};
use crate::types::{Op, TableId, Timestamp, TxId};

/// Bytes before the payload: `u32 len | u32 crc32`.
pub(crate) const FRAME_HEADER_SIZE: usize = 8;
/// Offset of the metadata section inside a payload.
pub(crate) const META_OFFSET: usize = 8 + 8 + 4;
/// The smallest payload a frame can have: txid, time, `meta_len`, an empty
/// metadata map, no table definitions, no changes. A header announcing less
/// (such as the all-zero header that a zero-filled tail reads as, whose
/// empty payload even has a matching CRC) is not a frame.
pub(crate) const PAYLOAD_SIZE_MIN: usize = META_OFFSET + 4 + 4 + 4;

/// One change as the writer hands it to the encoder.
pub(crate) struct ChangeToEncode<'a> {
    pub table: TableId,
    pub op: Op,
    pub key: &'a [u8],
    /// `Some` exactly when `op` is not `Delete`.
    pub value: Option<&'a [u8]>,
}

/// A whole transaction as the writer hands it to the encoder.
pub(crate) struct TxToEncode<'a> {
    pub txid: TxId,
    pub commit_time: Timestamp,
    pub meta: &'a Metadata,
    pub table_defs: &'a [(TableId, &'a str)],
    pub changes: &'a [ChangeToEncode<'a>],
}

/// Encoded size of a metadata section (including its `u32` count).
pub(crate) fn meta_size(meta: &Metadata) -> usize {
    4 + meta
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len())
        .sum::<usize>()
}

/// Encoded size of a payload, computed before allocating it.
pub(crate) fn payload_size(tx: &TxToEncode<'_>) -> usize {
    let defs: usize = tx.table_defs.iter().map(|(_, n)| 5 + n.len()).sum();
    let changes: usize = tx
        .changes
        .iter()
        .map(|c| 9 + c.key.len() + c.value.map_or(0, |v| 4 + v.len()))
        .sum();
    META_OFFSET + meta_size(tx.meta) + 4 + defs + 4 + changes
}

/// Encodes a full frame (header and payload). Returns the frame bytes and,
/// for each change, the offset of its value bytes from the frame start.
///
/// The caller has checked every limit; `payload_size(tx) <= TX_SIZE_MAX`.
pub(crate) fn encode_frame(tx: &TxToEncode<'_>) -> (Vec<u8>, Vec<u32>) {
    let size = payload_size(tx);
    assert!(size <= TX_SIZE_MAX, "caller checks the transaction size");
    let mut buf = Vec::with_capacity(FRAME_HEADER_SIZE + size);
    buf.extend_from_slice(&[0; FRAME_HEADER_SIZE]);
    buf.extend_from_slice(&tx.txid.0.to_le_bytes());
    buf.extend_from_slice(&tx.commit_time.as_micros().to_le_bytes());
    put_u32(&mut buf, meta_size(tx.meta));
    put_meta(&mut buf, tx.meta);
    put_u32(&mut buf, tx.table_defs.len());
    for (id, name) in tx.table_defs {
        buf.extend_from_slice(&id.0.to_le_bytes());
        let len = u8::try_from(name.len()).expect("table names are at most 255 bytes");
        buf.push(len);
        buf.extend_from_slice(name.as_bytes());
    }
    put_u32(&mut buf, tx.changes.len());
    let mut value_offsets = Vec::with_capacity(tx.changes.len());
    for change in tx.changes {
        assert_eq!(change.value.is_some(), change.op != Op::Delete);
        buf.extend_from_slice(&change.table.0.to_le_bytes());
        buf.push(change.op.to_byte());
        put_bytes(&mut buf, change.key);
        if let Some(value) = change.value {
            put_u32(&mut buf, value.len());
            value_offsets.push(offset_u32(buf.len()));
            buf.extend_from_slice(value);
        } else {
            value_offsets.push(offset_u32(buf.len()));
        }
    }
    assert_eq!(buf.len(), FRAME_HEADER_SIZE + size);
    let len = offset_u32(size);
    let crc = crc32fast::hash(&buf[FRAME_HEADER_SIZE..]);
    buf[0..4].copy_from_slice(&len.to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    (buf, value_offsets)
}

fn offset_u32(n: usize) -> u32 {
    u32::try_from(n).expect("frames are smaller than TX_SIZE_MAX + header")
}

/// Where a frame lies in its segment: offset and length, header included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameSpan {
    pub offset: u64,
    pub len: usize,
}

/// The metadata section as a frame stores it at [`META_OFFSET`] (what
/// [`decode_meta`] reads).
pub(crate) fn encode_meta(meta: &Metadata) -> Vec<u8> {
    let mut buf = Vec::with_capacity(meta_size(meta));
    put_meta(&mut buf, meta);
    buf
}

fn put_meta(buf: &mut Vec<u8>, meta: &Metadata) {
    put_u32(buf, meta.len());
    for (k, v) in meta {
        put_bytes(buf, k.as_bytes());
        put_bytes(buf, v.as_bytes());
    }
}

fn put_u32(buf: &mut Vec<u8>, n: usize) {
    buf.extend_from_slice(&offset_u32(n).to_le_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(buf, bytes.len());
    buf.extend_from_slice(bytes);
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub payload_len: u32,
    pub crc: u32,
}

impl FrameHeader {
    pub(crate) fn parse(bytes: [u8; FRAME_HEADER_SIZE]) -> FrameHeader {
        let [a, b, c, d, e, f, g, h] = bytes;
        FrameHeader {
            payload_len: u32::from_le_bytes([a, b, c, d]),
            crc: u32::from_le_bytes([e, f, g, h]),
        }
    }
}

/// One change decoded from a payload; slices borrow the payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DecodedChange<'a> {
    pub table: TableId,
    pub op: Op,
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
    /// Offset of the value bytes from the start of the payload.
    pub value_offset: u32,
}

/// A payload decoded without copying.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DecodedTx<'a> {
    pub txid: TxId,
    pub commit_time: Timestamp,
    /// Length of the metadata section that starts at [`META_OFFSET`].
    pub meta_len: u32,
    pub meta: Metadata,
    pub table_defs: Vec<(TableId, &'a str)>,
    pub changes: Vec<DecodedChange<'a>>,
}

/// Bounds-checked little-endian reader over a payload. Every length is
/// checked against the bytes that remain (and its limit) before use, so a
/// garbage length can never cause a large allocation.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

type DecodeResult<T> = std::result::Result<T, String>;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> DecodeResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| format!("{what} at payload offset {} runs past the frame", self.pos))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> DecodeResult<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> DecodeResult<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> DecodeResult<u64> {
        let b = self.take(8, what)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn sized(&mut self, max: usize, what: &str) -> DecodeResult<&'a [u8]> {
        let len = self.u32(what)? as usize;
        if len > max {
            return Err(format!("{what} length {len} exceeds the limit {max}"));
        }
        self.take(len, what)
    }

    fn string(&mut self, max: usize, what: &str) -> DecodeResult<String> {
        let bytes = self.sized(max, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
}

/// Decodes only the metadata section (as read by one positioned read of
/// `meta_len` bytes at [`META_OFFSET`]).
pub(crate) fn decode_meta(bytes: &[u8]) -> DecodeResult<Metadata> {
    let mut r = Reader { bytes, pos: 0 };
    let meta = read_meta(&mut r)?;
    if r.pos != bytes.len() {
        return Err("metadata section has trailing bytes".into());
    }
    Ok(meta)
}

fn read_meta(r: &mut Reader<'_>) -> DecodeResult<Metadata> {
    let n = r.u32("metadata count")? as usize;
    if n > META_SIZE_MAX / 8 {
        return Err(format!("metadata count {n} is impossible"));
    }
    let mut meta = Metadata::new();
    for _ in 0..n {
        let k = r.string(META_SIZE_MAX, "metadata key")?;
        let v = r.string(META_SIZE_MAX, "metadata value")?;
        meta.insert(k, v);
    }
    Ok(meta)
}

/// Decodes a payload whose checksum has already been verified.
pub(crate) fn decode_payload(payload: &[u8]) -> DecodeResult<DecodedTx<'_>> {
    let mut r = Reader {
        bytes: payload,
        pos: 0,
    };
    let txid = TxId(r.u64("txid")?);
    let commit_time = Timestamp::from_micros(r.u64("commit time")?);
    let meta_len = r.u32("metadata length")?;
    if meta_len as usize > META_SIZE_MAX + 4 {
        return Err(format!("metadata length {meta_len} exceeds the limit"));
    }
    let meta_bytes = r.take(meta_len as usize, "metadata")?;
    let meta = decode_meta(meta_bytes)?;
    let n_defs = r.u32("table definition count")? as usize;
    let mut table_defs = Vec::with_capacity(n_defs.min(r.bytes.len() / 5));
    for _ in 0..n_defs {
        let id = TableId(r.u32("table id")?);
        let len = usize::from(r.u8("table name length")?);
        if len == 0 || len > TABLE_NAME_SIZE_MAX {
            return Err(format!("table name length {len} is invalid"));
        }
        let name = std::str::from_utf8(r.take(len, "table name")?)
            .map_err(|_| "table name is not UTF-8".to_string())?;
        table_defs.push((id, name));
    }
    let n_changes = r.u32("change count")? as usize;
    let mut changes = Vec::with_capacity(n_changes.min(r.bytes.len() / 9));
    for _ in 0..n_changes {
        let table = TableId(r.u32("change table id")?);
        let op_byte = r.u8("op")?;
        let op = Op::from_byte(op_byte).ok_or_else(|| format!("unknown op byte {op_byte}"))?;
        let key = r.sized(KEY_SIZE_MAX, "key")?;
        let (value, value_offset) = if op == Op::Delete {
            (None, offset_u32(r.pos))
        } else {
            let len = r.u32("value length")? as usize;
            if len > VALUE_SIZE_MAX {
                return Err(format!(
                    "value length {len} exceeds the limit {VALUE_SIZE_MAX}"
                ));
            }
            let offset = offset_u32(r.pos);
            (Some(r.take(len, "value")?), offset)
        };
        changes.push(DecodedChange {
            table,
            op,
            key,
            value,
            value_offset,
        });
    }
    if r.pos != payload.len() {
        return Err(format!(
            "{} trailing bytes after the last change",
            payload.len() - r.pos
        ));
    }
    Ok(DecodedTx {
        txid,
        commit_time,
        meta_len,
        meta,
        table_defs,
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Metadata, Vec<(TableId, &'static str)>) {
        let mut meta = Metadata::new();
        meta.insert("user".into(), "ann".into());
        (meta, vec![(TableId(0), "t")])
    }

    /// Pins format version 1: if this changes, the format changed and the
    /// version number must be bumped (see FORMAT.md).
    #[test]
    fn golden_frame_bytes_v1() {
        let (meta, defs) = sample();
        let changes = [
            ChangeToEncode {
                table: TableId(0),
                op: Op::Insert,
                key: b"k",
                value: Some(b"v1"),
            },
            ChangeToEncode {
                table: TableId(0),
                op: Op::Delete,
                key: b"x",
                value: None,
            },
        ];
        let tx = TxToEncode {
            txid: TxId(1),
            commit_time: Timestamp::from_micros(0x0102_0304_0506_0708),
            meta: &meta,
            table_defs: &defs,
            changes: &changes,
        };
        let (frame, offsets) = encode_frame(&tx);
        let golden = crate::test_support::golden("v1/frame.bin", &frame);
        assert_eq!(
            frame, golden,
            "frame bytes changed: bump the format version"
        );
        assert_eq!(offsets, vec![75, 87]);
        assert_eq!(&frame[75..77], b"v1");
    }

    #[test]
    fn decode_round_trips_encode() {
        let (meta, defs) = sample();
        let changes = [ChangeToEncode {
            table: TableId(0),
            op: Op::Update,
            key: b"key",
            value: Some(b"value"),
        }];
        let tx = TxToEncode {
            txid: TxId(9),
            commit_time: Timestamp::from_micros(5),
            meta: &meta,
            table_defs: &defs,
            changes: &changes,
        };
        let (frame, offsets) = encode_frame(&tx);
        let header = FrameHeader::parse(frame[..8].try_into().expect("8 bytes"));
        assert_eq!(header.payload_len as usize, frame.len() - 8);
        assert_eq!(header.crc, crc32fast::hash(&frame[8..]));
        let decoded = decode_payload(&frame[8..]).expect("valid payload");
        assert_eq!(decoded.txid, TxId(9));
        assert_eq!(decoded.meta, meta);
        assert_eq!(decoded.table_defs, defs);
        assert_eq!(decoded.changes[0].value, Some(&b"value"[..]));
        assert_eq!(decoded.changes[0].value_offset + 8, offsets[0]);
    }

    #[test]
    fn decode_rejects_every_truncation_without_panicking() {
        let (meta, defs) = sample();
        let changes = [ChangeToEncode {
            table: TableId(0),
            op: Op::Insert,
            key: b"key",
            value: Some(b"value"),
        }];
        let tx = TxToEncode {
            txid: TxId(1),
            commit_time: Timestamp::from_micros(5),
            meta: &meta,
            table_defs: &defs,
            changes: &changes,
        };
        let (frame, _) = encode_frame(&tx);
        let payload = &frame[8..];
        for cut in 0..payload.len() {
            assert!(decode_payload(&payload[..cut]).is_err(), "cut at {cut}");
        }
    }
}
