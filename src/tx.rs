//! Write transactions: buffered writes over a snapshot, and the commit
//! protocol.
//!
//! Commit: (1) outside any lock, drop writes that change nothing and work
//! out each op against the begin snapshot; (2) under the writer mutex,
//! check for conflicts, assign the txid and commit time, encode and append
//! the frame; (3) decode the frame just written and apply it to the index
//! under the index write lock (the same code path as recovery); (4) release
//! the writer mutex and wait for group commit (`crate::durable`) to fsync
//! the frame (`Immediate`) and publish the txid in order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use crate::Metadata;
use crate::config::RetentionPolicy;
use crate::engine::Shared;
use crate::error::{Error, KeyBytes, Result};
use crate::index::{
    ERASE_KEY, Index, PURGE_KEY, RETENTION_KEY, SYSTEM_TABLE, TRIM_KEY, table_record,
};
use crate::limits::{
    KEY_SIZE_MAX, META_SIZE_MAX, TABLE_NAME_SIZE_MAX, TX_SIZE_MAX, VALUE_SIZE_MAX,
};
use crate::log::frame::{
    ChangeToEncode, FRAME_HEADER_SIZE, TxToEncode, decode_payload, encode_frame, meta_size,
    payload_size,
};
use crate::log::value_cache::ValueBytes;
use crate::read::Snapshot;
use crate::tx_range::TxRangeIter;
use crate::types::{Durability, Op, TableId, Timestamp, TxId};

/// A write transaction: reads see its begin snapshot plus its own writes;
/// writes become visible to others only when [`commit`](WriteTx::commit)
/// returns. Dropping it without committing aborts it.
///
/// ```
/// # fn main() -> Result<(), timecask::Error> {
/// let dir = tempfile::tempdir().unwrap();
/// let db = timecask::Db::open(dir.path())?;
/// let mut tx = db.begin();
/// tx.insert("user", b"1", b"Alice")?;
/// assert_eq!(tx.get("user", b"1")?, Some(b"Alice".to_vec())); // reads its own write
/// assert!(db.snapshot().get("user", b"1")?.is_none()); // others do not see it yet
/// tx.commit()?;
/// # Ok(()) }
/// ```
pub struct WriteTx {
    shared: Arc<Shared>,
    view: Snapshot,
    /// Per table, per key: the value written, `None` for a delete. Nested
    /// so that reads look a key up by `&str` and `&[u8]`, without building
    /// an owned pair.
    writes: BTreeMap<String, BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    created_tables: BTreeSet<String>,
    /// Maintenance records for the system table (purge, erase), written
    /// first in the frame.
    system: Vec<(&'static [u8], Vec<u8>)>,
    /// Keys erased by this transaction (also in `writes`, as deletes).
    erased: BTreeMap<String, BTreeSet<Vec<u8>>>,
    meta: Metadata,
    durability: Durability,
    /// Running estimate of the encoded size, to refuse oversized
    /// transactions before they use that much memory.
    size_bytes: usize,
}

impl WriteTx {
    pub(crate) fn new(view: Snapshot) -> WriteTx {
        let shared = Arc::clone(view.shared());
        let durability = shared.config.durability;
        WriteTx {
            view,
            shared,
            writes: BTreeMap::new(),
            created_tables: BTreeSet::new(),
            system: Vec::new(),
            erased: BTreeMap::new(),
            meta: Metadata::new(),
            durability,
            size_bytes: 0,
        }
    }

    /// The txid of the snapshot this transaction reads from.
    pub fn base_txid(&self) -> TxId {
        self.view.txid()
    }

    /// Overrides the database's default durability for this commit.
    pub fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    /// Sets a metadata entry (`user`, `remote_addr`, `reason`, ...) recorded
    /// with the transaction.
    pub fn set_meta(&mut self, key: impl Into<String>, value: impl Into<String>) -> Result<()> {
        let mut meta = self.meta.clone();
        meta.insert(key.into(), value.into());
        let size = meta_size(&meta);
        if size > META_SIZE_MAX {
            return Err(Error::MetadataTooLarge {
                size,
                max: META_SIZE_MAX,
            });
        }
        self.meta = meta;
        Ok(())
    }

