//! The index checkpoint's body: the whole index, serialized. Pure
//! encoding, no I/O (the file around it is `crate::checkpoint`).
//!
//! Layout (little-endian): `u64 last_txid | u64 base (the last txid the
//! history runs hold) | u64 horizon | u64 n_txs (= last_txid - base) |
//! n_txs × (u64 time, u32 segment, u32 frame_offset, u32 payload_len,
//! u32 meta_len) | u32 n_tables | per table: (u8 name_len, name, u64
//! created, u64 horizon, u8 has_policy, [12-byte policy], u64 n_keys, per key: (u32 key_len, key, u32 n_versions,
//! n_versions × 5 × u32)) | u64 n_erased | per erasure: (u8 name_len,
//! name, u32 key_len, key, u64 txid)`.

use std::collections::{BTreeMap, HashMap};

use super::chain::{Chain, VersionRef};
use super::{Index, Table, TxInfo};
use crate::config::RetentionPolicy;
use crate::limits::{KEY_SIZE_MAX, TABLE_NAME_SIZE_MAX};
use crate::types::{SegmentId, TableId, Timestamp, TxId};

impl Index {
    /// Appends the encoded index to `out`.
    pub(crate) fn encode_checkpoint(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.last_txid().0.to_le_bytes());
        out.extend_from_slice(&self.base.0.to_le_bytes());
        out.extend_from_slice(&self.horizon.0.to_le_bytes());
        out.extend_from_slice(&(self.txs.len() as u64).to_le_bytes());
        for tx in &self.txs {
            out.extend_from_slice(&tx.commit_time.as_micros().to_le_bytes());
            for n in [tx.segment.0, tx.frame_offset, tx.payload_len, tx.meta_len] {
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        out.extend_from_slice(&(self.tables.len() as u32).to_le_bytes());
        for table in &self.tables {
            out.push(u8::try_from(table.name.len()).expect("table names are at most 255 bytes"));
            out.extend_from_slice(table.name.as_bytes());
            out.extend_from_slice(&table.created.0.to_le_bytes());
            out.extend_from_slice(&table.horizon.0.to_le_bytes());
            match table.retention {
                Some(policy) => {
                    out.push(1);
                    out.extend_from_slice(&policy.encode());
                }
                None => out.push(0),
            }
            out.extend_from_slice(&(table.keys.len() as u64).to_le_bytes());
            for (key, chain) in &table.keys {
                out.extend_from_slice(&(key.len() as u32).to_le_bytes());
                out.extend_from_slice(key);
                out.extend_from_slice(&(chain.len() as u32).to_le_bytes());
                for v in chain {
                    for n in v.to_raw() {
                        out.extend_from_slice(&n.to_le_bytes());
                    }
                }
            }
        }
        // Erasures: the runs may still hold what they hid.
        out.extend_from_slice(&(self.erased.len() as u64).to_le_bytes());
        let mut erased: Vec<_> = self.erased.iter().collect();
        erased.sort();
        for ((table, key), txid) in erased {
            out.push(u8::try_from(table.len()).expect("table names are at most 255 bytes"));
            out.extend_from_slice(table.as_bytes());
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&txid.0.to_le_bytes());
        }
    }

    /// Decodes an index written by [`Index::encode_checkpoint`], checking
    /// every length against what is left and every chain's order. The
    /// caller has verified the checksum; errors here mean a bug or a
    /// checksum collision, and the checkpoint is not used.
    pub(crate) fn decode_checkpoint(bytes: &[u8]) -> Result<Index, String> {
        let mut r = Reader { bytes, pos: 0 };
        let last_txid = r.u64()?;
        let base = r.u64()?;
        let horizon = TxId(r.u64()?);
        let n_txs = r.u64()?;
        if Some(n_txs) != last_txid.checked_sub(base) || n_txs as usize > r.left() / 24 {
            return Err("transaction count does not match".into());
        }
        let mut txs = Vec::with_capacity(n_txs as usize);
        for _ in 0..n_txs {
            let commit_time = Timestamp::from_micros(r.u64()?);
            let (segment, frame_offset, payload_len, meta_len) =
                (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
            txs.push(TxInfo {
                commit_time,
                segment: SegmentId(segment),
                frame_offset,
                payload_len,
                meta_len,
            });
        }
        let n_tables = r.u32()? as usize;
        let mut tables = Vec::with_capacity(n_tables.min(r.left()));
        let mut by_name = HashMap::new();
        let mut n_versions = 0u64;
        for id in 0..n_tables {
            let name_len = usize::from(r.u8()?);
            if name_len == 0 || name_len > TABLE_NAME_SIZE_MAX {
                return Err("bad table name length".into());
            }
            let name = std::str::from_utf8(r.take(name_len)?)
                .map_err(|_| "table name is not UTF-8".to_string())?
                .to_string();
            let created = TxId(r.u64()?);
            let table_horizon = TxId(r.u64()?);
            let retention = match r.u8()? {
                0 => None,
                1 => Some(RetentionPolicy::decode(r.take(12)?).ok_or("bad retention policy")?),
                _ => return Err("bad retention flag".into()),
            };
            let n_keys = r.u64()?;
            let mut entries: Vec<(Box<[u8]>, Chain)> =
                Vec::with_capacity((n_keys as usize).min(r.left() / 8));
            for _ in 0..n_keys {
                let key_len = r.u32()? as usize;
                if key_len > KEY_SIZE_MAX {
                    return Err("key too long".into());
                }
                let key: Box<[u8]> = r.take(key_len)?.into();
                if entries.last().is_some_and(|(prev, _)| *prev >= key) {
                    return Err("keys out of order".into());
                }
                let n = r.u32()? as usize;
                if n == 0 || n > r.left() / 20 {
                    return Err("bad version count".into());
                }
                let mut chain = Chain::with_capacity(n);
                for _ in 0..n {
                    let raw = [r.u32()?, r.u32()?, r.u32()?, r.u32()?, r.u32()?];
                    let v = VersionRef::from_raw(raw).ok_or("bad version entry")?;
                    if v.txid().0 > last_txid
                        || chain
                            .last()
                            .is_some_and(|p: &VersionRef| p.txid() >= v.txid())
                    {
                        return Err("version chain out of order".into());
                    }
                    chain.push(v);
                }
                n_versions += n as u64;
                entries.push((key, chain));
            }
            by_name.insert(name.clone(), TableId(id as u32));
            // Sorted input: the map is built in one pass.
            let keys: BTreeMap<Box<[u8]>, Chain> = entries.into_iter().collect();
            tables.push(Table {
                name,
                created,
                keys,
                horizon: table_horizon,
                retention,
            });
        }
        let n_erased = r.u64()?;
        let mut erased = HashMap::new();
        for _ in 0..n_erased {
            let name_len = usize::from(r.u8()?);
            let table = std::str::from_utf8(r.take(name_len)?)
                .map_err(|_| "erased table name is not UTF-8".to_string())?;
            let key_len = r.u32()? as usize;
            if key_len > KEY_SIZE_MAX {
                return Err("erased key too long".into());
            }
            let key: Box<[u8]> = r.take(key_len)?.into();
            let txid = TxId(r.u64()?);
            if txid.0 > last_txid {
                return Err("erasure after the last txid".into());
            }
            erased.insert((table.into(), key), txid);
        }
        if r.left() != 0 {
            return Err("trailing bytes".into());
        }
        Ok(Index {
            tables,
            by_name,
            txs,
            n_versions,
            horizon,
            base: TxId(base),
            erased,
            ..Index::default()
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.left() {
            return Err("checkpoint ends early".into());
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}
