//! The engine state behind every handle: `Shared` (the index with its
//! tail and runs, the log files, the writer, group commit, pins, caches,
//! the manifest) and the reads every handle builds on (locating a version,
//! reading and checking its bytes, a transaction's record from the log or
//! the runs, the visible-version count).
//!
//! Layering: the user handles (`Db` in `db.rs`, `Snapshot` in `read.rs`,
//! `WriteTx` in `tx.rs`) and the maintenance jobs (`compact.rs`,
//! `seal.rs`, `sealer.rs`, `follow.rs`, `checkpoint.rs`, `verify.rs`,
//! `temporal.rs`)
//! import this module; it imports none of them.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::Metadata;
use crate::config::Config;
use crate::durable::Durable;
use crate::error::{Error, Result};
use crate::index::chain::VersionRef;
use crate::index::{Index, SYSTEM_TABLE, TxInfo, compacted_system_value, is_internal_table};
use crate::log::files::SegmentFiles;
use crate::log::frame::{
    FRAME_HEADER_SIZE, FrameHeader, FrameSpan, META_OFFSET, decode_meta, decode_payload,
};
use crate::log::tail::LogTail;
use crate::log::value_cache::{ValueBytes, ValueCache};
use crate::log::writer::LogWriter;
use crate::manifest::Manifest;
use crate::pins::Pins;
use crate::record::{Change, TxRecord};
use crate::runs::BlockCache;
use crate::sealed::RunSet;
use crate::storage::StorageFile;
use crate::trigger::SealTrigger;
use crate::types::{SegmentId, Timestamp, TxId};

/// Values up to this size are copied out of the value cache for readers
/// that only decode them; larger ones are shared with it.
const SHARE_VALUES_ABOVE: usize = 256;

/// The state behind a `Db`.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) config: Config,
    pub(crate) index: RwLock<Index>,
    /// The manifest on disk (changed only by compaction).
    pub(crate) manifest: Mutex<Manifest>,
    /// Decompressed run blocks, shared by every run.
    pub(crate) block_cache: Arc<BlockCache>,
    /// What commits tell the background sealer.
    pub(crate) sealer: Arc<SealTrigger>,
    /// `sealed_versions` of (run set, drop generation).
    pub(crate) sealed_count: Mutex<Option<((u64, u64), u64)>>,
    pub(crate) files: SegmentFiles,
    pub(crate) writer: Mutex<WriterState>,
    /// Where a read-only database's log ends: `Db::refresh` reads on from
    /// there (`None` for a writer).
    pub(crate) tail: Mutex<Option<LogTail>>,
    /// Group commit and the visible txid: views are taken at or below it.
    pub(crate) durable: Durable,
    /// Txids pinned by live views, and the purge horizon.
    pub(crate) pins: Pins,
    /// Recently read value and metadata bytes.
    pub(crate) cache: ValueCache,
    /// Held by compaction and backup, one at a time.
    pub(crate) maintenance: Mutex<()>,
    /// Bytes of torn tail that recovery cut off when this database opened.
    pub(crate) torn_tail_bytes: u64,
    /// Acknowledged txids recovery went on without (`Recovery::AcceptLoss`).
    pub(crate) lost_txids: Option<std::ops::RangeInclusive<TxId>>,
    /// Open started from the index checkpoint.
    pub(crate) checkpoint_used: bool,
    /// Log frames the open replayed into the index.
    pub(crate) frames_replayed: u64,
    /// Frames replayed or committed since the last checkpoint.
    pub(crate) frames_since_checkpoint: AtomicU64,
    /// Held for the lifetime of the database; the OS lock dies with it.
    /// `None` when read-only (no lock is taken).
    pub(crate) _lock: Option<File>,
}

/// What only the committer touches.
pub(crate) struct WriterState {
    pub log: LogWriter,
    pub last_commit_time: Timestamp,
}

/// An index location together with the handle of the file it points into.
pub(crate) struct Located<T> {
    pub item: T,
    pub segment: SegmentId,
    /// The handle's process-unique id (the value cache's key).
    pub uid: u64,
    pub file: Arc<dyn StorageFile>,
    /// The whole frame the item's bytes lie in, checked on a cache miss.
    pub frame: Option<FrameSpan>,
}

/// What an index location's bytes are part of: the frame to check them
/// against.
pub(crate) trait InFrame {
    fn frame(&self, index: &Index) -> Option<FrameSpan>;
}

impl InFrame for VersionRef {
    fn frame(&self, index: &Index) -> Option<FrameSpan> {
        index.tx(self.txid()).map(TxInfo::frame)
    }
}

impl InFrame for TxInfo {
    fn frame(&self, _index: &Index) -> Option<FrameSpan> {
        Some(TxInfo::frame(self))
    }
}

