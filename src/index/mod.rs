//! The in-memory index: for each `(table, key)` its version chain, and for
//! each txid where its frame lies.
//!
//! Invariant: the index does no I/O. It is built by replaying the log and
//! extended by every commit through the same [`Index::apply`], so it can
//! always be rebuilt from the log.

pub(crate) mod chain;

use std::collections::{BTreeMap, HashMap};

use crate::log::frame::{DecodedTx, FRAME_HEADER_SIZE};
use crate::log::writer::FrameLocation;
use crate::types::{Op, SegmentId, TableId, Timestamp, TxId};
use chain::{Chain, VersionRef, push_version};

/// Where a transaction's frame lies, and its commit time. 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TxInfo {
    pub commit_time: Timestamp,
    pub segment: SegmentId,
    pub frame_offset: u32,
    pub payload_len: u32,
    /// Length of the metadata section; 4 means "no metadata".
    pub meta_len: u32,
}

/// One table's keys.
pub(crate) struct Table {
    pub name: String,
    /// The txid that created the table; it does not exist before it.
    pub created: TxId,
    pub keys: BTreeMap<Box<[u8]>, Chain>,
}

/// All tables and all transactions.
#[derive(Default)]
pub(crate) struct Index {
    tables: Vec<Table>,
    by_name: HashMap<String, TableId>,
    /// `txs[txid - 1]`.
    txs: Vec<TxInfo>,
    /// Number of versions across all chains.
    n_versions: u64,
}

impl Index {
    /// The latest txid in the index.
    pub(crate) fn last_txid(&self) -> TxId {
        TxId(self.txs.len() as u64)
    }

    pub(crate) fn n_versions(&self) -> u64 {
        self.n_versions
    }

    pub(crate) fn table_id(&self, name: &str) -> Option<TableId> {
        self.by_name.get(name).copied()
    }

    /// Every table, by id.
    pub(crate) fn tables(&self) -> &[Table] {
        &self.tables
    }

    /// The name of table `id`, if it exists.
    pub(crate) fn table_name(&self, id: TableId) -> Option<&str> {
        self.tables.get(id.0 as usize).map(|t| t.name.as_str())
    }

    pub(crate) fn table(&self, id: TableId) -> &Table {
        &self.tables[id.0 as usize]
    }

    /// The table named `name` if it existed at `at`.
    pub(crate) fn table_at(&self, name: &str, at: TxId) -> Option<&Table> {
        let table = self.table(self.table_id(name)?);
        (table.created <= at).then_some(table)
    }

    /// Tables that existed at `at`, in name order.
    pub(crate) fn table_names_at(&self, at: TxId) -> Vec<String> {
        let mut names: Vec<String> = self
            .tables
            .iter()
            .filter(|t| t.created <= at)
            .map(|t| t.name.clone())
            .collect();
        names.sort();
        names
    }

    /// The id the next new table gets.
    pub(crate) fn next_table_id(&self) -> TableId {
        TableId(u32::try_from(self.tables.len()).expect("fewer than 2^32 tables"))
    }

    pub(crate) fn chain(&self, table: &str, key: &[u8]) -> Option<&Chain> {
        self.table(self.table_id(table)?).keys.get(key)
    }

    pub(crate) fn tx(&self, txid: TxId) -> Option<&TxInfo> {
        let i = txid.0.checked_sub(1)?;
        self.txs.get(usize::try_from(i).ok()?)
    }

    /// The last txid whose commit time is at or before `time` (0 if none).
    pub(crate) fn txid_at_time(&self, time: Timestamp) -> TxId {
        TxId(self.txs.partition_point(|t| t.commit_time <= time) as u64)
    }

    /// Adds one transaction. The caller guarantees `tx.txid` is the next
    /// txid; every other inconsistency is returned as a reason string
    /// (corruption when replaying, a bug when committing).
    pub(crate) fn apply(
        &mut self,
        loc: FrameLocation,
        payload_len: u32,
        tx: &DecodedTx<'_>,
    ) -> Result<(), String> {
        assert_eq!(
            tx.txid,
            self.last_txid().next(),
            "txids are applied densely in order"
        );
        if let Some(prev) = self.txs.last()
            && tx.commit_time < prev.commit_time
        {
            return Err(format!("commit time of txid {} goes backwards", tx.txid));
        }
        // Validate everything before mutating, so a bad frame leaves the
        // index unchanged.
        let mut next_id = self.tables.len();
        for (id, name) in &tx.table_defs {
            if id.0 as usize != next_id || self.by_name.contains_key(*name) {
                return Err(format!(
                    "table definition {} {name:?} is out of order or repeated",
                    id.0
                ));
            }
            next_id += 1;
        }
        let payload_start = loc.offset as u64 + FRAME_HEADER_SIZE as u64;
        for change in &tx.changes {
            if change.table.0 as usize >= next_id {
                return Err(format!("change names unknown table id {}", change.table.0));
            }
        }
        for (id, name) in &tx.table_defs {
            self.by_name.insert((*name).to_string(), *id);
            self.tables.push(Table {
                name: (*name).to_string(),
                created: tx.txid,
                keys: BTreeMap::new(),
            });
        }
        for change in &tx.changes {
            let table = &mut self.tables[change.table.0 as usize];
            let len = change.value.map_or(0, |v| v.len() as u32);
            let offset = u32::try_from(payload_start + u64::from(change.value_offset))
                .map_err(|_| "value offset beyond the segment size limit".to_string())?;
            let version = VersionRef::new(tx.txid, change.op, loc.segment, offset, len);
            let chain = table.keys.entry(change.key.into()).or_default();
            let was_live = chain.last().is_some_and(|v| v.is_live());
            let op_fits = match change.op {
                Op::Insert => !was_live,
                Op::Update | Op::Delete => was_live,
            };
            if chain.last().is_some_and(|v| v.txid() >= tx.txid) || !op_fits {
                return Err(format!(
                    "change {} of a key in table {:?} does not fit its version chain",
                    change.op, table.name
                ));
            }
            push_version(chain, version);
            self.n_versions += 1;
        }
        self.txs.push(TxInfo {
            commit_time: tx.commit_time,
            segment: loc.segment,
            frame_offset: loc.offset,
            payload_len,
            meta_len: tx.meta_len,
        });
        Ok(())
    }
}
