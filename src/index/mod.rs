//! The in-memory index: for each `(table, key)` its version chain, and for
//! each txid where its frame lies.
//!
//! Invariant: the index does no I/O. It is built by replaying the log and
//! extended by every commit through the same [`Index::apply`], so it can
//! always be rebuilt from the log.

pub(crate) mod chain;
mod checkpoint;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::RetentionPolicy;
use crate::log::frame::{DecodedTx, FRAME_HEADER_SIZE, FrameSpan};
use crate::log::writer::FrameLocation;
use crate::manifest::{Manifest, TableEntry};
use crate::sealed::{Drops, RunSet};
use crate::types::{Op, SegmentId, TableId, Timestamp, TxId};
use chain::{Chain, VersionRef, push_version};

/// The reserved table that holds maintenance records (purge horizons,
/// erasures) in the log. Its changes are interpreted by [`Index::apply`],
/// never stored as versions, and it is hidden from table listings.
pub(crate) const SYSTEM_TABLE: &str = "__timecask";
/// Tables whose names start with this hold timecask's own data above the
/// engine (`__timecask_schema`: the typed layer's schema entries). They are
/// stored as any table, but never listed ([`Index::table_names_at`]) and
/// never shown among a transaction's changes (`Shared::read_tx`), so
/// `tables()`, `transaction`, `log`, `changes_since` and the CLI show only
/// the user's tables.
pub(crate) const INTERNAL_TABLE_PREFIX: &str = "__timecask_";

/// Whether `name` is an internal table (see [`INTERNAL_TABLE_PREFIX`]).
pub(crate) fn is_internal_table(name: &str) -> bool {
    name.starts_with(INTERNAL_TABLE_PREFIX)
}

/// System key of a purge record; the value is the horizon txid (`u64` LE).
pub(crate) const PURGE_KEY: &[u8] = b"purge";
/// System key of an erase record; the value is `table 0x00 key`, or just
/// `table` (no 0x00) once compaction has removed every erased version.
pub(crate) const ERASE_KEY: &[u8] = b"erase";

/// System key of a retention record; the value is `table 0x00 policy`.
pub(crate) const RETENTION_KEY: &[u8] = b"retention";
/// System key of a trim record (a retention policy applied by compaction);
/// the value is `table 0x00 u64 horizon`.
pub(crate) const TRIM_KEY: &[u8] = b"trim";

/// Drops the versions of `table` superseded at or before `horizon`;
/// returns how many.
fn trim_table(table: &mut Table, horizon: TxId) -> u64 {
    let mut dropped = 0;
    table.keys.retain(|_, chain| {
        if let Some(p) = chain::visible_position(chain, horizon)
            && p > 0
        {
            chain.drain(..p);
            dropped += p as u64;
            chain.shrink_to_fit();
        }
        !chain.is_empty()
    });
    dropped
}

/// Builds a `table 0x00 rest` system value.
pub(crate) fn table_record(table: &str, rest: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(table.len() + 1 + rest.len());
    record.extend_from_slice(table.as_bytes());
    record.push(0);
    record.extend_from_slice(rest);
    record
}

/// A system value as readers see it and compaction leaves it: an erase
/// record without the erased key; others unchanged.
pub(crate) fn compacted_system_value(key: &[u8], value: &[u8]) -> Vec<u8> {
    match (key, value.iter().position(|b| *b == 0)) {
        (ERASE_KEY, Some(split)) => value[..split].to_vec(),
        _ => value.to_vec(),
    }
}

/// Splits a `table 0x00 rest` system value.
fn split_table(value: &[u8]) -> Result<(&str, &[u8]), String> {
    let split = value
        .iter()
        .position(|b| *b == 0)
        .ok_or("system record without a table name")?;
    let table = std::str::from_utf8(&value[..split])
        .map_err(|_| "system record table is not UTF-8".to_string())?;
    Ok((table, &value[split + 1..]))
}

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

