//! fjall 3.1 (LSM tree): one keyspace, keys `user | 0 | id BE | !txid BE`
//! (newest version first), values `op | row`, plus `transaction | 0 | txid
//! BE` → commit time (u64 BE), as for sled. Default configuration (32 MiB
//! block cache, LZ4 blocks, background flush and compaction threads).
//!
//! One transaction is one atomic `WriteBatch`. Durable commits persist the
//! journal with `PersistMode::SyncAll` (flush plus `fsync`) inside the
//! commit. Buffered commits do not persist at all (`durability(None)`):
//! the journal bytes stay in fjall's user-space write buffer until it
//! fills or a later commit persists, the equivalent of redb's
//! `Durability::None` (lost on a crash, process or OS, unless a durable
//! commit or `sync` follows). `sync` is `persist(SyncAll)`.
//!
//! Every read opens its own snapshot, as redb's reads and timecask's views
//! do.

use std::ops::Bound;
use std::path::Path;

use fjall::{
    Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, PersistMode, Readable, Slice,
};

use super::{
    KvVersion, TABLE_END, kv_history_lines, parse_version_key, tx_key, version_key, version_value,
};
use crate::{Commit, Engine, HistoryLine, OP_DELETE, OP_INSERT, OP_UPDATE, Row, RowOut};

/// A fjall database with its one keyspace.
pub struct Fjall {
    // Field order: the keyspace handle goes before the database.
    /// The keyspace.
    pub ks: Keyspace,
    /// The database.
    pub db: Database,
}

impl RowOut for Slice {
    fn to_row(&self) -> Row {
        Row::decode(&self[1..]).expect("a stored row decodes")
    }
}

fn open(dir: &Path) -> Fjall {
    let db = Database::builder(dir.join("fjall"))
        .open()
        .expect("fjall open");
    let ks = db
        .keyspace("kv", KeyspaceCreateOptions::default)
        .expect("fjall keyspace");
    Fjall { ks, db }
}

impl Fjall {
    fn batch(&self, commit: Commit) -> OwnedWriteBatch {
        self.db.batch().durability(match commit {
            Commit::Durable => Some(PersistMode::SyncAll),
            Commit::Buffered | Commit::Off => None,
        })
    }

    fn put_version(&self, batch: &mut OwnedWriteBatch, txid: u64, id: u64, op: u8, row: &Row) {
        batch.insert(&self.ks, &version_key(id, txid)[..], version_value(op, row));
        batch.insert(
            &self.ks,
            &tx_key(txid)[..],
            &crate::now_micros().to_be_bytes()[..],
        );
    }

    fn first_at_or_after(&self, id: u64, txid: u64) -> Option<Slice> {
        let snap = self.db.snapshot();
        let (_, v) = snap
            .range(&self.ks, version_key(id, txid)..=version_key(id, 0))
            .next()?
            .into_inner()
            .expect("range");
        (v[0] != OP_DELETE).then_some(v)
    }
}

impl Engine for Fjall {
    const NAME: &'static str = "fjall 3.1";
    /// The stored `op | row`, as fjall returns it (no copy).
    type Out = Slice;
    type History = Vec<KvVersion>;

    fn create(dir: &Path) -> Self {
        open(dir)
    }

    fn open(dir: &Path) -> Self {
        open(dir)
    }

    fn load(&mut self, rows: &[Row]) {
        let mut batch = self.batch(Commit::Buffered);
        for (i, row) in rows.iter().enumerate() {
            self.put_version(&mut batch, 1, i as u64 + 1, OP_INSERT, row);
        }
        batch.commit().expect("commit");
    }

    fn update(&mut self, txid: u64, id: u64, row: &Row, commit: Commit) {
        let mut batch = self.batch(commit);
        self.put_version(&mut batch, txid, id, OP_UPDATE, row);
        batch.commit().expect("commit");
    }

    fn update_bulk(&mut self, first_txid: u64, updates: &[(u64, Row)]) {
        let mut batch = self.batch(Commit::Buffered);
        for (i, (id, row)) in updates.iter().enumerate() {
            self.put_version(&mut batch, first_txid + i as u64, *id, OP_UPDATE, row);
        }
        batch.commit().expect("commit");
    }

    fn sync(&mut self) {
        self.db.persist(PersistMode::SyncAll).expect("persist");
    }

    fn as_of(&self, id: u64, txid: u64) -> Option<Slice> {
        self.first_at_or_after(id, txid)
    }

    fn latest(&self, id: u64) -> Option<Slice> {
        self.first_at_or_after(id, u64::MAX)
    }

    fn history(&self, id: u64) -> Vec<KvVersion> {
        let snap = self.db.snapshot();
        let mut out: Vec<KvVersion> = Vec::new();
        // Newest first; oldest first is returned, like the other engines.
        for kv in snap.range(&self.ks, version_key(id, u64::MAX)..=version_key(id, 0)) {
            let (k, v) = kv.into_inner().expect("range");
            let (_, txid) = parse_version_key(&k);
            let time = snap
                .get(&self.ks, tx_key(txid))
                .expect("get")
                .expect("tx record");
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

    fn notes(&self) -> Vec<String> {
        vec![
            "fjall 3.1 default configuration (32 MiB block cache, LZ4), one keyspace; durable = batch persisted with `PersistMode::SyncAll`, buffered = no persist".into(),
        ]
    }

    fn history_len(h: &Vec<KvVersion>) -> usize {
        h.len()
    }

    fn history_lines(h: &Vec<KvVersion>) -> Vec<HistoryLine> {
        kv_history_lines(h)
    }

    fn scan_as_of(&self, txid: u64) -> Vec<(u64, Slice)> {
        // Seek per key, as for sled, inside one snapshot: the first entry at
        // or after `(id, txid)` is the version visible at `txid` if it still
        // belongs to `id`; then skip past the rest of `id`'s versions.
        let snap = self.db.snapshot();
        let mut out = Vec::new();
        let mut lower: Bound<Vec<u8>> = Bound::Included(b"user\0".to_vec());
        let upper: Bound<Vec<u8>> = Bound::Excluded(TABLE_END.to_vec());
        loop {
            let Some(kv) = snap.range(&self.ks, (lower.clone(), upper.clone())).next() else {
                break;
            };
            let (k, v) = kv.into_inner().expect("range");
            let (id, t) = parse_version_key(&k);
            if t <= txid {
                if v[0] != OP_DELETE {
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