    /// Creates `table` (empty) if it does not exist yet. Writing to a table
    /// creates it too; this is for tables that should exist while empty.
    pub fn create_table(&mut self, table: &str) -> Result<()> {
        check_table_name(table)?;
        if !self.table_exists(table) {
            self.created_tables.insert(table.to_string());
        }
        Ok(())
    }

    fn table_exists(&self, table: &str) -> bool {
        self.shared
            .read_index()
            .table_at(table, self.view.txid())
            .is_some()
    }

    /// This transaction's own write of `key` (`Some(None)`: a delete), if
    /// it made one.
    fn pending(&self, table: &str, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        self.writes.get(table)?.get(key)
    }

    /// Every write of this transaction, by table then key.
    fn written(&self) -> impl Iterator<Item = (&str, &[u8], &Option<Vec<u8>>)> {
        self.writes.iter().flat_map(|(table, keys)| {
            keys.iter()
                .map(move |(key, value)| (table.as_str(), key.as_slice(), value))
        })
    }

    /// Records a write of `key` (`None` deletes), replacing an earlier one.
    fn record_write(&mut self, table: &str, key: &[u8], value: Option<Vec<u8>>) {
        match self.writes.get_mut(table) {
            Some(keys) => keys.insert(key.to_vec(), value),
            None => self
                .writes
                .entry(table.to_string())
                .or_default()
                .insert(key.to_vec(), value),
        };
    }

    /// The value of `key` as this transaction sees it.
    pub fn get(&self, table: &str, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let key = key.as_ref();
        match self.pending(table, key) {
            Some(pending) => Ok(pending.clone()),
            None => self.view.get(table, key),
        }
    }

    /// Like [`get`](Self::get), but a large value is shared with the value
    /// cache instead of copied when the transaction has not written `key`.
    pub(crate) fn get_bytes(&self, table: &str, key: &[u8]) -> Result<Option<ValueBytes>> {
        match self.pending(table, key) {
            Some(pending) => Ok(pending.clone().map(ValueBytes::Read)),
            None => self.view.get_bytes(table, key),
        }
    }