impl TxInfo {
    /// Where the frame lies, header included.
    pub(crate) fn frame(&self) -> FrameSpan {
        FrameSpan {
            offset: u64::from(self.frame_offset),
            len: FRAME_HEADER_SIZE + self.payload_len as usize,
        }
    }
}

/// One table's keys.
pub(crate) struct Table {
    pub name: String,
    /// The txid that created the table; it does not exist before it.
    pub created: TxId,
    pub keys: BTreeMap<Box<[u8]>, Chain>,
    /// Reads of this table below this txid are refused: its retention
    /// policy trimmed the history before it.
    pub horizon: TxId,
    /// The table's retention policy, applied by compaction.
    pub retention: Option<RetentionPolicy>,
}

/// All tables, the transactions and versions of the tail (txids after
/// the runs), and the runs themselves.
#[derive(Default)]
pub(crate) struct Index {
    tables: Vec<Table>,
    by_name: HashMap<String, TableId>,
    /// The last txid the runs hold: the tail starts after it.
    base: TxId,
    /// `txs[txid - base - 1]`.
    txs: Vec<TxInfo>,
    /// The sealed history, swapped together with `base`.
    runs: Option<Arc<RunSet>>,
    /// Counts purges, trims and erasures applied: what the runs hide
    /// changes only when this does (or the runs do).
    drop_generation: u64,
    /// Number of versions across all chains.
    n_versions: u64,
    /// Reads as of a txid below this are refused: history before it was
    /// purged.
    horizon: TxId,
    /// Keys erased since open, with the erasing txid: a transaction that
    /// began before an erasure and writes the key conflicts with it.
    erased: HashMap<(Box<str>, Box<[u8]>), TxId>,
}

impl Index {
    /// Returns spare capacity after a replay (the per-txid table grew by
    /// doubling while the log was read).
    pub(crate) fn shrink_after_replay(&mut self) {
        self.txs.shrink_to_fit();
    }

    /// The latest txid in the index.
    pub(crate) fn last_txid(&self) -> TxId {
        TxId(self.base.0 + self.txs.len() as u64)
    }

    /// What purges, trims and erasures in force hide of the runs.
    pub(crate) fn drops(&self) -> Drops {
        let index = self;
        let erased = index
            .erasures()
            .filter_map(|(t, k, at)| Some(((index.table_id(t)?, k.to_vec()), at)))
            .collect();
        let table_horizons: Vec<TxId> = index.tables().iter().map(|t| t.horizon).collect();
        let purge = index.horizon();
        let mut tail_first = HashMap::new();
        for (id, table) in index.tables().iter().enumerate() {
            if purge.max(table.horizon) == TxId::ZERO {
                continue;
            }
            for (key, chain) in &table.keys {
                if let Some(first) = chain.first() {
                    tail_first.insert((TableId(id as u32), key.to_vec()), first.txid());
                }
            }
        }
        Drops::new(
            purge,
            table_horizons,
            erased,
            index.table_id(SYSTEM_TABLE),
            tail_first,
        )
    }

    /// Changes whenever a purge, trim or erasure is applied.
    pub(crate) fn drop_generation(&self) -> u64 {
        self.drop_generation
    }

    /// The last txid held by the runs (0 if none): the tail starts after.
    pub(crate) fn base(&self) -> TxId {
        self.base
    }

    /// The sealed history, if there are runs.
    pub(crate) fn runs(&self) -> Option<&Arc<RunSet>> {
        self.runs.as_ref().filter(|r| !r.is_empty())
    }

    /// The run set, empty or not (`None` only for an index built without
    /// one, as verify's).
    pub(crate) fn run_set(&self) -> Option<&Arc<RunSet>> {
        self.runs.as_ref()
    }

