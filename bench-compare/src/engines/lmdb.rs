//! LMDB through heed 0.22 (heed's bundled C build of LMDB's mdb.master,
//! 0.9.70): one unnamed database with keys `user | 0 | id BE | !txid BE`
//! (newest version first) and values `op | row`, plus `transaction | 0 |
//! txid BE` → commit time (u64 BE), as for sled. Map size 64 GiB: LMDB
//! only reserves the address space, the file grows as pages are written.
//!
//! One transaction is one write transaction. Durable commits are LMDB's
//! default (`mdb_txn_commit` fsyncs the data and the meta page before it
//! returns). Buffered commits are made with `EnvFlags::NO_SYNC` switched on
//! for the environment (`mdb_env_set_flags`, allowed at runtime for this
//! flag; this harness has one thread): the pages are written to the OS but
//! not synced, the equivalent of redb's `Durability::None`. They survive a
//! process crash (redb's `None` commits do not), but after an OS crash or
//! power loss they are lost unless a later durable commit or `sync` ran,
//! and LMDB documents that such a crash can then also corrupt the
//! database. `sync` is `mdb_env_sync(force)`.
//!
//! Every read opens its own read transaction (a snapshot), as redb's reads
//! and timecask's views do.

use std::ops::Bound;
use std::path::Path;

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, FlagSetMode, RwTxn};

use super::{
    KvVersion, TABLE_END, kv_history_lines, parse_version_key, tx_key, version_key, version_value,
};
use crate::{Commit, Engine, HistoryLine, OP_DELETE, OP_INSERT, OP_UPDATE, Row};

/// The map size: the largest the database can grow (address space only).
const MAP_SIZE: usize = 64 << 30;

/// An LMDB environment with its one database.
pub struct Lmdb {
    /// The environment.
    pub env: Env,
    /// The unnamed database.
    pub db: Database<Bytes, Bytes>,
    /// Whether `NO_SYNC` is currently on.
    no_sync: bool,
}

fn open(dir: &Path) -> Lmdb {
    // SAFETY: the files under `dir` are only touched through this
    // environment, by this process; no unsafe flags are set at open.
    let env = unsafe { EnvOpenOptions::new().map_size(MAP_SIZE).open(dir) }.expect("lmdb open");
    let mut w = env.write_txn().expect("write_txn");
    let db: Database<Bytes, Bytes> = env
        .create_database(&mut w, None)
        .expect("lmdb unnamed database");
    w.commit().expect("commit");
    Lmdb {
        env,
        db,
        no_sync: false,
    }
}

impl Lmdb {
    fn write(&mut self, commit: Commit, f: impl FnOnce(&Database<Bytes, Bytes>, &mut RwTxn)) {
        let no_sync = commit != Commit::Durable;
        if no_sync != self.no_sync {
            let mode = if no_sync {
                FlagSetMode::Enable
            } else {
                FlagSetMode::Disable
            };
            // SAFETY: one thread drives the environment and no transaction
            // is open here. NO_SYNC only weakens durability (see the module
            // documentation), which is what a buffered commit asks for.
            unsafe { self.env.set_flags(EnvFlags::NO_SYNC, mode) }.expect("mdb_env_set_flags");
            self.no_sync = no_sync;
        }
        let mut w = self.env.write_txn().expect("write_txn");
        f(&self.db, &mut w);
        w.commit().expect("commit");
    }

    fn put(db: &Database<Bytes, Bytes>, w: &mut RwTxn, txid: u64, id: u64, op: u8, row: &Row) {
        db.put(w, &version_key(id, txid), &version_value(op, row))
            .expect("put");
        db.put(w, &tx_key(txid), &crate::now_micros().to_be_bytes())
            .expect("put");
    }

    fn first_at_or_after(&self, id: u64, txid: u64) -> Option<Vec<u8>> {
        let r = self.env.read_txn().expect("read_txn");
        let (k, v) = self
            .db
            .get_greater_than_or_equal_to(&r, &version_key(id, txid))
            .expect("get_greater_than_or_equal_to")?;
        // The entry found may be a later key's version (or past the table):
        // only `id`'s versions count.
        if k.len() != 21 || k[..13] != version_key(id, 0)[..13] {
            return None;
        }
        (v[0] != OP_DELETE).then(|| v[1..].to_vec())
    }
}

