//! redb: table `versions` with keys `user | 0 | id BE | !txid BE` (newest
//! version first) and values `op | row`; table `transactions`: txid →
//! commit time. One transaction is one write transaction;
//! `Durability::Immediate` for durable commits, `Durability::None` for
//! buffered ones. Every read opens its own read transaction (a snapshot),
//! as timecask's reads take a view.

use std::ops::Bound;
use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use super::{
    KvVersion, TABLE_END, kv_history_lines, parse_version_key, version_key, version_value,
};
use crate::{Commit, Engine, HistoryLine, OP_DELETE, OP_INSERT, OP_UPDATE, Row};

const VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("versions");
const TRANSACTIONS: TableDefinition<u64, u64> = TableDefinition::new("transactions");
const FILE: &str = "db.redb";

/// A redb database.
pub struct Redb {
    /// The handle.
    pub db: Database,
}

impl Redb {
    fn write(
        &self,
        commit: Commit,
        f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>, &mut redb::Table<u64, u64>),
    ) {
        let mut w = self.db.begin_write().expect("begin_write");
        w.set_durability(match commit {
            Commit::Durable => Durability::Immediate,
            Commit::Buffered | Commit::Off => Durability::None,
        })
        .expect("set_durability");
        {
            let mut versions = w.open_table(VERSIONS).expect("open versions");
            let mut txs = w.open_table(TRANSACTIONS).expect("open transactions");
            f(&mut versions, &mut txs);
        }
        w.commit().expect("commit");
    }

    fn put(
        versions: &mut redb::Table<&[u8], &[u8]>,
        txs: &mut redb::Table<u64, u64>,
        txid: u64,
        id: u64,
        op: u8,
        row: &Row,
    ) {
        versions
            .insert(&version_key(id, txid)[..], &version_value(op, row)[..])
            .expect("insert");
        txs.insert(txid, crate::now_micros()).expect("insert");
    }

    fn first_at_or_after(&self, id: u64, txid: u64) -> Option<Vec<u8>> {
        let r = self.db.begin_read().expect("begin_read");
        let t = r.open_table(VERSIONS).expect("open versions");
        let lo = version_key(id, txid);
        let hi = version_key(id, 0);
        let mut range = t.range::<&[u8]>(&lo[..]..=&hi[..]).expect("range");
        let (_, v) = range.next()?.expect("range");
        let v = v.value();
        (v[0] != OP_DELETE).then(|| v[1..].to_vec())
    }
}

impl Engine for Redb {
    const NAME: &'static str = "redb 4.6";
    /// The row bytes, copied out of the read transaction.
    type Out = Vec<u8>;
    type History = Vec<KvVersion>;

    fn create(dir: &Path) -> Self {
        Redb {
            db: Database::create(dir.join(FILE)).expect("redb create"),
        }
    }

    fn open(dir: &Path) -> Self {
        Redb {
            db: Database::open(dir.join(FILE)).expect("redb open"),
        }
    }

    fn load(&mut self, rows: &[Row]) {
        self.write(Commit::Buffered, |versions, txs| {
            for (i, row) in rows.iter().enumerate() {
                Redb::put(versions, txs, 1, i as u64 + 1, OP_INSERT, row);
            }
        });
    }

    fn update(&mut self, txid: u64, id: u64, row: &Row, commit: Commit) {
        self.write(commit, |versions, txs| {
            Redb::put(versions, txs, txid, id, OP_UPDATE, row);
        });
    }

    fn update_bulk(&mut self, first_txid: u64, updates: &[(u64, Row)]) {
        self.write(Commit::Buffered, |versions, txs| {
            for (i, (id, row)) in updates.iter().enumerate() {
                Redb::put(versions, txs, first_txid + i as u64, *id, OP_UPDATE, row);
            }
        });
    }

    fn sync(&mut self) {
        // An empty durable commit makes every earlier non-durable one durable.
        self.write(Commit::Durable, |_, _| {});
    }

    fn as_of(&self, id: u64, txid: u64) -> Option<Vec<u8>> {
        self.first_at_or_after(id, txid)
    }

    fn latest(&self, id: u64) -> Option<Vec<u8>> {
        self.first_at_or_after(id, u64::MAX)
    }

    fn history(&self, id: u64) -> Vec<KvVersion> {
        let r = self.db.begin_read().expect("begin_read");
        let t = r.open_table(VERSIONS).expect("open versions");
        let txs = r.open_table(TRANSACTIONS).expect("open transactions");
        let lo = version_key(id, u64::MAX);
        let hi = version_key(id, 0);
        let mut out: Vec<KvVersion> = Vec::new();
        for kv in t.range::<&[u8]>(&lo[..]..=&hi[..]).expect("range") {
            let (k, v) = kv.expect("range");
            let (_, txid) = parse_version_key(k.value());
            let v = v.value();
            let time = txs.get(txid).expect("get").expect("tx record").value();
            out.push(KvVersion {
                txid,
                end_txid: out.last().map(|n| n.txid),
                op: v[0],
                value: (v[0] != OP_DELETE).then(|| v[1..].to_vec()),
                commit_time: time,
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

    fn scan_as_of(&self, txid: u64) -> Vec<(u64, Vec<u8>)> {
        // Seek per key, as for sled, inside one read transaction.
        let r = self.db.begin_read().expect("begin_read");
        let t = r.open_table(VERSIONS).expect("open versions");
        let mut out = Vec::new();
        let mut lower: Vec<u8> = b"user\0".to_vec();
        let mut inclusive = true;
        loop {
            let lo = if inclusive {
                Bound::Included(&lower[..])
            } else {
                Bound::Excluded(&lower[..])
            };
            let mut range = t
                .range::<&[u8]>((lo, Bound::Excluded(TABLE_END)))
                .expect("range");
            let Some(kv) = range.next() else { break };
            let (k, v) = kv.expect("range");
            let (id, t_) = parse_version_key(k.value());
            let v = v.value();
            if t_ <= txid {
                if v[0] != OP_DELETE {
                    out.push((id, v[1..].to_vec()));
                }
                lower = version_key(id, 0).to_vec();
                inclusive = false;
            } else {
                lower = version_key(id, txid).to_vec();
                inclusive = true;
            }
        }
        out
    }
}
