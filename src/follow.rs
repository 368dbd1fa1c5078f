//! Following: a read-only database catching up with what a writer in
//! another process has made durable (`Db::refresh`).
//!
//! A refresh first looks at the `MANIFEST`. If the writer switched it
//! (sealed segments into runs, merged runs) and the new runs end within
//! what this database has already read, the new runs are opened and the
//! tail sealed through them (`Index::seal_through`, as the writer's own
//! seal does): views keep their answers, now from the runs. If they end
//! after it (the writer sealed, and perhaps deleted, segments this
//! database never read), the index is rebuilt as a fresh read-only open
//! would build it: from the manifest and the log it names. Then the log
//! is followed from where this database's log ended (`log::tail`): new
//! frames of the newest segment, and segments rolled to since, each
//! applied to the index; then the visible txid is published.
//!
//! Old views never lose their files: a reader takes a file handle under
//! the index lock with the location it reads, handles of segments and
//! runs the writer deleted stay open until the last reader drops them,
//! and a swap of index, runs and handles happens under one write lock.
//!
//! Layering: a job on the engine, like `seal`; `db` calls it.

use std::sync::Arc;

use crate::engine::Shared;
use crate::error::{Error, Result};
use crate::index::{ERASE_KEY, Index, SYSTEM_TABLE};
use crate::log::files::SegmentFiles;
use crate::log::frame::DecodedTx;
use crate::log::poison::Poison;
use crate::log::recovery::{Expected, LogFiles, LogStart, ReplayMode, open_segments, replay};
use crate::log::tail::{LogTail, follow};
use crate::log::witness::read_witness;
use crate::manifest::{self, Manifest};
use crate::sealed::RunSet;
use crate::types::TxId;

/// Rounds of a refresh when the writer switches the manifest while it
/// reads (each switch may delete files the previous manifest named).
const ATTEMPTS_MAX: usize = 8;