/// Where a live version's value lies in its segment (offset, length);
/// `None` for a delete.
fn value_span(version: &VersionRef) -> Option<(u64, usize)> {
    version
        .is_live()
        .then(|| (u64::from(version.offset()), version.len() as usize))
}

impl Shared {
    pub(crate) fn visible(&self) -> TxId {
        self.durable.visible()
    }

    pub(crate) fn read_index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_index(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock_maintenance(&self) -> MutexGuard<'_, ()> {
        self.maintenance.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The manifest on disk; compaction changes it.
    pub(crate) fn lock_manifest(&self) -> MutexGuard<'_, Manifest> {
        self.manifest.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, WriterState> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses writes to a read-only database and after a failed fsync.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.config.read_only {
            return Err(Error::ReadOnly {
                path: self.dir.clone(),
            });
        }
        self.durable.check_writable()
    }

    /// Refuses txids after the latest one.
    pub(crate) fn check_readable(&self, txid: TxId) -> Result<()> {
        let latest = self.visible();
        if txid > latest {
            return Err(Error::FutureTxid {
                requested: txid,
                latest,
            });
        }
        let horizon = self.pins.horizon();
        if txid < horizon {
            return Err(Error::HistoryPurged {
                requested: txid,
                horizon,
            });
        }
        Ok(())
    }

    /// Pairs an index location with the file it points into. Takes the
    /// index guard so the handle is taken under the same lock the location
    /// was read under: compaction swaps both together.
    pub(crate) fn locate<T: InFrame>(
        &self,
        index: &Index,
        segment: SegmentId,
        item: T,
    ) -> Result<Located<T>> {
        let (uid, file) = self.files.handle_with_uid(segment)?;
        let frame = item.frame(index);
        Ok(Located {
            item,
            segment,
            uid,
            file,
            frame,
        })
    }

    /// Reads `len` bytes at `offset` of a located file: from the value
    /// cache, or by reading the whole frame they lie in and checking its
    /// CRC (every value and the metadata of the frame then go into the
    /// cache, so neighbours of a large transaction cost no second read).
    fn read_located<T>(&self, at: &Located<T>, offset: u64, len: usize) -> Result<Vec<u8>> {
        if let Some(bytes) = self.cache.get(at.uid, offset, len) {
            return Ok(bytes);
        }
        let Some(frame) = at
            .frame
            .filter(|f| offset >= f.offset && offset + len as u64 <= f.offset + f.len as u64)
        else {
            return Err(Error::corrupt(
                self.files.path(at.segment),
                offset,
                "the index points outside the frame of its transaction",
            ));
        };
        let bytes = self.read_frame(at, frame)?;
        let start = (offset - frame.offset) as usize;
        let path = self.files.path(at.segment);
        let payload = &bytes[FRAME_HEADER_SIZE..];
        if let Ok(tx) = decode_payload(payload) {
            let payload_at = frame.offset + FRAME_HEADER_SIZE as u64;
            for c in &tx.changes {
                if let Some(v) = c.value {
                    self.cache
                        .insert(at.uid, payload_at + u64::from(c.value_offset), v);
                }
            }
        } else {
            return Err(Error::corrupt(&path, frame.offset, "frame does not decode"));
        }
        let value = bytes[start..start + len].to_vec();
        self.cache.insert(at.uid, offset, &value);
        Ok(value)
    }

    /// Reads one whole frame and checks its header and CRC.
    fn read_frame<T>(&self, at: &Located<T>, frame: FrameSpan) -> Result<Vec<u8>> {
        let path = self.files.path(at.segment);
        let bytes = self
            .files
            .read_from(at.file.as_ref(), at.segment, frame.offset, frame.len)?;
        let mut header = [0; FRAME_HEADER_SIZE];
        header.copy_from_slice(&bytes[..FRAME_HEADER_SIZE]);
        let header = FrameHeader::parse(header);
        let payload = &bytes[FRAME_HEADER_SIZE..];
        if header.payload_len as usize != payload.len() || crc32fast::hash(payload) != header.crc {
            return Err(Error::corrupt(
                &path,
                frame.offset,
                "frame checksum mismatch",
            ));
        }
        Ok(bytes)
    }

    /// Reads one version's value.
    pub(crate) fn read_value(&self, at: &Located<VersionRef>) -> Result<Option<Vec<u8>>> {
        let Some((offset, len)) = value_span(&at.item) else {
            return Ok(None);
        };
        Ok(Some(self.read_located(at, offset, len)?))
    }