    /// An index for a log that starts after the runs `manifest` lists:
    /// its tables, horizons and policies, no versions yet.
    pub(crate) fn from_manifest(manifest: &Manifest, runs: Arc<RunSet>) -> Index {
        let mut index = Index {
            base: manifest.runs_through,
            horizon: manifest.purge_horizon,
            runs: Some(runs),
            ..Index::default()
        };
        for t in &manifest.tables {
            index.by_name.insert(t.name.clone(), t.id);
            index.tables.push(Table {
                name: t.name.clone(),
                created: t.created,
                keys: BTreeMap::new(),
                horizon: t.horizon,
                retention: t.retention,
            });
        }
        index
    }

    /// Gives an index decoded from a checkpoint the runs it continues.
    pub(crate) fn attach_runs(&mut self, runs: Option<Arc<RunSet>>) {
        self.runs = runs;
    }

    /// The tables as a manifest lists them.
    pub(crate) fn manifest_tables(&self) -> Vec<TableEntry> {
        self.tables
            .iter()
            .enumerate()
            .map(|(i, t)| TableEntry {
                id: TableId(i as u32),
                name: t.name.clone(),
                created: t.created,
                horizon: t.horizon,
                retention: t.retention,
            })
            .collect()
    }

    /// Hands every version and transaction up to `through` over to `runs`,
    /// which must hold them: drops them from the tail.
    pub(crate) fn seal_through(&mut self, through: TxId, runs: Arc<RunSet>) {
        assert!(through >= self.base && through <= self.last_txid());
        let mut dropped = 0;
        for table in &mut self.tables {
            table.keys.retain(|_, chain| {
                let n = chain.partition_point(|v| v.txid() <= through);
                if n > 0 {
                    chain.drain(..n);
                    chain.shrink_to_fit();
                    dropped += n as u64;
                }
                !chain.is_empty()
            });
        }
        self.n_versions -= dropped;
        let n = (through.0 - self.base.0) as usize;
        self.txs.drain(..n);
        self.txs.shrink_to_fit();
        self.base = through;
        self.runs = Some(runs);
    }

    pub(crate) fn n_versions(&self) -> u64 {
        self.n_versions
    }

    /// Estimated bytes the tail holds: 64 per version (its 20-byte
    /// reference, chain slack, its share of keys and tree nodes), 24 per
    /// transaction.
    pub(crate) fn tail_estimate(&self) -> u64 {
        self.n_versions * 64 + self.txs.len() as u64 * 24
    }

    /// The oldest readable txid (0 if nothing was purged).
    pub(crate) fn horizon(&self) -> TxId {
        self.horizon
    }

    /// Mutable chain of `key` in table `id`, for compaction's relocation.
    pub(crate) fn chain_mut(&mut self, id: TableId, key: &[u8]) -> Option<&mut Chain> {
        self.tables.get_mut(id.0 as usize)?.keys.get_mut(key)
    }

    /// Mutable frame location of `txid`, for compaction's relocation.
    pub(crate) fn tx_mut(&mut self, txid: TxId) -> Option<&mut TxInfo> {
        let i = txid.0.checked_sub(self.base.0 + 1)?;
        self.txs.get_mut(usize::try_from(i).ok()?)
    }

    /// Drops every version superseded at or before `horizon`: each chain
    /// keeps the version visible at `horizon` (a delete too: views at the
    /// horizon still see when the key was deleted) and all later ones.
    fn purge(&mut self, horizon: TxId) {
        if horizon <= self.horizon {
            return;
        }
        self.horizon = horizon;
        self.drop_generation += 1;
        let mut dropped = 0;
        for table in &mut self.tables {
            dropped += trim_table(table, horizon);
        }
        self.n_versions -= dropped;
    }

    /// Drops the history of one table before `horizon`, as `purge` does
    /// for all (a retention policy applied by compaction).
    fn trim(&mut self, table: &str, horizon: TxId) -> Result<(), String> {
        let id = self
            .table_id(table)
            .ok_or("trim record names an unknown table")?;
        let table = &mut self.tables[id.0 as usize];
        if horizon > table.horizon {
            self.drop_generation += 1;
            table.horizon = horizon;
            let dropped = trim_table(table, horizon);
            self.n_versions -= dropped;
        }
        Ok(())
    }

