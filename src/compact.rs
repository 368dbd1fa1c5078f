//! Compaction: rewrites sealed segments without the versions that purges
//! and erasures removed from the index, while readers and writers go on.
//!
//! Crash safety: a segment is rewritten into `NNNNNNNNNN.tcseg.compact`,
//! fsynced, then renamed over the original and the directory fsynced. A
//! crash before the rename leaves a stray `.compact` file that the next open
//! deletes; after it, the new segment is complete. Either way the log says
//! the same thing: the dropped versions are also dropped by the purge and
//! erase records, which compaction always keeps. Segments are rewritten in
//! ascending order, so an erase record loses its key only after every
//! segment before it lost the erased versions.
//!
//! Readers are never blocked for I/O: the new file is swapped in, and the
//! index locations into it updated, under one short index write lock;
//! readers that located a version before the swap keep reading the old
//! file through their handle.

use std::path::{Path, PathBuf};

use crate::db::Db;
use crate::error::{Error, Result};
use crate::index::{SYSTEM_TABLE, compacted_system_value};
use crate::log::frame::{ChangeToEncode, FRAME_HEADER_SIZE, TxToEncode, encode_frame};
use crate::log::recovery::SegmentScan;
use crate::log::segment::{
    COMPACT_SUFFIX, SEGMENT_HEADER_SIZE, SegmentHeader, list_segments, segment_path,
};
use crate::record::CompactReport;
use crate::types::{SegmentId, TableId, TxId};

/// Where a kept version's value moved to.
struct MovedValue {
    table: TableId,
    key: Vec<u8>,
    txid: TxId,
    offset: u32,
}

/// Where a frame moved to.
struct MovedFrame {
    txid: TxId,
    offset: u32,
    payload_len: u32,
}

/// One rewritten segment, before it is swapped in.
struct Rewrite {
    bytes: Vec<u8>,
    values: Vec<MovedValue>,
    frames: Vec<MovedFrame>,
    dropped: u64,
    changed: bool,
}

impl Db {
    /// Applies retention policies, then moves everything committed so far
    /// out of the log into history runs (with
    /// [`Config::history_runs`](crate::Config::history_runs), the default)
    /// and merges every run into one, dropping for good what
    /// [`Db::purge_history`], retention and
    /// [`WriteTx::erase`](crate::WriteTx::erase) removed; without runs it
    /// rewrites sealed segments instead. Either way disk space comes back.
    /// Readers and writers continue meanwhile.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// for i in 0..10u8 {
    ///     let mut tx = db.begin();
    ///     tx.put("t", b"k", [i; 100])?;
    ///     tx.commit()?;
    /// }
    /// db.purge_history(db.latest_txid())?;
    /// let report = db.compact()?;
    /// assert_eq!(report.versions_dropped, 9);
    /// assert!(report.bytes_after < report.bytes_before);
    /// # Ok(()) }
    /// ```
    pub fn compact(&self) -> Result<CompactReport> {
        self.compact_with_progress(|_, _| {})
    }

    /// Moves everything committed so far out of the log into history runs,
    /// as the background sealer does each time the log grows by
    /// [`Config::seal_log_bytes`](crate::Config::seal_log_bytes): the new
    /// run is merged only with the newest runs, by size (each at most
    /// twice the size of those after it), so about log₂ of the history's
    /// size in runs stay live and each byte is rewritten O(log n) times.
    /// Unlike [`Db::compact`] it applies no retention policy and does not
    /// merge every run: purged and erased versions leave only the runs it
    /// merges (all of them when an erasure must leave the log). Without
    /// history runs it does nothing.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// let mut x = 1u64;
    /// let mut noise = || {
    ///     x ^= x << 13;
    ///     x ^= x >> 7;
    ///     x ^= x << 17;
    ///     x.to_le_bytes()
    /// };
    /// for n in [1000u32, 10] {
    ///     let mut tx = db.begin();
    ///     for i in 0..n {
    ///         tx.put("t", i.to_be_bytes(), noise())?;
    ///     }
    ///     tx.commit()?;
    ///     db.seal()?;
    /// }
    /// // The second run is far smaller than the first: kept apart.
    /// assert_eq!(db.stats().history_runs, 2);
    /// db.compact()?;
    /// assert_eq!(db.stats().history_runs, 1);
    /// # Ok(()) }
    /// ```
    pub fn seal(&self) -> Result<CompactReport> {
        if !self.shared.config.history_runs {
            self.shared.check_writable()?;
            return Ok(CompactReport::default());
        }
        crate::sealer::seal_now(&self.shared)
    }