impl Shared {
    /// Catches a read-only database up with the log and runs on disk;
    /// returns the new visible txid. A writable database has nothing to
    /// catch up with: its visible txid.
    pub(crate) fn refresh(&self) -> Result<TxId> {
        if !self.config.read_only {
            return Ok(self.visible());
        }
        // Backup and verify read the files and the manifest this swaps.
        let _maintenance = self.lock_maintenance();
        let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tail) = tail.as_mut() else {
            return Ok(self.visible());
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = self.catch_up(tail);
            self.publish_index();
            let on_disk =
                manifest::load(self.config.storage.as_ref(), &self.dir)?.map_or(0, |m| m.seq);
            let switched = on_disk != self.lock_manifest().seq;
            match result {
                // A manifest switched meanwhile may have deleted a segment
                // before it was opened: look again.
                Ok(()) if switched && attempts < ATTEMPTS_MAX => {}
                Ok(()) => return Ok(self.visible()),
                // Files named by a manifest that was replaced meanwhile.
                Err(_) if switched && attempts < ATTEMPTS_MAX => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes everything the index holds visible, and its horizon the
    /// views' horizon.
    fn publish_index(&self) {
        let (last, horizon) = {
            let index = self.read_index();
            (index.last_txid(), index.horizon())
        };
        self.pins.follow_horizon(horizon);
        self.durable.publish_followed(last);
    }

    /// One round: the manifest, then the log after `tail`.
    fn catch_up(&self, tail: &mut LogTail) -> Result<()> {
        let storage = self.config.storage.as_ref();
        let manifest = manifest::load(storage, &self.dir)?.unwrap_or_else(Manifest::empty);
        let current = self.lock_manifest().seq;
        if manifest.seq != current {
            let (base, last) = {
                let index = self.read_index();
                (index.base(), index.last_txid())
            };
            let through = manifest.runs_through;
            if manifest.seq < current || through < base || through > last {
                return self.rebuild(tail, manifest);
            }
            let runs = self.current_runs().reopen(storage, &self.dir, &manifest)?;
            {
                let mut index = self.write_index();
                index.seal_through(through, Arc::new(runs));
                // The tail no longer points below the manifest's first
                // segment (the segment being followed stays open).
                self.files
                    .remove_below(manifest.log_first_segment.min(tail.segment));
            }
            *self.lock_manifest() = manifest;
        }
        let mut reduced_erase = false;
        let followed = follow(
            storage,
            &self.dir,
            &self.files,
            tail,
            |loc, payload_len, tx| {
                let mut index = self.write_index();
                let corrupt = |reason| {
                    Error::corrupt(self.files.path(loc.segment), u64::from(loc.offset), reason)
                };
                if is_reduced_erase(&index, tx) {
                    // Stops the scan before this frame; see below.
                    reduced_erase = true;
                    return Err(corrupt("an erase record reduced by compaction".into()));
                }
                index.apply(loc, payload_len, tx).map_err(corrupt)
            },
        );
        if reduced_erase {
            // Compaction without runs rewrote segments this database had
            // not read yet and cut the key out of an erase record: the
            // erased versions may still be in the index. Read the log
            // afresh, as an open does (newest segment first).
            let manifest = self.lock_manifest().clone();
            return self.rebuild(tail, manifest);
        }
        followed
    }

    /// The runs the index holds now (an empty set if none).
    fn current_runs(&self) -> Arc<RunSet> {
        self.read_index()
            .run_set()
            .cloned()
            .unwrap_or_else(|| Arc::new(RunSet::empty(Arc::clone(&self.block_cache))))
    }

    /// Builds the index afresh from `manifest`, its runs and the log it
    /// names, as a read-only open does, and swaps it (with the segment
    /// handles) in under one write lock.
    fn rebuild(&self, tail: &mut LogTail, manifest: Manifest) -> Result<()> {
        let storage = self.config.storage.as_ref();
        let witness = read_witness(storage, &self.dir)?;
        let runs = self.current_runs().reopen(storage, &self.dir, &manifest)?;
        let start = LogStart {
            segment: manifest.log_first_segment,
            txid: manifest.log_first_txid,
        };
        let segments = open_segments(storage, &self.dir, ReplayMode::ReadOnly, start)?;
        let files = SegmentFiles::new(&self.dir);
        let mut index = Index::from_manifest(&manifest, Arc::new(runs));
        let poison = Arc::new(Poison::default());
        let log = LogFiles {
            storage: &self.config.storage,
            dir: &self.dir,
            sizing: self.config.segment_sizing(),
            segments: &segments,
            files: &files,
            poison: &poison,
        };
        let expected = Expected {
            acknowledged: witness.acknowledged(),
            recovery: self.config.recovery,
        };
        let recovered = replay(log, expected, None, |loc, payload_len, tx| {
            index.apply(loc, payload_len, tx).map_err(|reason| {
                Error::corrupt(files.path(loc.segment), u64::from(loc.offset), reason)
            })
        })?;
        index.shrink_after_replay();
        let visible = self.visible();
        if recovered.last_txid < visible {
            return Err(Error::corrupt(
                &self.dir,
                0,
                format!(
                    "the log now ends at txid {}, before txid {visible} that this database \
                     already read (was the database replaced or restored?)",
                    recovered.last_txid
                ),
            ));
        }
        let (segment, offset) = recovered.writer.position();
        {
            let mut current = self.write_index();
            *current = index;
            self.files.replace_all(files);
        }
        *self.lock_manifest() = manifest;
        self.clear_cache();
        *tail = LogTail {
            segment,
            offset,
            next_txid: recovered.last_txid.next(),
        };
        Ok(())
    }
}

/// Whether `tx` holds an erase record that compaction reduced to its
/// table name (the key and its versions removed from the segments).
fn is_reduced_erase(index: &Index, tx: &DecodedTx<'_>) -> bool {
    tx.changes.iter().any(|c| {
        let name = index.table_name(c.table).or_else(|| {
            tx.table_defs
                .iter()
                .find(|(id, _)| *id == c.table)
                .map(|(_, name)| *name)
        });
        name == Some(SYSTEM_TABLE) && c.key == ERASE_KEY && c.value.is_some_and(|v| !v.contains(&0))
    })
}