    /// The table named `name` if it existed at `at`; an error if `at` is
    /// below the table's retention horizon or the database's.
    pub(crate) fn readable_table_at(&self, name: &str, at: TxId) -> crate::Result<Option<&Table>> {
        let Some(table) = self.table_at(name, at) else {
            return Ok(None);
        };
        if at < table.horizon {
            return Err(crate::Error::HistoryPurged {
                requested: at,
                horizon: table.horizon,
            });
        }
        Ok(Some(table))
    }

    /// Tables with a retention policy: (name, policy, current horizon).
    pub(crate) fn retention_policies(&self) -> Vec<(String, RetentionPolicy, TxId)> {
        self.tables
            .iter()
            .filter_map(|t| t.retention.map(|p| (t.name.clone(), p, t.horizon)))
            .collect()
    }

    /// The horizon `policy` asks for in table `name` as of `now`: the
    /// oldest txid from which no key keeps more than `keep_last` versions,
    /// but no newer than what keeps everything committed after
    /// `now - keep_for`. `txid_at_time` answers for times before the
    /// tail (from the runs); `sealed_needed` is the keep-last horizon the
    /// versions of the runs ask for (counting each run key's tail versions
    /// too), 0 without runs.
    pub(crate) fn retention_horizon(
        &self,
        name: &str,
        policy: RetentionPolicy,
        now: Timestamp,
        txid_at_time: impl FnOnce(Timestamp) -> TxId,
        sealed_needed: TxId,
    ) -> TxId {
        let Some(table) = self.table_id(name).map(|id| self.table(id)) else {
            return TxId::ZERO;
        };
        let mut horizon = self.last_txid();
        if let Some(keep_for) = policy.keep_for {
            let cutoff = now
                .as_micros()
                .saturating_sub(u64::try_from(keep_for.as_micros()).unwrap_or(u64::MAX));
            // Versions committed after the cutoff must stay visible.
            let cutoff = Timestamp::from_micros(cutoff);
            let at = self
                .txid_at_time(cutoff)
                .unwrap_or_else(|| txid_at_time(cutoff));
            horizon = horizon.min(at);
        }
        if let Some(keep_last) = policy.keep_last {
            let n = keep_last.max(1) as usize;
            let mut needed = sealed_needed;
            for chain in table.keys.values() {
                if chain.len() > n {
                    needed = needed.max(chain[chain.len() - n].txid());
                }
            }
            // No key keeps more than `n` versions at or after `needed`.
            if needed == TxId::ZERO {
                return table.horizon;
            }
            horizon = horizon.min(needed);
        }
        horizon
    }

    /// Removes every version of one key (an erasure). `record` is the
    /// erase record's value: `table 0x00 key`; a bare table name is a
    /// compacted record and does nothing.
    fn erase(&mut self, record: &[u8], txid: TxId) -> Result<(), String> {
        let Some(split) = record.iter().position(|b| *b == 0) else {
            // Compacted: only the table name is left, nothing to remove.
            return Ok(());
        };
        let (table, key) = (&record[..split], &record[split + 1..]);
        let table = std::str::from_utf8(table)
            .map_err(|_| "erase record table is not UTF-8".to_string())?;
        if let Some(id) = self.by_name.get(table).copied()
            && let Some(chain) = self.tables[id.0 as usize].keys.remove(key)
        {
            self.n_versions -= chain.len() as u64;
        }
        self.erased.insert((table.into(), key.into()), txid);
        self.drop_generation += 1;
        Ok(())
    }

    /// The txid of the latest erasure of `key` in `table` since open.
    pub(crate) fn erased_at(&self, table: &str, key: &[u8]) -> Option<TxId> {
        if self.erased.is_empty() {
            return None;
        }
        self.erased.get(&(table.into(), key.into())).copied()
    }

