//! timecask through its public API only.

use std::path::Path;

use timecask::{Config, Db, Durability, HistoryQuery, TxId, Version};

use crate::{Commit, Engine, HistoryLine, Row, TABLE, user_key};

/// A timecask database.
pub struct Timecask {
    /// The handle.
    pub db: Db,
}

/// Buffered by default (each commit sets its own durability), and no
/// checkpoint on close: the run writes one explicitly (`Db::checkpoint`) so
/// it can measure the open both ways.
fn config() -> Config {
    Config {
        durability: Durability::Buffered,
        checkpoint_on_close: false,
        ..Default::default()
    }
}

impl Engine for Timecask {
    const NAME: &'static str = "timecask";
    type Out = Vec<u8>;
    type History = Vec<Version>;

    fn create(dir: &Path) -> Self {
        Timecask {
            db: Db::open_with(dir, config()).expect("timecask open"),
        }
    }

    fn open(dir: &Path) -> Self {
        Timecask::create(dir)
    }

    fn load(&mut self, rows: &[Row]) {
        let mut tx = self.db.begin();
        for (i, row) in rows.iter().enumerate() {
            tx.insert(TABLE, user_key(i as u64 + 1), row.encode())
                .expect("insert");
        }
        let txid = tx.commit().expect("commit");
        assert_eq!(txid, Some(TxId(1)));
    }

    fn update(&mut self, txid: u64, id: u64, row: &Row, commit: Commit) {
        let mut tx = self.db.begin();
        if commit == Commit::Durable {
            tx.set_durability(Durability::Immediate);
        }
        tx.update(TABLE, user_key(id), row.encode())
            .expect("update");
        let got = tx.commit().expect("commit");
        assert_eq!(got, Some(TxId(txid)), "txids are dense and match");
    }

    fn update_bulk(&mut self, first_txid: u64, updates: &[(u64, Row)]) {
        // One txid per commit: timecask cannot write several transactions
        // in one commit.
        for (i, (id, row)) in updates.iter().enumerate() {
            self.update(first_txid + i as u64, *id, row, Commit::Buffered);
        }
    }

    fn sync(&mut self) {
        self.db.flush().expect("flush");
    }

    fn as_of(&self, id: u64, txid: u64) -> Option<Vec<u8>> {
        self.db
            .as_of(TxId(txid))
            .expect("as_of")
            .get(TABLE, user_key(id))
            .expect("get")
    }

    fn latest(&self, id: u64) -> Option<Vec<u8>> {
        self.db.snapshot().get(TABLE, user_key(id)).expect("get")
    }

    fn history(&self, id: u64) -> Vec<Version> {
        self.db
            .snapshot()
            .history(TABLE, user_key(id), HistoryQuery::all())
            .expect("history")
    }

    fn history_len(h: &Vec<Version>) -> usize {
        h.len()
    }

    fn history_lines(h: &Vec<Version>) -> Vec<HistoryLine> {
        h.iter()
            .map(|v| {
                let op = match v.op {
                    timecask::Op::Insert => crate::OP_INSERT,
                    timecask::Op::Update => crate::OP_UPDATE,
                    _ => crate::OP_DELETE,
                };
                let row = v.value.as_ref().map(|b| Row::decode(b).expect("row"));
                (v.txid.0, v.end_txid.map(|t| t.0), op, row)
            })
            .collect()
    }

    fn checkpoint(&mut self) -> bool {
        self.db.checkpoint().expect("checkpoint");
        true
    }

    fn opened_from_checkpoint(&self) -> bool {
        self.db.stats().opened_from_checkpoint
    }

    fn scan_as_of(&self, txid: u64) -> Vec<(u64, Vec<u8>)> {
        self.db
            .as_of(TxId(txid))
            .expect("as_of")
            .iter(TABLE)
            .expect("iter")
            .map(|kv| {
                let (k, v) = kv.expect("scan");
                (
                    u64::from_be_bytes(k.as_slice().try_into().expect("8-byte key")),
                    v,
                )
            })
            .collect()
    }
}
