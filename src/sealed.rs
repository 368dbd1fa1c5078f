//! The sealed history: the set of live history runs the manifest lists,
//! as one immutable value readers clone under the index lock.
//!
//! A [`RunSet`] answers for txids up to [`RunSet::through`]; the index (the
//! tail) answers for every later one. It never changes once built:
//! compaction builds a new one and swaps it in under the index write lock,
//! together with dropping the sealed versions from the tail, so a reader
//! that takes both under one read lock sees every version exactly once.
//! Readers do their run I/O after releasing the lock, on their clone; the
//! files stay open as long as a clone holds them, even after compaction
//! deleted them.
//!
//! **Invariant:** a `RunSet` knows nothing of purges, trims or erasures:
//! it returns what its runs hold, and the engine hides what those removed
//! until compaction drops it physically.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::manifest::{Manifest, RunEntry, run_file_name};
use crate::runs::{
    BlockCache, Direction, KeyVersion, Run, ScanBatch, TxEntry, VersionEntry, for_each_with_next,
};
use crate::storage::Storage;
use crate::types::{TableId, Timestamp, TxId};

/// A history's read of its first run that took this long waited for the
/// disk: the other runs' blocks of the key are then prefetched together.
/// A warm read of a run's span takes a few microseconds, a page read from
/// an SSD tens to hundreds.
const COLD_READ: std::time::Duration = std::time::Duration::from_micros(25);

/// Bytes of the suffix a system record's key gets in a run.
pub(crate) const SYSTEM_KEY_SUFFIX: usize = 5;

/// The key a system record gets in a run: unique within its transaction.
pub(crate) fn system_run_key(key: &[u8], ordinal: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + SYSTEM_KEY_SUFFIX);
    out.extend_from_slice(key);
    out.push(0);
    out.extend_from_slice(&ordinal.to_le_bytes());
    out
}

/// The log's key of a system record stored in a run.
pub(crate) fn system_log_key(run_key: &[u8]) -> &[u8] {
    &run_key[..run_key.len().saturating_sub(SYSTEM_KEY_SUFFIX)]
}

/// Never-reused names of open runs in the block cache.
static NEXT_RUN_UID: AtomicU64 = AtomicU64::new(1);

/// A uid for a newly opened run.
pub(crate) fn next_run_uid() -> u64 {
    NEXT_RUN_UID.fetch_add(1, Ordering::Relaxed)
}

/// The live runs, oldest first, adjacent by txid.
#[derive(Debug)]
pub(crate) struct RunSet {
    /// Never reused: names this set in caches of what was computed on it.
    id: u64,
    runs: Vec<Arc<Run>>,
    cache: Arc<BlockCache>,
}

impl RunSet {
    /// No runs.
    pub(crate) fn empty(cache: Arc<BlockCache>) -> RunSet {
        RunSet {
            id: next_run_uid(),
            runs: Vec::new(),
            cache,
        }
    }

    /// Opens the runs `manifest` lists in `dir`, checking each against its
    /// entry (range and length).
    pub(crate) fn open(
        storage: &dyn Storage,
        dir: &Path,
        manifest: &Manifest,
        cache: Arc<BlockCache>,
    ) -> Result<RunSet> {
        let mut runs = Vec::with_capacity(manifest.runs.len());
        for entry in &manifest.runs {
            runs.push(Arc::new(open_listed(storage, dir, entry, &cache)?));
        }
        Ok(RunSet {
            id: next_run_uid(),
            runs,
            cache,
        })
    }

    /// The runs `manifest` lists, sharing with this set the ones it has
    /// open already (same file, range and length) and opening the others:
    /// a follower's view of the runs after the writer switched the
    /// manifest.
    pub(crate) fn reopen(
        &self,
        storage: &dyn Storage,
        dir: &Path,
        manifest: &Manifest,
    ) -> Result<RunSet> {
        let mut runs = Vec::with_capacity(manifest.runs.len());
        for entry in &manifest.runs {
            let path = dir.join(run_file_name(entry.file_number));
            let open = self.runs.iter().find(|r| {
                let s = r.summary();
                r.path() == path
                    && s.first_txid == entry.first_txid
                    && s.last_txid == entry.last_txid
                    && s.file_bytes == entry.file_bytes
            });
            runs.push(match open {
                Some(run) => Arc::clone(run),
                None => Arc::new(open_listed(storage, dir, entry, &self.cache)?),
            });
        }
        Ok(RunSet {
            id: next_run_uid(),
            runs,
            cache: Arc::clone(&self.cache),
        })
    }