    /// The keys of `table` erased since open (or since the runs were last
    /// merged), with the erasing txids.
    pub(crate) fn erased_in(&self, table: &str) -> HashMap<Vec<u8>, TxId> {
        self.erased
            .iter()
            .filter(|((t, _), _)| &**t == table)
            .map(|((_, k), at)| (k.to_vec(), *at))
            .collect()
    }

    /// Every erasure since open: (table, key, erasing txid).
    pub(crate) fn erasures(&self) -> impl Iterator<Item = (&str, &[u8], TxId)> {
        self.erased.iter().map(|((t, k), at)| (&**t, &**k, *at))
    }

    /// Whether the version of `key` in table `id` written by `txid` is
    /// still in the index (not purged, not erased).
    pub(crate) fn has_version(&self, id: TableId, key: &[u8], txid: TxId) -> bool {
        self.tables
            .get(id.0 as usize)
            .and_then(|t| t.keys.get(key))
            .is_some_and(|chain| chain.binary_search_by_key(&txid, |v| v.txid()).is_ok())
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
            .filter(|t| t.created <= at && t.name != SYSTEM_TABLE && !is_internal_table(&t.name))
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

    /// Where the frame of `txid` lies; `None` for a txid of the runs.
    pub(crate) fn tx(&self, txid: TxId) -> Option<&TxInfo> {
        let i = txid.0.checked_sub(self.base.0 + 1)?;
        self.txs.get(usize::try_from(i).ok()?)
    }

    /// The last txid whose commit time is at or before `time` (0 if
    /// none); `None` if that txid is in the runs (`time` is before the
    /// tail's first commit and there are runs).
    pub(crate) fn txid_at_time(&self, time: Timestamp) -> Option<TxId> {
        let n = self.txs.partition_point(|t| t.commit_time <= time) as u64;
        (n > 0 || self.base == TxId::ZERO).then_some(TxId(self.base.0 + n))
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
                horizon: TxId::ZERO,
                retention: None,
            });
        }
        for change in &tx.changes {
            if self.tables[change.table.0 as usize].name == SYSTEM_TABLE {
                self.apply_system(change.key, change.value.unwrap_or_default(), tx.txid)?;
                continue;
            }
            let table = &mut self.tables[change.table.0 as usize];
            let len = change.value.map_or(0, |v| v.len() as u32);
            let offset = u32::try_from(payload_start + u64::from(change.value_offset))
                .map_err(|_| "value offset beyond the segment size limit".to_string())?;
            let version = VersionRef::new(tx.txid, change.op, loc.segment, offset, len);
            let chain = table.keys.entry(change.key.into()).or_default();
            let was_live = chain.last().is_some_and(|v| v.is_live());
            // A new chain may start with any op: its earlier versions may
            // have been purged and compacted away.
            let op_fits = chain.is_empty()
                || match change.op {
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

    /// Interprets one change of the system table.
    fn apply_system(&mut self, key: &[u8], value: &[u8], txid: TxId) -> Result<(), String> {
        match key {
            PURGE_KEY => {
                let bytes: [u8; 8] = value
                    .try_into()
                    .map_err(|_| "purge record value is not 8 bytes".to_string())?;
                self.purge(TxId(u64::from_le_bytes(bytes)));
                Ok(())
            }
            ERASE_KEY => self.erase(value, txid),
            RETENTION_KEY => {
                let (table, policy) = split_table(value)?;
                let policy = RetentionPolicy::decode(policy).ok_or("bad retention record")?;
                let id = self
                    .table_id(table)
                    .ok_or("retention record names an unknown table")?;
                self.tables[id.0 as usize].retention = Some(policy);
                Ok(())
            }
            TRIM_KEY => {
                let (table, horizon) = split_table(value)?;
                let bytes: [u8; 8] = horizon
                    .try_into()
                    .map_err(|_| "bad trim record".to_string())?;
                self.trim(table, TxId(u64::from_le_bytes(bytes)))
            }
            _ => Err("unknown system record".into()),
        }
    }
}
