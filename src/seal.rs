//! Sealing: [`Db::compact`] moves the history of sealed log segments into
//! history runs and deletes the segments.
//!
//! Each sealed segment becomes one run (its frames re-read, CRC-checked,
//! and their surviving versions sorted by `(table, key, txid)`: memory is
//! bounded by one segment). The new runs are merged into one; that run is
//! merged with the older runs when something must be dropped physically
//! (a purge, a retention trim, an erasure) or there are more than
//! [`RUNS_MAX`]. Then the manifest is switched, the index drops the sealed
//! versions under one write lock, and the replaced runs and segments are
//! deleted.
//!
//! Crash safety: every run is fsynced before the manifest names it, and
//! nothing the old manifest names is deleted before the new one is
//! installed. A crash before the install leaves unlisted runs, which the
//! next writer's open removes; after it, segments and runs the manifest no
//! longer covers, removed the same way.
//!
//! System records (purges, erasures, retention) are kept in runs as
//! versions of the system table whose key carries a suffix `0x00` + `u32`
//! LE ordinal within the transaction (a transaction may hold several
//! records with one key); their values are compacted as in the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::RunCompression;
use crate::engine::Shared;
use crate::error::{Error, Result};
use crate::index::{SYSTEM_TABLE, compacted_system_value};
use crate::log::frame::encode_meta;
use crate::log::recovery::SegmentScan;
use crate::log::segment::{SEGMENT_HEADER_SIZE, SegmentHeader, segment_path};
use crate::manifest::{self, RunEntry, run_file_name};
use crate::record::CompactReport;
use crate::runs::{
    Compression, MetaRef, Run, RunConfig, RunRange, RunWriter, TxChange, TxEntry, VersionEntry,
    merge,
};
use crate::sealed::{RunSet, next_run_uid, system_run_key};
use crate::types::{Op, SegmentId, Timestamp, TxId};

/// Most runs kept side by side before they are merged into one.
pub(crate) const RUNS_MAX: usize = 16;