    /// A set with `runs` (oldest first, adjacent) in place of these.
    pub(crate) fn with_runs(&self, runs: Vec<Arc<Run>>) -> RunSet {
        RunSet {
            id: next_run_uid(),
            runs,
            cache: Arc::clone(&self.cache),
        }
    }

    /// This set's never-reused id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The runs, oldest first.
    pub(crate) fn runs(&self) -> &[Arc<Run>] {
        &self.runs
    }

    /// The block cache the runs read through.
    pub(crate) fn cache(&self) -> &Arc<BlockCache> {
        &self.cache
    }

    /// Whether there are no runs.
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Versions held across the runs (before read-time filtering).
    pub(crate) fn n_versions(&self) -> u64 {
        self.runs.iter().map(|r| r.summary().n_versions).sum()
    }

    /// Bytes of the run files.
    pub(crate) fn file_bytes(&self) -> u64 {
        self.runs.iter().map(|r| r.summary().file_bytes).sum()
    }

    /// The last version of `key` with a txid at most `at`, newest run first.
    pub(crate) fn get_at(
        &self,
        table: TableId,
        key: &[u8],
        at: TxId,
    ) -> Result<Option<VersionEntry>> {
        for run in self.runs.iter().rev() {
            if run.summary().first_txid > at {
                continue;
            }
            if let Some(v) = run.get_at(table, key, at)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Calls `out` with every version of `key` with a txid at most `upto`,
    /// oldest first. Reads the oldest run first and prefetches the others
    /// only if that read waited for the disk ([`COLD_READ`]).
    pub(crate) fn versions_upto(
        &self,
        table: TableId,
        key: &[u8],
        upto: TxId,
        mut out: impl FnMut(KeyVersion<'_>),
    ) -> Result<()> {
        let runs: Vec<&Arc<Run>> = self
            .runs
            .iter()
            .take_while(|r| r.summary().first_txid <= upto)
            .collect();
        // Index pages not loaded yet are read for all runs at once; their
        // runs' blocks are then probably not in memory either, and are
        // read at once too (for one run as well: one round of I/O for the
        // span's blocks instead of one per page of them the read touches).
        let mut cold = false;
        for run in &runs {
            cold |= run.prefetch_index_page(table, key);
        }
        let mut spans = Vec::with_capacity(runs.len());
        for run in runs {
            if let Some(span) = run.key_span(table, key, upto)? {
                spans.push((run, span));
            }
        }
        if cold {
            for (run, span) in &spans {
                run.prefetch_span(*span);
            }
        }
        let several = spans.len() > 1;
        let mut spans = spans.into_iter();
        if let Some((run, span)) = spans.next() {
            // The oldest (largest) run first. If its read waited for the
            // disk, the others are read from disk too, probably: start all
            // their reads at once so the history waits for one more round
            // of I/O, not one per run. A warm read makes no system call.
            let started = several.then(std::time::Instant::now);
            run.versions_in_span(span, table, key, upto, &mut out)?;
            if !cold && started.is_some_and(|t| t.elapsed() >= COLD_READ) {
                for (run, span) in spans.clone() {
                    run.prefetch_span(span);
                }
            }
        }
        for (run, span) in spans {
            run.versions_in_span(span, table, key, upto, &mut out)?;
        }
        Ok(())
    }

    /// The txid of the first version of `key` after `after` and at most
    /// `upto` in the runs, if any.
    pub(crate) fn successor(
        &self,
        table: TableId,
        key: &[u8],
        after: TxId,
        upto: TxId,
    ) -> Result<Option<TxId>> {
        let Some(from) = after.0.checked_add(1).map(TxId) else {
            return Ok(None);
        };
        for run in &self.runs {
            let s = run.summary();
            if s.last_txid < from {
                continue;
            }
            if s.first_txid > upto {
                break;
            }
            let found = run.history(table, key, from..=upto, 2, Direction::Forward)?;
            if let Some(v) = found.iter().find(|v| v.txid >= from) {
                return Ok(Some(v.txid));
            }
        }
        Ok(None)
    }

    /// The tx record of `txid` and the run that holds it.
    pub(crate) fn tx(&self, txid: TxId) -> Result<Option<(TxEntry, &Arc<Run>)>> {
        let i = self.runs.partition_point(|r| r.summary().last_txid < txid);
        match self.runs.get(i) {
            Some(run) => Ok(run.tx(txid)?.map(|tx| (tx, run))),
            None => Ok(None),
        }
    }

    /// The last txid committed at or before `time` among the runs (0 if
    /// none).
    pub(crate) fn txid_at_time(&self, time: Timestamp) -> Result<TxId> {
        for run in self.runs.iter().rev() {
            if let Some(txid) = run.txid_at_time(time)? {
                return Ok(txid);
            }
        }
        Ok(TxId::ZERO)
    }

    /// One batch of a key-range scan at `at` across every run: for each
    /// key decided, the latest version at most `at` from the newest run
    /// that has one. Keys are decided up to the returned bound (inclusive,
    /// in scan direction); `None` means every run is exhausted and all
    /// keys of the range are in the batch.
    pub(crate) fn scan(
        &self,
        table: TableId,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        at: TxId,
        forward: bool,
        max_keys: usize,
    ) -> Result<(Vec<VersionEntry>, Option<Vec<u8>>)> {
        let mut batches: Vec<ScanBatch> = Vec::new();
        for run in self.runs.iter().rev() {
            if run.summary().first_txid > at {
                continue;
            }
            batches.push(run.scan_visible(table, lower, upper, at, forward, max_keys)?);
        }
        // Keys are decided up to the nearest end of any batch that stopped
        // early: beyond it, that run may hold keys not yet seen.
        let mut bound: Option<Vec<u8>> = None;
        for b in batches.iter().filter(|b| !b.exhausted) {
            let last = b.last_key.as_ref().ok_or_else(|| {
                Error::corrupt(Path::new(""), 0, "a run scan stopped without naming where")
            })?;
            let nearer = match &bound {
                None => true,
                Some(cur) => (forward && last < cur) || (!forward && last > cur),
            };
            if nearer {
                bound = Some(last.clone());
            }
        }
        let within = |key: &[u8]| match &bound {
            None => true,
            Some(b) => (forward && key <= b.as_slice()) || (!forward && key >= b.as_slice()),
        };
        // Newest run first: the first entry seen for a key wins.
        let mut out: Vec<VersionEntry> = Vec::new();
        for batch in batches {
            for e in batch.entries {
                if within(&e.key) {
                    out.push(e);
                }
            }
        }
        // Stable sort keeps the newest run's entry first among equal keys.
        if forward {
            out.sort_by(|a, b| a.key.cmp(&b.key));
        } else {
            out.sort_by(|a, b| b.key.cmp(&a.key));
        }
        out.dedup_by(|later, first| later.key == first.key);
        Ok((out, bound))
    }
}

/// Opens one listed run and checks it is the one the manifest names.
fn open_listed(
    storage: &dyn Storage,
    dir: &Path,
    entry: &RunEntry,
    cache: &Arc<BlockCache>,
) -> Result<Run> {
    let path = dir.join(run_file_name(entry.file_number));
    let run = Run::open(storage, &path, next_run_uid(), Arc::clone(cache))?;
    let s = run.summary();
    if s.first_txid != entry.first_txid
        || s.last_txid != entry.last_txid
        || s.file_bytes != entry.file_bytes
    {
        return Err(Error::corrupt(
            &path,
            0,
            format!(
                "run holds txids {}..={} in {} bytes; the manifest lists {}..={} in {} bytes",
                s.first_txid,
                s.last_txid,
                s.file_bytes,
                entry.first_txid,
                entry.last_txid,
                entry.file_bytes
            ),
        ));
    }
    Ok(run)
}

/// What purges, retention trims and erasures hide of the runs until a
/// merge drops it: taken from the index under its lock.
pub(crate) struct Drops {
    purge: TxId,
    table_horizons: Vec<TxId>,
    erased: HashMap<(TableId, Vec<u8>), TxId>,
    system: Option<TableId>,
    /// The first tail version of each key, where a horizon is set: the
    /// successor of a key's last run version.
    tail_first: HashMap<(TableId, Vec<u8>), TxId>,
}

impl Drops {
    /// What is hidden: the purge horizon, each table's horizon (by id),
    /// erasures by `(table, key)`, the system table, and the first tail
    /// version of each key (needed only where a horizon is set).
    pub(crate) fn new(
        purge: TxId,
        table_horizons: Vec<TxId>,
        erased: HashMap<(TableId, Vec<u8>), TxId>,
        system: Option<TableId>,
        tail_first: HashMap<(TableId, Vec<u8>), TxId>,
    ) -> Drops {
        Drops {
            purge,
            table_horizons,
            erased,
            system,
            tail_first,
        }
    }

    /// The purge horizon in force.
    pub(crate) fn purge(&self) -> TxId {
        self.purge
    }

    /// Whether an erasure committed after `txid` is in force.
    pub(crate) fn erases_after(&self, txid: TxId) -> bool {
        self.erased.values().any(|at| *at > txid)
    }

    /// A fingerprint of the purge and table horizons (0 when neither
    /// hides anything): equal fingerprints mean a merge of every run under
    /// these drops would remove nothing the last full merge did not. A
    /// collision only delays the physical drop: reads hide the versions
    /// either way.
    pub(crate) fn horizons_fingerprint(&self) -> u64 {
        if self.purge == TxId::ZERO && self.table_horizons.iter().all(|h| *h == TxId::ZERO) {
            return 0;
        }
        // FNV-1a over the purge horizon and each (table id, horizon) set.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |n: u64| {
            for b in n.to_le_bytes() {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        };
        eat(self.purge.0);
        for (id, h) in self.table_horizons.iter().enumerate() {
            if *h > TxId::ZERO {
                eat(id as u64);
                eat(h.0);
            }
        }
        hash.max(1)
    }

    /// Whether anything at all is hidden.
    pub(crate) fn anything(&self) -> bool {
        self.purge > TxId::ZERO
            || self.table_horizons.iter().any(|h| *h > TxId::ZERO)
            || !self.erased.is_empty()
    }

    /// Whether `v` stays, given the next version of its key in the runs
    /// (the tail's first one stands in when there is none). System records
    /// always stay.
    pub(crate) fn keep(&self, v: &VersionEntry, next: Option<&VersionEntry>) -> bool {
        if Some(v.table) == self.system {
            return true;
        }
        let horizon = self
            .table_horizons
            .get(v.table.0 as usize)
            .copied()
            .unwrap_or_default()
            .max(self.purge);
        if horizon > v.txid {
            let next = match next {
                Some(n) => Some(n.txid),
                // Only a later tail version: while sealing, the tail still
                // holds the versions being sealed (`v` itself, perhaps).
                None => self
                    .tail_first
                    .get(&(v.table, v.key.clone()))
                    .copied()
                    .filter(|t| *t > v.txid),
            };
            if next.is_some_and(|n| n <= horizon) {
                return false;
            }
        }
        self.erased
            .get(&(v.table, v.key.clone()))
            .is_none_or(|at| v.txid >= *at)
    }

    /// Whether `v` is a system record (not a version readers count).
    pub(crate) fn is_system(&self, v: &VersionEntry) -> bool {
        Some(v.table) == self.system
    }
}

impl RunSet {
    /// The versions of the runs a reader can see under `drops`: every one
    /// not hidden, system records left out. Reads every run once when
    /// something is hidden that merges may not have dropped yet, else only
    /// the system table's blocks.
    pub(crate) fn count_visible(&self, drops: &Drops, all_dropped: bool) -> Result<u64> {
        if all_dropped || !drops.anything() {
            // Nothing hidden, or every hidden version already dropped by a
            // merge (`all_dropped`, the caller's knowledge): the footers'
            // counts less the system records, which only the system
            // table's blocks hold.
            let mut n = 0;
            for run in &self.runs {
                let system = match drops.system {
                    Some(id) => run.count_in_table(id)?,
                    None => 0,
                };
                n += run.summary().n_versions - system;
            }
            return Ok(n);
        }
        let runs: Vec<&Run> = self.runs.iter().map(|r| &**r).collect();
        let mut n = 0;
        for_each_with_next(&runs, |v, next| {
            if !drops.is_system(&v) && drops.keep(&v, next) {
                n += 1;
            }
            Ok(())
        })?;
        Ok(n)
    }
}