    /// Reads one version's value (`None` for a delete) as bytes the caller
    /// owns: a value over `SHARE_VALUES_ABOVE` bytes is shared with the
    /// value cache (no copy), a smaller one copied.
    pub(crate) fn read_value_bytes(&self, at: &Located<VersionRef>) -> Result<Option<ValueBytes>> {
        let Some((offset, len)) = value_span(&at.item) else {
            return Ok(None);
        };
        // Copying a small value costs less than sharing it: the reference
        // count is an atomic write to a cache line that is usually cold.
        if len > SHARE_VALUES_ABOVE
            && let Some(bytes) = self.cache.get_shared(at.uid, offset, len)
        {
            return Ok(Some(ValueBytes::Cached(bytes)));
        }
        Ok(Some(ValueBytes::Read(self.read_located(at, offset, len)?)))
    }

    /// Calls `f` with one version's value bytes (`None` for a delete) and
    /// returns what it returns: for callers that decode the bytes rather
    /// than keep them. A small cached value is copied to the stack, a large
    /// one shared with the cache; `f` runs with no lock held.
    pub(crate) fn with_value<R>(
        &self,
        at: &Located<VersionRef>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>> {
        let Some((offset, len)) = value_span(&at.item) else {
            return Ok(None);
        };
        if len <= SHARE_VALUES_ABOVE {
            let mut small = [0; SHARE_VALUES_ABOVE];
            if self.cache.copy_into(at.uid, offset, &mut small[..len]) {
                return Ok(Some(f(&small[..len])));
            }
        } else if let Some(bytes) = self.cache.get_shared(at.uid, offset, len) {
            return Ok(Some(f(&bytes)));
        }
        Ok(Some(f(&self.read_located(at, offset, len)?)))
    }

    /// Drops every cached value (erasure, compaction).
    pub(crate) fn clear_cache(&self) {
        self.cache.clear();
    }

    /// Reads a transaction's metadata; no I/O when it has none.
    pub(crate) fn read_meta(&self, at: &Located<TxInfo>) -> Result<Metadata> {
        let info = &at.item;
        if info.meta_len <= 4 {
            return Ok(Metadata::new());
        }
        let offset = u64::from(info.frame_offset) + (FRAME_HEADER_SIZE + META_OFFSET) as u64;
        let bytes = self.read_located(at, offset, info.meta_len as usize)?;
        decode_meta(&bytes)
            .map_err(|reason| Error::corrupt(self.files.path(info.segment), offset, reason))
    }

    /// The record of `txid`, which the tail (`index`) does not have: from
    /// the runs if they hold it, else `NoSuchTransaction`.
    fn read_tx_from_runs(&self, index: RwLockReadGuard<'_, Index>, txid: TxId) -> Result<TxRecord> {
        match index.runs() {
            Some(runs) if txid > TxId::ZERO && txid <= index.base() => {
                let runs = Arc::clone(runs);
                drop(index);
                self.read_sealed_tx(&runs, txid)
            }
            _ => Err(Error::NoSuchTransaction { txid }),
        }
    }

    /// Reads, checks and decodes the whole frame of `txid` (which must exist).
    pub(crate) fn read_tx(&self, txid: TxId) -> Result<TxRecord> {
        let at = {
            let index = self.read_index();
            match index.tx(txid) {
                Some(info) => self.locate(&index, info.segment, *info)?,
                None => return self.read_tx_from_runs(index, txid),
            }
        };
        let info = at.item;
        let path = self.files.path(info.segment);
        let offset = u64::from(info.frame_offset);
        let frame = self.files.read_from(
            at.file.as_ref(),
            info.segment,
            offset,
            FRAME_HEADER_SIZE + info.payload_len as usize,
        )?;
        let mut header = [0; FRAME_HEADER_SIZE];
        header.copy_from_slice(&frame[..FRAME_HEADER_SIZE]);
        let header = FrameHeader::parse(header);
        let payload = &frame[FRAME_HEADER_SIZE..];
        if header.payload_len != info.payload_len || crc32fast::hash(payload) != header.crc {
            return Err(Error::corrupt(&path, offset, "frame checksum mismatch"));
        }
        let tx = decode_payload(payload).map_err(|reason| Error::corrupt(&path, offset, reason))?;
        if tx.txid != txid {
            return Err(Error::corrupt(
                &path,
                offset,
                format!("frame holds txid {} not {txid}", tx.txid),
            ));
        }
        // The record shows what the index still holds, so erased data is
        // never read back, whether or not compaction has run yet.
        let index = self.read_index();
        if index.tx(txid).is_none() {
            // Sealed into runs while the frame was read: the tail no longer
            // has its versions, the runs do.
            return self.read_tx_from_runs(index, txid);
        }
        let mut changes = Vec::with_capacity(tx.changes.len());
        let mut maintenance = Vec::new();
        for c in &tx.changes {
            let table = index.table_name(c.table).ok_or_else(|| {
                Error::corrupt(&path, offset, format!("unknown table id {}", c.table.0))
            })?;
            let value = if table == SYSTEM_TABLE {
                maintenance.push(Change {
                    table: table.to_string(),
                    key: c.key.to_vec(),
                    op: c.op,
                    value: c.value.map(|v| compacted_system_value(c.key, v)),
                });
                continue;
            } else if is_internal_table(table) {
                continue;
            } else if index.has_version(c.table, c.key, txid) {
                c.value.map(<[u8]>::to_vec)
            } else {
                continue;
            };
            changes.push(Change {
                table: table.to_string(),
                key: c.key.to_vec(),
                op: c.op,
                value,
            });
        }
        Ok(TxRecord {
            txid,
            commit_time: tx.commit_time,
            meta: tx.meta,
            changes,
            maintenance,
        })
    }
}

impl Shared {
    /// The versions of the runs readers can see: counted once per run set
    /// and state of purges, trims and erasures (a read of every run when
    /// the runs still hold versions something hides, else of the system
    /// table's blocks), then cached. Falls back to what the runs store if counting fails.
    pub(crate) fn sealed_versions(&self) -> u64 {
        let (runs, generation, drops) = {
            let index = self.read_index();
            let Some(runs) = index.runs() else {
                return 0;
            };
            let key = (runs.id(), index.drop_generation());
            if let Some((k, n)) = *self.sealed_count.lock().unwrap_or_else(|e| e.into_inner())
                && k == key
            {
                return n;
            }
            let drops = index.drops();
            // Every hidden version already dropped by a merge: the horizons
            // are those the runs reflect, and no erasure is newer than them.
            let applied = drops.horizons_fingerprint() == self.lock_manifest().drops_applied
                && !drops.erases_after(index.base());
            (Arc::clone(runs), key, (drops, applied))
        };
        let (drops, applied) = drops;
        match runs.count_visible(&drops, applied) {
            Ok(n) => {
                *self.sealed_count.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((generation, n));
                n
            }
            Err(_) => runs.n_versions(),
        }
    }