impl Shared {
    /// Seals everything below segment `active` (txids up to `through`)
    /// into runs; see the module docs. With `merge_all` (compaction),
    /// every run is merged into one; otherwise only the newest runs are, by
    /// size (background sealing), or all when something must be dropped.
    /// The caller holds the maintenance lock.
    pub(crate) fn seal_history(
        &self,
        active: SegmentId,
        through: TxId,
        merge_all: bool,
        report: &mut CompactReport,
    ) -> Result<()> {
        let shared = self;
        let storage = shared.config.storage.as_ref();
        let dir = &shared.dir;
        let config = RunConfig {
            block_target_bytes: shared.config.run_block_bytes,
            compression: match shared.config.run_compression {
                RunCompression::None => Compression::None,
                RunCompression::Lz4 => Compression::Lz4,
                RunCompression::Zstd => Compression::Zstd { level: 3 },
            },
            bloom_bits_per_key: 10,
            index_page_entries: shared.config.run_index_page_entries,
        };
        let mut manifest = shared.lock_manifest().clone();
        let (old, base, drops) = {
            let index = shared.read_index();
            let drops = index.drops();
            let old = index
                .run_set()
                .cloned()
                .unwrap_or_else(|| Arc::new(RunSet::empty(Arc::clone(&shared.block_cache))));
            (old, index.base(), drops)
        };
        let mut created: Vec<PathBuf> = Vec::new();
        let result = (|| -> Result<Vec<Arc<Run>>> {
            // One run per sealed segment not yet in runs.
            let mut fresh: Vec<Run> = Vec::new();
            for id in shared.files.ids() {
                if id >= active {
                    break;
                }
                report.segments_scanned += 1;
                let path = dir.join(run_file_name(manifest.next_file_number));
                // Listed before it is written, so a failure removes it.
                created.push(path.clone());
                match shared.segment_run(id, &path, config, &mut report.versions_dropped)? {
                    Some(run) => {
                        manifest.next_file_number += 1;
                        fresh.push(run);
                        report.segments_rewritten += 1;
                    }
                    None => {
                        created.pop();
                    }
                }
            }
            let mut runs: Vec<Arc<Run>> = old.runs().to_vec();
            let fresh = match fresh.len() {
                0 => None,
                1 => fresh.pop(),
                _ => {
                    let path = dir.join(run_file_name(manifest.next_file_number));
                    manifest.next_file_number += 1;
                    created.push(path.clone());
                    Some(merge_runs(
                        storage,
                        &path,
                        &fresh.iter().collect::<Vec<_>>(),
                        config,
                        |_, _| true,
                        &old,
                    )?)
                }
            };
            if let Some(run) = fresh {
                runs.push(Arc::new(run));
            }
            // An erasure newer than the old runs may have versions in them:
            // they go before its record leaves the log (the manifest does
            // not keep erasures). Older ones were dropped when sealed.
            // A horizon that moved since the last merge of every run:
            // compaction merges them all to drop what it hides.
            let fingerprint = drops.horizons_fingerprint();
            let horizons_moved = fingerprint != manifest.drops_applied;
            let must_drop =
                !old.is_empty() && (drops.erases_after(base) || (merge_all && horizons_moved));
            // Compaction merges every run into one (a history read then
            // searches one run); background sealing merges by size.
            let from = if merge_all || must_drop || runs.len() > RUNS_MAX {
                0
            } else {
                merge_from(&runs)
            };
            let rewrite = runs.len() - from > 1 || (must_drop && runs.len() == 1);
            // Every run passed `drops` if there were no old runs (the tail
            // index had dropped what they hide) or all are merged now.
            if old.is_empty() || (from == 0 && rewrite) {
                manifest.drops_applied = fingerprint;
            }
            if rewrite {
                let runs_all = std::mem::take(&mut runs);
                let (keep_as_is, to_merge) = runs_all.split_at(from);
                runs = keep_as_is.to_vec();
                let path = dir.join(run_file_name(manifest.next_file_number));
                manifest.next_file_number += 1;
                created.push(path.clone());
                let before: u64 = to_merge.iter().map(|r| r.summary().n_versions).sum();
                let inputs: Vec<&Run> = to_merge.iter().map(|r| &**r).collect();
                let merged = merge_runs(
                    storage,
                    &path,
                    &inputs,
                    config,
                    |v, next| drops.keep(v, next),
                    &old,
                )?;
                report.versions_dropped += before - merged.summary().n_versions;
                runs.push(Arc::new(merged));
            }
            Ok(runs)
        })();
        let runs = match result {
            Ok(runs) => runs,
            Err(e) => {
                for path in &created {
                    let _ = storage.remove_file(path);
                }
                return Err(e);
            }
        };
        // Nothing sealed and nothing merged: the manifest stays as it is.
        let unchanged = runs.len() == old.runs().len()
            && runs.iter().zip(old.runs()).all(|(a, b)| Arc::ptr_eq(a, b));
        if unchanged && through <= base {
            return Ok(());
        }
        let (runs_through, runs_through_time) =
            runs.last().map_or((TxId::ZERO, Timestamp::default()), |r| {
                (r.summary().last_txid, r.summary().last_commit_time)
            });
        if runs_through != through && through > TxId::ZERO {
            return Err(Error::corrupt(
                dir,
                0,
                format!("sealed segments end at txid {runs_through}, the log at {through}"),
            ));
        }
        let index_tables = shared.read_index().manifest_tables();
        manifest.seq += 1;
        manifest.runs_through = runs_through;
        manifest.runs_through_time = runs_through_time;
        manifest.log_first_segment = active;
        manifest.log_first_txid = runs_through.next();
        manifest.purge_horizon = drops.purge();
        manifest.tables = index_tables
            .into_iter()
            .filter(|t| t.created <= runs_through)
            .collect();
        manifest.runs = runs
            .iter()
            .map(|r| {
                let s = r.summary();
                Ok(RunEntry {
                    file_number: run_number(r.path())?,
                    first_txid: s.first_txid,
                    last_txid: s.last_txid,
                    file_bytes: s.file_bytes,
                })
            })
            .collect::<Result<_>>()?;
        // A failed install may still have switched the manifest (the
        // rename done, the directory fsync failed): then the new one is in
        // force, nothing either names is deleted, and the error returned.
        let installed = manifest::install(storage, dir, &manifest);
        if let Err(e) = installed {
            let on_disk = manifest::load(storage, dir).ok().flatten();
            if on_disk.is_none_or(|m| m.seq != manifest.seq) {
                for path in &created {
                    let _ = storage.remove_file(path);
                }
                return Err(e);
            }
            let mut index = shared.write_index();
            index.seal_through(runs_through.max(base), Arc::new(old.with_runs(runs)));
            shared.files.remove_below(active);
            drop(index);
            *shared.lock_manifest() = manifest;
            shared.clear_cache();
            return Err(e);
        }
        let kept: Vec<PathBuf> = runs.iter().map(|r| r.path().to_path_buf()).collect();
        let replaced: Vec<PathBuf> = old
            .runs()
            .iter()
            .map(|r| r.path().to_path_buf())
            .chain(created.iter().cloned())
            .filter(|p| !kept.contains(p))
            .collect();
        let sealed: Vec<SegmentId> = shared
            .files
            .ids()
            .into_iter()
            .filter(|id| *id < active)
            .collect();
        {
            let mut index = shared.write_index();
            index.seal_through(runs_through.max(base), Arc::new(old.with_runs(runs)));
            shared.files.remove_below(active);
        }
        *shared.lock_manifest() = manifest;
        // Before: the sealed segments and the runs replaced; after: the
        // runs that replaced them.
        let new_bytes = shared.read_index().runs().map_or(0, |r| r.file_bytes());
        let kept_old: u64 = old
            .runs()
            .iter()
            .filter(|r| kept.iter().any(|k| k == r.path()))
            .map(|r| r.summary().file_bytes)
            .sum();
        report.bytes_before += old.file_bytes() - kept_old;
        report.bytes_after = new_bytes - kept_old;
        shared.clear_cache();
        for path in replaced {
            let _ = storage.remove_file(&path);
        }
        for id in sealed {
            let path = segment_path(dir, id);
            if let Ok(file) = std::fs::metadata(&path) {
                report.bytes_before += file.len();
            }
            let _ = storage.remove_file(&path);
        }
        let _ = storage.sync_dir(dir);
        Ok(())
    }