impl Engine for Lmdb {
    const NAME: &'static str = "LMDB 0.9.70 (heed 0.22)";
    /// The row bytes, copied out of the read transaction.
    type Out = Vec<u8>;
    type History = Vec<KvVersion>;

    fn create(dir: &Path) -> Self {
        open(dir)
    }

    fn open(dir: &Path) -> Self {
        open(dir)
    }

    fn load(&mut self, rows: &[Row]) {
        self.write(Commit::Buffered, |db, w| {
            for (i, row) in rows.iter().enumerate() {
                Lmdb::put(db, w, 1, i as u64 + 1, OP_INSERT, row);
            }
        });
    }

    fn update(&mut self, txid: u64, id: u64, row: &Row, commit: Commit) {
        self.write(commit, |db, w| {
            Lmdb::put(db, w, txid, id, OP_UPDATE, row);
        });
    }

    fn update_bulk(&mut self, first_txid: u64, updates: &[(u64, Row)]) {
        self.write(Commit::Buffered, |db, w| {
            for (i, (id, row)) in updates.iter().enumerate() {
                Lmdb::put(db, w, first_txid + i as u64, *id, OP_UPDATE, row);
            }
        });
    }

    fn sync(&mut self) {
        self.env.force_sync().expect("mdb_env_sync");
    }

    fn as_of(&self, id: u64, txid: u64) -> Option<Vec<u8>> {
        self.first_at_or_after(id, txid)
    }

    fn latest(&self, id: u64) -> Option<Vec<u8>> {
        self.first_at_or_after(id, u64::MAX)
    }

    fn history(&self, id: u64) -> Vec<KvVersion> {
        let r = self.env.read_txn().expect("read_txn");
        let lo = version_key(id, u64::MAX);
        let hi = version_key(id, 0);
        let range = (Bound::Included(&lo[..]), Bound::Included(&hi[..]));
        let mut out: Vec<KvVersion> = Vec::new();
        for kv in self.db.range(&r, &range).expect("range") {
            let (k, v) = kv.expect("range");
            let (_, txid) = parse_version_key(k);
            let time = self
                .db
                .get(&r, &tx_key(txid))
                .expect("get")
                .expect("tx record");
            out.push(KvVersion {
                txid,
                end_txid: out.last().map(|n| n.txid),
                op: v[0],
                value: (v[0] != OP_DELETE).then(|| v[1..].to_vec()),
                commit_time: u64::from_be_bytes(time.try_into().expect("8 bytes")),
            });
        }
        out.reverse();
        out
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "LMDB 0.9.70 (heed 0.22, bundled C build), map size {} GiB, one unnamed database; durable = LMDB's default synced commit, buffered = `NO_SYNC` switched on",
            MAP_SIZE >> 30
        )]
    }

    fn history_len(h: &Vec<KvVersion>) -> usize {
        h.len()
    }

    fn history_lines(h: &Vec<KvVersion>) -> Vec<HistoryLine> {
        kv_history_lines(h)
    }

    fn scan_as_of(&self, txid: u64) -> Vec<(u64, Vec<u8>)> {
        // Seek per key, as for sled and redb, inside one read transaction:
        // the first entry at or after `(id, txid)` is the version visible at
        // `txid` if it still belongs to `id`; then on past `id`'s versions.
        let r = self.env.read_txn().expect("read_txn");
        let mut out = Vec::new();
        let mut lower: Vec<u8> = b"user\0".to_vec();
        let mut inclusive = true;
        loop {
            let lo = if inclusive {
                Bound::Included(&lower[..])
            } else {
                Bound::Excluded(&lower[..])
            };
            let range = (lo, Bound::Excluded(TABLE_END));
            let mut it = self.db.range(&r, &range).expect("range");
            let Some(kv) = it.next() else { break };
            let (k, v) = kv.expect("range");
            let (id, t) = parse_version_key(k);
            if t <= txid {
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
