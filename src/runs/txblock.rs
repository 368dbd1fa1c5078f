//! Tx blocks: one record per txid, in txid order, the txid implicit (the
//! block's first txid comes from the tx index). Pure, no I/O.
//!
//! ```text
//! tx block  = varint n_records | record*
//! record    = varint (commit_time - run first commit time)
//!             varint meta_len | meta (the log's metadata section; 0 = none)
//!             varint n_changes | change*
//! change    = varint table_id | varint shared | varint suffix_len | suffix | u8 op
//! ```

use super::block::Base;
use super::codec::{DecodeResult, Reader, put_varint, put_varint_bytes, put_varint_usize};
use super::{EMPTY_META, TxChange, TxEntry};
use crate::limits::{KEY_SIZE_MAX, META_SIZE_MAX};
use crate::types::{Op, TableId, Timestamp, TxId};

/// Accumulates the records of one tx block.
#[derive(Debug)]
pub(super) struct TxBlockBuilder {
    base: Base,
    records: Vec<u8>,
    n_records: u64,
}

impl TxBlockBuilder {
    pub(super) fn new(base: Base) -> TxBlockBuilder {
        TxBlockBuilder {
            base,
            records: Vec::new(),
            n_records: 0,
        }
    }

    pub(super) fn raw_len(&self) -> usize {
        self.records.len() + 10
    }

    /// Appends `tx`; the caller has checked its txid and time.
    pub(super) fn add(&mut self, tx: &TxEntry) {
        let buf = &mut self.records;
        let time = tx.commit_time.as_micros();
        assert!(
            time >= self.base.first_commit_time.as_micros(),
            "commit times never decrease"
        );
        put_varint(buf, time - self.base.first_commit_time.as_micros());
        let meta: &[u8] = if tx.meta == EMPTY_META { &[] } else { &tx.meta };
        put_varint_bytes(buf, meta);
        put_varint_usize(buf, tx.changes.len());
        let mut prev: &[u8] = &[];
        for change in &tx.changes {
            put_varint(buf, u64::from(change.table.0));
            let shared = prev
                .iter()
                .zip(&change.key)
                .take_while(|(a, b)| a == b)
                .count();
            put_varint_usize(buf, shared);
            put_varint_bytes(buf, &change.key[shared..]);
            buf.push(change.op.to_byte());
            prev = &change.key;
        }
        self.n_records += 1;
    }

    /// The block's uncompressed bytes.
    pub(super) fn finish(self) -> Vec<u8> {
        let mut raw = Vec::with_capacity(self.records.len() + 10);
        put_varint(&mut raw, self.n_records);
        raw.extend_from_slice(&self.records);
        raw
    }
}

/// Decodes a whole tx block whose first record is `first_txid` and which
/// must hold exactly `n_records` records.
pub(super) fn decode_tx_block(
    raw: &[u8],
    first_txid: TxId,
    n_records: u64,
    base: Base,
) -> DecodeResult<Vec<TxEntry>> {
    let mut r = Reader::new(raw);
    let n = r.varint("record count")?;
    if n != n_records {
        return Err(format!(
            "tx block holds {n} records, the index says {n_records}"
        ));
    }
    // Every record takes at least 3 bytes.
    if n > raw.len() as u64 / 3 {
        return Err(format!("tx block record count {n} is impossible"));
    }
    let mut out = Vec::with_capacity(n as usize);
    let mut prev_time = base.first_commit_time.as_micros();
    for i in 0..n {
        let time = base
            .first_commit_time
            .as_micros()
            .checked_add(r.varint("commit time")?)
            .filter(|&t| t >= prev_time)
            .ok_or_else(|| "tx commit times decrease".to_string())?;
        prev_time = time;
        let meta = r.varint_bytes(META_SIZE_MAX, "metadata")?;
        let meta = if meta.is_empty() {
            EMPTY_META.to_vec()
        } else {
            meta.to_vec()
        };
        let n_changes = r.varint_max((raw.len() - r.pos()) as u64 / 4, "change count")?;
        let mut changes = Vec::with_capacity(n_changes as usize);
        let mut key: Vec<u8> = Vec::new();
        for _ in 0..n_changes {
            let table = TableId(r.varint_max(u64::from(u32::MAX), "table id")? as u32);
            let shared = r.varint_max(key.len() as u64, "shared key prefix")? as usize;
            let suffix = r.varint_bytes(KEY_SIZE_MAX - shared, "key suffix")?;
            let op_byte = r.u8("op")?;
            let op = Op::from_byte(op_byte).ok_or_else(|| format!("unknown op byte {op_byte}"))?;
            key.truncate(shared);
            key.extend_from_slice(suffix);
            changes.push(TxChange {
                table,
                key: key.clone(),
                op,
            });
        }
        out.push(TxEntry {
            txid: TxId(first_txid.0 + i),
            commit_time: Timestamp::from_micros(time),
            meta,
            changes,
        });
    }
    if !r.is_empty() {
        return Err("tx block has trailing bytes".into());
    }
    Ok(out)
}