    /// Calls `f` with the bytes of `key`'s value as this transaction sees
    /// it (see `Snapshot::get_with`); `None` if it is not live.
    pub(crate) fn get_with<R>(
        &self,
        table: &str,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>> {
        match self.pending(table, key) {
            Some(pending) => Ok(pending.as_deref().map(f)),
            None => self.view.get_with(table, key, f),
        }
    }

    /// The txid of the committed version of `key` this transaction sees:
    /// `None` if it wrote `key` itself or no version is visible.
    pub(crate) fn committed_txid(&self, table: &str, key: &[u8]) -> Option<TxId> {
        if self.pending(table, key).is_some() {
            return None;
        }
        Some(self.view.get_version(table, key).ok()??.txid)
    }

    /// Whether `key` is live as this transaction sees it.
    pub fn contains(&self, table: &str, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        match self.pending(table, key) {
            Some(pending) => Ok(pending.is_some()),
            None => self.view.contains(table, key),
        }
    }

    /// Key–value pairs in `range` as this transaction sees them, in key
    /// order (its own writes merged over its snapshot).
    pub fn range<K: AsRef<[u8]>>(
        &self,
        table: &str,
        range: impl RangeBounds<K>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        fn bytes_bound<K: AsRef<[u8]>>(b: Bound<&K>) -> Bound<&[u8]> {
            b.map(AsRef::as_ref)
        }
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for kv in self
            .view
            .range::<&K>(table, (range.start_bound(), range.end_bound()))?
        {
            let (k, v) = kv?;
            merged.insert(k, Some(v));
        }
        let start = bytes_bound(range.start_bound());
        let end = bytes_bound(range.end_bound());
        if bounds_are_empty(&start, &end) {
            return Ok(Vec::new());
        }
        if let Some(keys) = self.writes.get(table) {
            for (k, v) in keys.range::<[u8], _>((start, end)) {
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    /// Like [`range`](Self::range), but lazy: the snapshot is read in
    /// batches as the iterator advances, in either direction.
    pub(crate) fn range_iter(
        &self,
        table: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
    ) -> Result<TxRangeIter> {
        let pending = match self.writes.get(table) {
            Some(keys) if !bounds_are_empty(&start, &end) => {
                let bounds = (
                    start.as_ref().map(Vec::as_slice),
                    end.as_ref().map(Vec::as_slice),
                );
                keys.range::<[u8], _>(bounds)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }
            _ => VecDeque::new(),
        };
        let snapshot = self.view.range(table, (start, end))?;
        Ok(TxRangeIter::new(snapshot, pending))
    }

    /// Writes `value` under `key`, inserting or updating it.
    pub fn put(
        &mut self,
        table: &str,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<()> {
        let (key, value) = (key.as_ref(), value.as_ref());
        check_table_name(table)?;
        check_key(key)?;
        if value.len() > VALUE_SIZE_MAX {
            return Err(Error::ValueTooLarge {
                size: value.len(),
                max: VALUE_SIZE_MAX,
            });
        }
        self.stage(table, key, Some(value.to_vec()))
    }

    /// Writes `value` under `key`, which must not be live:
    /// [`Error::KeyExists`] otherwise.
    pub fn insert(
        &mut self,
        table: &str,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<()> {
        let key = key.as_ref();
        if self.contains(table, key)? {
            return Err(Error::KeyExists {
                table: table.to_string(),
                key: KeyBytes(key.to_vec()),
            });
        }
        self.put(table, key, value)
    }

    /// Replaces the value of `key`, which must be live:
    /// [`Error::KeyNotFound`] otherwise.
    pub fn update(
        &mut self,
        table: &str,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<()> {
        let key = key.as_ref();
        if !self.contains(table, key)? {
            return Err(Error::KeyNotFound {
                table: table.to_string(),
                key: KeyBytes(key.to_vec()),
            });
        }
        self.put(table, key, value)
    }

    /// Deletes `key`; returns whether it was live. Deleting a key that is
    /// not live records nothing.
    pub fn delete(&mut self, table: &str, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        check_table_name(table)?;
        check_key(key)?;
        let was_live = self.contains(table, key)?;
        self.stage(table, key, None)?;
        Ok(was_live)
    }

    fn stage(&mut self, table: &str, key: &[u8], value: Option<Vec<u8>>) -> Result<()> {
        let added = 16 + key.len() + value.as_ref().map_or(0, Vec::len);
        if self.size_bytes + added > TX_SIZE_MAX {
            return Err(Error::TransactionTooLarge {
                size: self.size_bytes + added,
                max: TX_SIZE_MAX,
            });
        }
        self.size_bytes += added;
        self.record_write(table, key, value);
        Ok(())
    }

    /// Writes the value `key` had as of `to_txid` back as a new version
    /// (deleting the key if it did not exist then). Returns whether that
    /// changes anything.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// # let mut tx = db.begin(); tx.put("user", b"1", b"Alice")?; let t1 = tx.commit()?.unwrap();
    /// # let mut tx = db.begin(); tx.put("user", b"1", b"Bob")?; tx.commit()?;
    /// let mut tx = db.begin();
    /// tx.set_meta("reason", "undo the rename")?;
    /// tx.revert("user", b"1", t1)?;
    /// let t3 = tx.commit()?.unwrap();
    /// assert_eq!(db.as_of(t3)?.get("user", b"1")?, Some(b"Alice".to_vec()));
    /// # Ok(()) }
    /// ```
    pub fn revert(&mut self, table: &str, key: impl AsRef<[u8]>, to_txid: TxId) -> Result<bool> {
        let key = key.as_ref();
        if to_txid > self.view.txid() {
            return Err(Error::FutureTxid {
                requested: to_txid,
                latest: self.view.txid(),
            });
        }
        let old = Snapshot::new(Arc::clone(&self.shared), to_txid)?.get(table, key)?;
        let changes = self.get(table, key)? != old;
        match old {
            Some(value) => self.put(table, key, value)?,
            None => {
                self.delete(table, key)?;
            }
        }
        Ok(changes)
    }

    /// Writes the inverse of every change transaction `txid` made, putting
    /// each key it touched back to its value before `txid`. Refused with
    /// [`Error::Conflict`] naming the key if a later transaction (up to this
    /// one's snapshot) changed one of those keys too; nothing is staged then.
    ///
    /// Known limit: changes that a table's retention policy has already
    /// trimmed are no longer in the transaction's record, so they are not
    /// undone (and do not conflict), although their keys were changed later
    /// — that is why they were trimmed. Changes the record still shows in a
    /// trimmed table fail with [`Error::HistoryPurged`].
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// let mut tx = db.begin();
    /// tx.put("t", b"a", b"1")?;
    /// tx.put("t", b"b", b"1")?;
    /// let oops = tx.commit()?.unwrap();
    /// let mut tx = db.begin();
    /// tx.undo(oops)?;
    /// tx.commit()?;
    /// assert_eq!(db.snapshot().count("t")?, 0);
    /// # Ok(()) }
    /// ```
    pub fn undo(&mut self, txid: TxId) -> Result<()> {
        let base = self.view.txid();
        if txid > base {
            return Err(Error::FutureTxid {
                requested: txid,
                latest: base,
            });
        }
        if txid == TxId::ZERO {
            return Err(Error::NoSuchTransaction { txid });
        }
        // The inverse is the state before `txid`: refused if purged.
        self.shared.check_readable(TxId(txid.0 - 1))?;
        let mut record = self.shared.read_tx(txid)?;
        // Maintenance records (purge, erase) are not undone.
        record.changes.retain(|c| c.table != SYSTEM_TABLE);
        {
            let index = self.shared.read_index();
            for change in &record.changes {
                let chain = index
                    .chain(&change.table, &change.key)
                    .map_or(&[][..], |c| &c[..]);
                let mut later = chain.iter().any(|v| v.txid() > txid && v.txid() <= base);
                if !later
                    && txid < index.base()
                    && let (Some(runs), Some(id)) = (index.runs(), index.table_id(&change.table))
                {
                    later = runs.successor(id, &change.key, txid, base)?.is_some();
                }
                if later {
                    return Err(Error::Conflict {
                        table: change.table.clone(),
                        key: KeyBytes(change.key.clone()),
                    });
                }
            }
        }
        let before = Snapshot::new(Arc::clone(&self.shared), TxId(txid.0 - 1))?;
        let mut inverse = Vec::with_capacity(record.changes.len());
        for change in &record.changes {
            inverse.push((change, before.get(&change.table, &change.key)?));
        }
        for (change, old) in inverse {
            match old {
                Some(value) => self.put(&change.table, &change.key, value)?,
                None => {
                    self.delete(&change.table, &change.key)?;
                }
            }
        }
        Ok(())
    }

    /// Erases `key` of `table`: every version of it, at every txid, is
    /// removed. Reads stop seeing it when this commits; the bytes leave the
    /// disk at the next [`Db::compact`](crate::Db::compact). The log keeps
    /// only that an erasure happened in `table`, with this transaction's
    /// metadata. Writes to the key later in this transaction start a new
    /// history.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// # let mut tx = db.begin(); tx.put("users", b"ann", b"ann@example.com")?; let t1 = tx.commit()?.unwrap();
    /// let mut tx = db.begin();
    /// tx.set_meta("reason", "GDPR request 42")?;
    /// tx.erase("users", b"ann")?;
    /// tx.commit()?;
    /// assert_eq!(db.as_of(t1)?.get("users", b"ann")?, None);
    /// # Ok(()) }
    /// ```
    pub fn erase(&mut self, table: &str, key: impl AsRef<[u8]>) -> Result<()> {
        let key = key.as_ref();
        check_table_name(table)?;
        check_key(key)?;
        // Reads in this transaction see the key gone; a later write in it
        // starts a new history.
        self.record_write(table, key, None);
        self.system.push((ERASE_KEY, table_record(table, key)));
        self.erased
            .entry(table.to_string())
            .or_default()
            .insert(key.to_vec());
        Ok(())
    }

    /// Drops, when this commits, every version superseded at or before
    /// `before`; the version visible at `before` is kept, so as-of reads at
    /// `before` and later are unchanged and earlier ones fail with
    /// [`Error::HistoryPurged`]. Disk space comes back with
    /// [`Db::compact`](crate::Db::compact). The commit fails with
    /// [`Error::HistoryInUse`] while a live view reads a txid below `before`.
    pub fn purge_history(&mut self, before: TxId) -> Result<()> {
        if before > self.view.txid() {
            return Err(Error::FutureTxid {
                requested: before,
                latest: self.view.txid(),
            });
        }
        if before > self.shared.pins.horizon() {
            self.system
                .push((PURGE_KEY, before.0.to_le_bytes().to_vec()));
        }
        Ok(())
    }

    /// Sets the retention policy of `table` (created if missing), applied
    /// by every later [`Db::compact`](crate::Db::compact). The policy is
    /// recorded in the log, so it survives reopening. Fails with
    /// [`Error::InvalidConfig`] for `keep_last: Some(0)` and for a policy
    /// with neither `keep_last` nor `keep_for`.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// let mut tx = db.begin();
    /// tx.set_retention("sessions", timecask::RetentionPolicy { keep_last: Some(3), keep_for: None })?;
    /// tx.commit()?;
    /// # Ok(()) }
    /// ```
    pub fn set_retention(&mut self, table: &str, policy: RetentionPolicy) -> Result<()> {
        policy.validate()?;
        self.create_table(table)?;
        self.system
            .push((RETENTION_KEY, table_record(table, &policy.encode())));
        Ok(())
    }

    /// Stages a trim record: `table`'s history before `horizon` is dropped
    /// when this commits (compaction applying a retention policy).
    pub(crate) fn stage_trim(&mut self, table: &str, horizon: TxId) {
        self.system
            .push((TRIM_KEY, table_record(table, &horizon.0.to_le_bytes())));
    }

    /// The highest txid that this transaction's `key` records end with:
    /// the horizon its purge (`key = PURGE_KEY`) or trim records ask for.
    fn record_target(&self, key: &[u8]) -> Option<TxId> {
        self.system
            .iter()
            .filter(|(k, _)| *k == key)
            .filter_map(|(_, v)| {
                let txid: [u8; 8] = v.get(v.len().checked_sub(8)?..)?.try_into().ok()?;
                Some(u64::from_le_bytes(txid))
            })
            .max()
            .map(TxId)
    }

    /// Discards every write. Same as dropping the transaction.
    pub fn abort(self) {}

    /// Commits: returns the new txid, or `None` if the transaction changed
    /// nothing (no txid is consumed then).
    ///
    /// With [`Durability::Immediate`] the commit is on disk (fsynced) when
    /// this returns; with `Buffered` the OS has it. Fails with
    /// [`Error::Conflict`] if a transaction that committed after this one
    /// began wrote one of the same keys (first committer wins), and with
    /// [`Error::Poisoned`] after an earlier fsync failure.
    ///
    /// If the fsync itself fails, the commit returns an error and the
    /// database refuses further writes; whether that last frame reached the
    /// disk is unknown until the database is reopened.
    pub fn commit(self) -> Result<Option<TxId>> {
        self.shared.check_writable()?;
        let planned = self.plan()?;
        if planned.is_empty() && self.created_tables.is_empty() && self.system.is_empty() {
            // Nothing to write, but a write that looked like a no-op against
            // the begin snapshot still loses to a newer committed write.
            self.check_conflicts(&self.shared.read_index())?;
            return Ok(None);
        }
        let shared = Arc::clone(&self.shared);
        let in_flight = shared.durable.in_flight();
        let mut writer = shared.lock_writer();
        // Under the writer mutex the index changes only through us.
        let (txid, table_ids, new_tables) = {
            let index = shared.read_index();
            self.check_conflicts(&index)?;
            let mut table_ids: BTreeMap<&str, TableId> = BTreeMap::new();
            let mut new_tables: Vec<(TableId, &str)> = Vec::new();
            let system = (!self.system.is_empty()).then_some(SYSTEM_TABLE);
            let wanted = system
                .into_iter()
                .chain(planned.iter().map(|c| c.table.as_str()))
                .chain(self.created_tables.iter().map(String::as_str));
            for name in wanted {
                if table_ids.contains_key(name) {
                    continue;
                }
                let id = index.table_id(name).unwrap_or_else(|| {
                    let id = TableId(index.next_table_id().0 + new_tables.len() as u32);
                    new_tables.push((id, name));
                    id
                });
                table_ids.insert(name, id);
            }
            (index.last_txid().next(), table_ids, new_tables)
        };
        if planned.is_empty() && new_tables.is_empty() && self.system.is_empty() {
            // Every table it meant to create was created meanwhile.
            return Ok(None);
        }
        let commit_time = Timestamp::now().max(writer.last_commit_time);
        // System records first: an erasure applies before this
        // transaction's own writes.
        let system = self.system.iter().map(|(key, value)| ChangeToEncode {
            table: table_ids[SYSTEM_TABLE],
            op: Op::Insert,
            key,
            value: Some(value),
        });
        let changes: Vec<ChangeToEncode<'_>> = system
            .chain(planned.iter().map(|c| ChangeToEncode {
                table: table_ids[c.table.as_str()],
                op: c.op,
                key: &c.key,
                value: c.value.as_deref(),
            }))
            .collect();
        let encode = TxToEncode {
            txid,
            commit_time,
            meta: &self.meta,
            table_defs: &new_tables,
            changes: &changes,
        };
        let size = payload_size(&encode);
        if size > TX_SIZE_MAX {
            return Err(Error::TransactionTooLarge {
                size,
                max: TX_SIZE_MAX,
            });
        }
        let (frame, _) = encode_frame(&encode);
        shared.check_writable()?;
        // Purge and trim records move horizons. The pins stay held from the
        // check until the frame is indexed, so no view starts below a
        // horizon in the making (the pins lock, not the writer mutex, guards
        // new views). A purge raises the global horizon now and lowers it
        // again if the write fails.
        let purge = self.record_target(PURGE_KEY);
        let trim = self.record_target(TRIM_KEY);
        let mut hold = (purge.is_some() || trim.is_some()).then(|| shared.pins.hold());
        let mut raised_from = None;
        if let Some(hold) = &mut hold {
            if let Some(horizon) = trim {
                hold.check_unpinned_below(horizon)?;
            }
            if let Some(horizon) = purge {
                raised_from = Some(hold.raise_horizon(horizon)?);
            }
        }
        let location = match writer.log.append(&frame, txid, &shared.files) {
            Ok(location) => location,
            Err(e) => {
                if let (Some(hold), Some(previous)) = (&mut hold, raised_from) {
                    hold.restore_horizon(previous);
                }
                return Err(e);
            }
        };
        writer.last_commit_time = commit_time;
        if shared.config.history_runs {
            shared
                .sealer
                .appended(frame.len() as u64, shared.config.seal_log_bytes);
        }
        let decoded =
            decode_payload(&frame[FRAME_HEADER_SIZE..]).expect("a frame we just encoded decodes");
        let payload_len = (frame.len() - FRAME_HEADER_SIZE) as u32;
        let tail = {
            let mut index = shared.write_index();
            index
                .apply(location, payload_len, &decoded)
                .expect("a frame checked against the index applies to it");
            index.tail_estimate()
        };
        if shared.config.history_runs {
            shared.sealer.tail(tail, shared.config.tail_budget());
        }
        drop(hold);
        let immediate = self.durability == Durability::Immediate;
        let (active, active_path) = writer.log.active();
        shared
            .durable
            .record_written(txid, immediate, active, active_path);
        drop(writer);
        drop(in_flight);
        if !self.erased.is_empty() {
            // Erased bytes must not linger in memory either.
            shared.clear_cache();
        }
        shared
            .frames_since_checkpoint
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Outside the writer mutex, so concurrent committers share one fsync.
        shared.durable.wait(txid, immediate)?;
        Ok(Some(txid))
    }

    /// First committer wins: fails if any key this transaction wrote (even
    /// a write that changes nothing against its snapshot) has a version
    /// newer than the snapshot.
    fn check_conflicts(&self, index: &Index) -> Result<()> {
        let base = self.view.txid();
        // Erased keys are among the writes (as deletes).
        for (table, key, _) in self.written() {
            let mut newest = index
                .chain(table, key)
                .and_then(|c| c.last())
                .map(|v| v.txid());
            // A view older than the runs' end: the newest version may be
            // in a run (rare: a transaction open across a compaction).
            if newest.is_none()
                && base < index.base()
                && let (Some(runs), Some(id)) = (index.runs(), index.table_id(table))
            {
                newest = runs.get_at(id, key, TxId(u64::MAX))?.map(|v| v.txid);
            }
            // An erasure committed meanwhile counts as a write.
            let erased = index.erased_at(table, key);
            if newest.max(erased).is_some_and(|t| t > base) {
                return Err(Error::Conflict {
                    table: table.to_string(),
                    key: KeyBytes(key.to_vec()),
                });
            }
        }
        Ok(())
    }

    /// The net changes: each written key with its op and new value, minus
    /// writes that change nothing (a delete of a key that is not live, and
    /// unless configured otherwise, a put of the value the key already has).
    fn plan(&self) -> Result<Vec<PlannedChange>> {
        let mut planned = Vec::new();
        for (table, key, new) in self.written() {
            // An erased key has no history left: a write starts a new one.
            let erased = self
                .erased
                .get(table)
                .is_some_and(|keys| keys.contains(key));
            let was_live = !erased && self.view.contains(table, key)?;
            let op = match (was_live, new) {
                (false, None) => continue,
                (false, Some(_)) => Op::Insert,
                (true, Some(value)) => {
                    if !self.shared.config.record_identical_updates
                        && self.view.get(table, key)?.as_deref() == Some(value.as_slice())
                    {
                        continue;
                    }
                    Op::Update
                }
                (true, None) => Op::Delete,
            };
            planned.push(PlannedChange {
                table: table.to_string(),
                key: key.to_vec(),
                op,
                value: new.clone(),
            });
        }
        Ok(planned)
    }
}

/// Whether no key can lie between `start` and `end` (`BTreeMap::range`
/// panics on such bounds).
fn bounds_are_empty<T: Ord>(start: &Bound<T>, end: &Bound<T>) -> bool {
    match (start, end) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b))
        | (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

/// One net change, with its op worked out against the begin snapshot.
struct PlannedChange {
    table: String,
    key: Vec<u8>,
    op: Op,
    value: Option<Vec<u8>>,
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > KEY_SIZE_MAX {
        return Err(Error::KeyTooLarge {
            size: key.len(),
            max: KEY_SIZE_MAX,
        });
    }
    Ok(())
}

fn check_table_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name == SYSTEM_TABLE {
        "it is reserved for timecask's own records"
    } else if name.contains('\0') {
        "it contains a NUL byte"
    } else if name.len() > TABLE_NAME_SIZE_MAX {
        "it is longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidTableName {
        name: name.chars().take(64).collect(),
        reason,
    })
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTx")
            .field("base_txid", &self.view.txid())
            .field("n_writes", &self.written().count())
            .finish_non_exhaustive()
    }
}
