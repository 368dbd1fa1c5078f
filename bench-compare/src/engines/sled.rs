//! sled 0.34.7: one tree, keys `user | 0 | id BE | !txid BE` (newest
//! version first), values `op | row`, plus `transaction | 0 | txid BE` →
//! commit time. One transaction is one atomic `apply_batch`; durable adds
//! `flush()` (sled's fsync) per commit.

use std::ops::Bound;
use std::path::Path;

use sled::{Batch, Db, IVec};

use super::{
    KvVersion, TABLE_END, kv_history_lines, parse_version_key, tx_key, version_key, version_value,
};
use crate::{Commit, Engine, HistoryLine, OP_DELETE, OP_INSERT, OP_UPDATE, Row, RowOut};

/// A sled database.
pub struct Sled {
    /// The handle.
    pub db: Db,
}

impl RowOut for IVec {
    fn to_row(&self) -> Row {
        Row::decode(&self[1..]).expect("a stored row decodes")
    }
}

fn open(dir: &Path) -> Db {
    sled::Config::new()
        .path(dir.join("sled"))
        .open()
        .expect("sled open")
}

impl Sled {
    fn put_version(batch: &mut Batch, txid: u64, id: u64, op: u8, row: &Row) {
        batch.insert(&version_key(id, txid)[..], version_value(op, row));
        batch.insert(&tx_key(txid)[..], &crate::now_micros().to_be_bytes()[..]);
    }

    fn live(v: IVec) -> Option<IVec> {
        (v[0] != OP_DELETE).then_some(v)
    }
}

impl Engine for Sled {
    const NAME: &'static str = "sled 0.34.7";
    /// The stored `op | row`, as sled returns it (no copy).
    type Out = IVec;
    type History = Vec<KvVersion>;

    fn create(dir: &Path) -> Self {
        Sled { db: open(dir) }
    }

    fn open(dir: &Path) -> Self {
        Sled { db: open(dir) }
    }

    fn load(&mut self, rows: &[Row]) {
        let mut batch = Batch::default();
        for (i, row) in rows.iter().enumerate() {
            Sled::put_version(&mut batch, 1, i as u64 + 1, OP_INSERT, row);
        }
        self.db.apply_batch(batch).expect("apply_batch");
    }

    fn update(&mut self, txid: u64, id: u64, row: &Row, commit: Commit) {
        let mut batch = Batch::default();
        Sled::put_version(&mut batch, txid, id, OP_UPDATE, row);
        self.db.apply_batch(batch).expect("apply_batch");
        if commit == Commit::Durable {
            self.db.flush().expect("flush");
        }
    }

    fn update_bulk(&mut self, first_txid: u64, updates: &[(u64, Row)]) {
        let mut batch = Batch::default();
        for (i, (id, row)) in updates.iter().enumerate() {
            Sled::put_version(&mut batch, first_txid + i as u64, *id, OP_UPDATE, row);
        }
        self.db.apply_batch(batch).expect("apply_batch");
    }

    fn sync(&mut self) {
        self.db.flush().expect("flush");
    }

    fn as_of(&self, id: u64, txid: u64) -> Option<IVec> {
        let (_, v) = self
            .db
            .range(version_key(id, txid)..=version_key(id, 0))
            .next()?
            .expect("range");
        Sled::live(v)
    }

    fn latest(&self, id: u64) -> Option<IVec> {
        let (_, v) = self
            .db
            .range(version_key(id, u64::MAX)..=version_key(id, 0))
            .next()?
            .expect("range");
        Sled::live(v)
    }

    fn history(&self, id: u64) -> Vec<KvVersion> {
        let mut out: Vec<KvVersion> = Vec::new();
        // Newest first; oldest first is returned, like the other engines.
        for kv in self
            .db
            .range(version_key(id, u64::MAX)..=version_key(id, 0))
        {
            let (k, v) = kv.expect("range");
            let (_, txid) = parse_version_key(&k);
            let time = self.db.get(tx_key(txid)).expect("get").expect("tx record");
            out.push(KvVersion {
                txid,
                end_txid: out.last().map(|n| n.txid),
                op: v[0],
                value: (v[0] != OP_DELETE).then(|| v[1..].to_vec()),
                commit_time: u64::from_be_bytes(time[..].try_into().expect("8 bytes")),
            });
        }
        out.reverse();
        out
    }

    fn history_len(h: &Vec<KvVersion>) -> usize {
        h.len()
    }

    fn history_lines(h: &Vec<KvVersion>) -> Vec<HistoryLine> {
        kv_history_lines(h)
    }

    fn scan_as_of(&self, txid: u64) -> Vec<(u64, IVec)> {
        // Seek per key: the first entry at or after `(id, txid)` is the
        // version visible at `txid` if it still belongs to `id`; then skip
        // past the rest of `id`'s versions.
        let mut out = Vec::new();
        let mut lower: Bound<Vec<u8>> = Bound::Included(b"user\0".to_vec());
        let upper: Bound<Vec<u8>> = Bound::Excluded(TABLE_END.to_vec());
        loop {
            let Some(kv) = self.db.range((lower.clone(), upper.clone())).next() else {
                break;
            };
            let (k, v) = kv.expect("range");
            let (id, t) = parse_version_key(&k);
            if t <= txid {
                if let Some(v) = Sled::live(v) {
                    out.push((id, v));
                }
                lower = Bound::Excluded(version_key(id, 0).to_vec());
            } else {
                lower = Bound::Included(version_key(id, txid).to_vec());
            }
        }
        out
    }
}