    /// Builds the run of one sealed segment at `path`: its frames' tx
    /// records and surviving versions. `None` if it holds no frame.
    fn segment_run(
        &self,
        id: SegmentId,
        path: &Path,
        config: RunConfig,
        dropped: &mut u64,
    ) -> Result<Option<Run>> {
        let shared = self;
        let seg_path = segment_path(&shared.dir, id);
        let file = shared.files.handle(id)?;
        let size = file.len().map_err(|e| Error::io(&seg_path, e))?;
        let mut header = [0; SEGMENT_HEADER_SIZE];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| Error::io(&seg_path, e))?;
        let header = SegmentHeader::decode(&header, &seg_path)?;
        let mut versions: Vec<VersionEntry> = Vec::new();
        let mut txs: Vec<TxEntry> = Vec::new();
        let mut scan = SegmentScan::new(&seg_path, id, size, header.first_txid);
        let end = scan.run(file.as_ref(), &mut |_, _, tx| {
            let meta = encode_meta(&tx.meta);
            let meta_ref = MetaRef::for_tx_meta(&meta);
            let mut changes = Vec::with_capacity(tx.changes.len());
            let index = shared.read_index();
            let mut ordinal = 0u32;
            for c in &tx.changes {
                let system = index.table_name(c.table) == Some(SYSTEM_TABLE);
                let (key, value) = if system {
                    let value = compacted_system_value(c.key, c.value.unwrap_or_default());
                    ordinal += 1;
                    (system_run_key(c.key, ordinal), Some(value))
                } else if index.has_version(c.table, c.key, tx.txid) {
                    (c.key.to_vec(), c.value.map(<[u8]>::to_vec))
                } else {
                    *dropped += 1;
                    continue;
                };
                let op = if system { Op::Insert } else { c.op };
                changes.push(TxChange {
                    table: c.table,
                    key: key.clone(),
                    op,
                });
                versions.push(VersionEntry {
                    table: c.table,
                    key,
                    txid: tx.txid,
                    op,
                    commit_time: tx.commit_time,
                    meta: meta_ref.clone(),
                    value: if op == Op::Delete { None } else { value },
                });
            }
            txs.push(TxEntry {
                txid: tx.txid,
                commit_time: tx.commit_time,
                meta,
                changes,
            });
            Ok(())
        })?;
        if end != size {
            return Err(Error::corrupt(
                &seg_path,
                end,
                "damaged frame in a sealed segment",
            ));
        }
        let (Some(first), Some(last)) = (txs.first(), txs.last()) else {
            return Ok(None);
        };
        let range = RunRange {
            first_txid: first.txid,
            last_txid: last.txid,
            first_commit_time: first.commit_time,
        };
        versions.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let storage = shared.config.storage.as_ref();
        let mut writer = RunWriter::create(storage, path, range, config)?;
        for v in &versions {
            writer.add_version(v)?;
        }
        for tx in &txs {
            writer.add_tx(tx)?;
        }
        writer.finish()?;
        let run = Run::open(
            storage,
            path,
            next_run_uid(),
            Arc::clone(&shared.block_cache),
        )?;
        Ok(Some(run))
    }
}

/// Where the newest runs worth merging start: the longest suffix in which
/// each run is at most twice the size of all the runs after it together
/// (a binary counter: each byte is rewritten O(log n) times, and at most
/// O(log n) runs are live).
fn merge_from(runs: &[Arc<Run>]) -> usize {
    let mut after = 0u64;
    let mut from = runs.len();
    for (i, run) in runs.iter().enumerate().rev() {
        let bytes = run.summary().file_bytes;
        if i + 1 < runs.len() && bytes > 2 * after {
            break;
        }
        after += bytes;
        from = i;
    }
    from
}

/// Merges `inputs` into a new run at `path` and opens it.
fn merge_runs(
    storage: &dyn crate::storage::Storage,
    path: &Path,
    inputs: &[&Run],
    config: RunConfig,
    keep: impl FnMut(&VersionEntry, Option<&VersionEntry>) -> bool,
    set: &RunSet,
) -> Result<Run> {
    let (first, _) = (inputs[0].summary(), ());
    let last = inputs[inputs.len() - 1].summary();
    let range = RunRange {
        first_txid: first.first_txid,
        last_txid: last.last_txid,
        first_commit_time: first.first_commit_time,
    };
    let writer = RunWriter::create(storage, path, range, config)?;
    merge(inputs, writer, keep)?;
    Run::open(storage, path, next_run_uid(), Arc::clone(set.cache()))
}

/// The file number of a run from its path.
fn run_number(path: &Path) -> Result<u64> {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(manifest::parse_run_file_name)
        .ok_or_else(|| Error::corrupt(path, 0, "run file name is not a run's"))
}