    /// The record of a transaction the runs hold: its surviving changes,
    /// each value read from the run (a version an erasure or a purge
    /// removed since is left out, as for the log).
    pub(crate) fn read_sealed_tx(&self, runs: &RunSet, txid: TxId) -> Result<TxRecord> {
        let Some((tx, run)) = runs.tx(txid)? else {
            return Err(Error::NoSuchTransaction { txid });
        };
        let meta = decode_meta(&tx.meta).map_err(|reason| Error::corrupt(run.path(), 0, reason))?;
        let mut changes = Vec::with_capacity(tx.changes.len());
        let mut maintenance = Vec::new();
        for c in &tx.changes {
            let (name, erased, horizon, tail_first) = {
                let index = self.read_index();
                let name = index.table_name(c.table).ok_or_else(|| {
                    Error::corrupt(run.path(), 0, format!("unknown table id {}", c.table.0))
                })?;
                let horizon = index.horizon().max(index.table(c.table).horizon);
                let tail_first = index
                    .chain(name, &c.key)
                    .and_then(|chain| chain.first())
                    .map(|v| v.txid());
                (
                    name.to_string(),
                    index.erased_at(name, &c.key),
                    horizon,
                    tail_first,
                )
            };
            if is_internal_table(&name) {
                // As for the log: the typed layer's own tables are not shown.
                continue;
            }
            let system = name == SYSTEM_TABLE;
            if !system {
                if erased.is_some_and(|at| txid < at) {
                    continue;
                }
                if horizon > txid {
                    let next = match runs.successor(c.table, &c.key, txid, horizon)? {
                        Some(t) => Some(t),
                        None => tail_first,
                    };
                    if next.is_some_and(|t| t <= horizon) {
                        continue;
                    }
                }
            }
            let value = if c.op == crate::Op::Delete {
                None
            } else {
                match run.get_at(c.table, &c.key, txid)? {
                    Some(v) if v.txid == txid => v.value,
                    _ => {
                        return Err(Error::corrupt(
                            run.path(),
                            0,
                            format!("txid {txid} lists a change the run has no version of"),
                        ));
                    }
                }
            };
            if system {
                maintenance.push(Change {
                    table: name,
                    key: crate::sealed::system_log_key(&c.key).to_vec(),
                    op: c.op,
                    value,
                });
                continue;
            }
            changes.push(Change {
                table: name,
                key: c.key.clone(),
                op: c.op,
                value,
            });
        }
        Ok(TxRecord {
            txid,
            commit_time: tx.commit_time,
            meta,
            changes,
            maintenance,
        })
    }
}