    /// [`Db::compact`], calling `progress(segments_done, segments_total)`
    /// after each segment.
    pub fn compact_with_progress(
        &self,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<CompactReport> {
        let shared = &self.shared;
        let _one_at_a_time = shared.lock_maintenance();
        shared.check_writable()?;
        self.apply_retention_policies()?;
        let (active, next) = {
            let mut writer = shared.lock_writer();
            let next = shared.durable.written().next();
            (writer.log.seal(next, &shared.files)?, next)
        };
        // The checkpoint points into segments about to move.
        crate::checkpoint::remove(shared.config.storage.as_ref(), &shared.dir)?;
        if shared.config.history_runs {
            let mut report = CompactReport::default();
            shared.seal_history(active, TxId(next.0 - 1), true, &mut report)?;
            progress(1, 1);
            return Ok(report);
        }
        let sealed: Vec<SegmentId> = list_segments(&shared.dir)?
            .into_iter()
            .filter(|id| *id < active)
            .collect();
        let mut report = CompactReport {
            segments_scanned: sealed.len(),
            ..CompactReport::default()
        };
        for (done, &id) in sealed.iter().enumerate() {
            let path = segment_path(&shared.dir, id);
            let file = shared.files.handle(id)?;
            let size = file.len().map_err(|e| Error::io(&path, e))?;
            let rewrite = self.rewrite_segment(id, &path, size)?;
            if rewrite.changed {
                self.swap_in(id, &path, &rewrite)?;
                report.segments_rewritten += 1;
                report.versions_dropped += rewrite.dropped;
                report.bytes_before += size;
                report.bytes_after += rewrite.bytes.len() as u64;
            }
            progress(done + 1, sealed.len());
        }
        Ok(report)
    }

    /// Trims every table that has a retention policy to the horizon the
    /// policy allows now, in one durable transaction of trim records. A
    /// horizon never passes a live view; if one appears meanwhile the trim
    /// waits for the next compaction.
    fn apply_retention_policies(&self) -> Result<()> {
        let shared = &self.shared;
        let now = crate::types::Timestamp::now();
        let trims: Vec<(String, TxId)> = {
            let index = shared.read_index();
            let limit = shared
                .pins
                .oldest()
                .unwrap_or(TxId(u64::MAX))
                .min(index.last_txid());
            let runs = index.runs().cloned();
            let mut trims = Vec::new();
            for (name, policy, current) in index.retention_policies() {
                let sealed_needed = match (&runs, policy.keep_last) {
                    (Some(runs), Some(n)) => keep_last_needed(&index, runs, &name, n)?,
                    _ => TxId::ZERO,
                };
                let at_time = |time| {
                    runs.as_ref()
                        .map_or(Ok(TxId::ZERO), |r| r.txid_at_time(time))
                };
                let mut failed = None;
                let horizon = index
                    .retention_horizon(
                        &name,
                        policy,
                        now,
                        |time| {
                            at_time(time).unwrap_or_else(|e| {
                                failed = Some(e);
                                TxId::ZERO
                            })
                        },
                        sealed_needed,
                    )
                    .min(limit);
                if let Some(e) = failed {
                    return Err(e);
                }
                if horizon > current {
                    trims.push((name, horizon));
                }
            }
            trims
        };
        if trims.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin();
        tx.set_durability(crate::Durability::Immediate);
        tx.set_meta("reason", "retention policy")
            .expect("a short metadata entry fits");
        for (table, horizon) in &trims {
            tx.stage_trim(table, *horizon);
        }
        match tx.commit() {
            Ok(_) | Err(Error::HistoryInUse { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Re-encodes every frame of segment `id`, keeping the versions the
    /// index still has and every system record (erase records without
    /// their key).
    fn rewrite_segment(&self, id: SegmentId, path: &Path, size: u64) -> Result<Rewrite> {
        let shared = &self.shared;
        let file = shared.files.handle(id)?;
        let mut header = [0; SEGMENT_HEADER_SIZE];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| Error::io(path, e))?;
        let header = SegmentHeader::decode(&header, path)?;
        let mut out = Rewrite {
            bytes: header.encode().to_vec(),
            values: Vec::new(),
            frames: Vec::new(),
            dropped: 0,
            changed: false,
        };
        let mut scan = SegmentScan::new(path, id, size, header.first_txid);
        let end = scan.run(file.as_ref(), &mut |_, _, tx| {
            // Which changes stay, decided under one short index read lock:
            // (change, its rewritten value if any, whether it is a version).
            let mut keep = Vec::with_capacity(tx.changes.len());
            {
                let index = shared.read_index();
                for change in &tx.changes {
                    let table = index.table_name(change.table);
                    if table == Some(SYSTEM_TABLE) {
                        let value = change.value.unwrap_or_default();
                        let compacted = compacted_system_value(change.key, value);
                        let compacted = (compacted != value).then_some(compacted);
                        keep.push((change, compacted, false));
                        continue;
                    }
                    if index.has_version(change.table, change.key, tx.txid) {
                        keep.push((change, None, true));
                    } else {
                        out.dropped += 1;
                    }
                }
            }
            out.changed |=
                keep.len() != tx.changes.len() || keep.iter().any(|(_, c, _)| c.is_some());
            let changes: Vec<ChangeToEncode<'_>> = keep
                .iter()
                .map(|(c, compacted, _)| ChangeToEncode {
                    table: c.table,
                    op: c.op,
                    key: c.key,
                    value: compacted.as_deref().or(c.value),
                })
                .collect();
            let (frame, value_offsets) = encode_frame(&TxToEncode {
                txid: tx.txid,
                commit_time: tx.commit_time,
                meta: &tx.meta,
                table_defs: &tx.table_defs,
                changes: &changes,
            });
            let frame_offset = u32::try_from(out.bytes.len())
                .map_err(|_| Error::corrupt(path, 0, "segment too large"))?;
            for ((change, _, is_version), value_offset) in keep.iter().zip(value_offsets) {
                if *is_version {
                    out.values.push(MovedValue {
                        table: change.table,
                        key: change.key.to_vec(),
                        txid: tx.txid,
                        offset: frame_offset + value_offset,
                    });
                }
            }
            out.frames.push(MovedFrame {
                txid: tx.txid,
                offset: frame_offset,
                payload_len: (frame.len() - FRAME_HEADER_SIZE) as u32,
            });
            out.bytes.extend_from_slice(&frame);
            Ok(())
        })?;
        if end != size {
            return Err(Error::corrupt(
                path,
                end,
                "damaged frame in a sealed segment",
            ));
        }
        Ok(out)
    }

    /// Makes a rewritten segment durable, renames it over the original and
    /// points the index at it.
    fn swap_in(&self, id: SegmentId, path: &Path, rewrite: &Rewrite) -> Result<()> {
        let shared = &self.shared;
        let storage = &shared.config.storage;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(COMPACT_SUFFIX);
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let file = storage.open(&tmp, true).map_err(|e| Error::io(&tmp, e))?;
        let written = file
            .write_all_at(&rewrite.bytes, 0)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(&tmp, e))
            .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
        if let Err(e) = written {
            // On a full disk the partial rewrite holds the space: give it
            // back now, not at the next open. The segment is untouched.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        storage
            .sync_dir(&shared.dir)
            .map_err(|e| Error::io(&shared.dir, e))?;
        let mut index = shared.write_index();
        shared.files.insert(id, file);
        shared.clear_cache();
        for moved in &rewrite.values {
            // A version purged or erased since the rewrite is simply gone.
            if let Some(chain) = index.chain_mut(moved.table, &moved.key)
                && let Ok(i) = chain.binary_search_by_key(&moved.txid, |v| v.txid())
            {
                chain[i] = chain[i].with_offset(moved.offset);
            }
        }
        for moved in &rewrite.frames {
            if let Some(info) = index.tx_mut(moved.txid) {
                info.frame_offset = moved.offset;
                info.payload_len = moved.payload_len;
            }
        }
        Ok(())
    }
}

/// The keep-last horizon the versions of the runs ask for in table `name`:
/// over every key the runs hold, the txid of its `n`th newest visible
/// version, counting its tail versions too (the tail alone is the index's
/// to count). Versions a purge, trim or erasure hides do not count.
fn keep_last_needed(
    index: &crate::index::Index,
    runs: &crate::sealed::RunSet,
    name: &str,
    n: u32,
) -> Result<TxId> {
    let Some(id) = index.table_id(name) else {
        return Ok(TxId::ZERO);
    };
    let table = index.table(id);
    let drops = index.drops();
    let n = n.max(1) as usize;
    let mut needed = TxId::ZERO;
    // One key's visible txids at a time, in order, then its tail's.
    let mut current: Option<Vec<u8>> = None;
    let mut txids: Vec<TxId> = Vec::new();
    let mut finish = |key: &[u8], txids: &mut Vec<TxId>| {
        if let Some(chain) = table.keys.get(key) {
            txids.extend(chain.iter().map(|v| v.txid()));
        }
        if txids.len() > n {
            needed = needed.max(txids[txids.len() - n]);
        }
        txids.clear();
    };
    let inputs: Vec<&crate::runs::Run> = runs.runs().iter().map(|r| &**r).collect();
    crate::runs::for_each_with_next(&inputs, |v, next| {
        if v.table != id {
            return Ok(());
        }
        if current.as_deref() != Some(v.key.as_slice()) {
            if let Some(k) = current.take() {
                finish(&k, &mut txids);
            }
            current = Some(v.key.clone());
        }
        if drops.keep(&v, next) {
            txids.push(v.txid);
        }
        Ok(())
    })?;
    if let Some(k) = current.take() {
        finish(&k, &mut txids);
    }
    Ok(needed)
}
