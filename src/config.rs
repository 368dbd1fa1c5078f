//! How a database is opened (`Config`, `Recovery`) and how much history a
//! table keeps (`RetentionPolicy`): the settings a caller gives, checked
//! here.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::limits::{MEMORY_BUDGET_MIN, SEGMENT_ROLL_SIZE_MAX, SEGMENT_ROLL_SIZE_MIN};
use crate::storage::{FileStorage, Storage};
use crate::types::Durability;

/// How a database is opened.
///
/// ```
/// let config = timecask::Config {
///     segment_roll_bytes: 1 << 20,
///     ..Default::default()
/// };
/// let dir = tempfile::tempdir().unwrap();
/// let db = timecask::Db::open_with(dir.path(), config).unwrap();
/// # drop(db);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Default durability of commits; a transaction can override it.
    pub durability: Durability,
    /// A new segment file is started once the current one reaches this size.
    pub segment_roll_bytes: u64,
    /// The newest segment file is extended this many bytes at a time (at
    /// most to `segment_roll_bytes`), with zeros written and fsynced once,
    /// so each durable commit overwrites space the file already has and its
    /// `fdatasync` commits no change of size (measured on ext4: a 4 KiB
    /// write + `fdatasync` about 45% cheaper than an append, a durable
    /// commit about 20%; see BENCHMARKS.md). 4 MiB by default; 0 turns it
    /// off (every frame extends the file). The space is cut off again when
    /// the segment rolls and when the database closes.
    pub segment_preallocate_bytes: u64,
    /// Record a version even when an update writes the value the key
    /// already has. Off by default: such updates record nothing.
    pub record_identical_updates: bool,
    /// Create the directory and an empty database if none exists.
    pub create_if_missing: bool,
    /// Where segment files are read and written: the file system by
    /// default; tests plug in backends that inject faults.
    pub storage: Arc<dyn Storage>,
    /// How long `open` waits for another holder of the database lock to
    /// let go before failing with [`Error::Locked`](crate::Error::Locked).
    /// Zero (the default) fails at once.
    pub lock_timeout: Duration,
    /// On a clean close, make the next open fast: with
    /// [`history_runs`](Config::history_runs), if the log tail holds at
    /// least 10,000 versions or frames, seal it into a history run (the
    /// next open replays nothing); without, if at least 10,000 frames were
    /// replayed or committed since the last checkpoint, write an index
    /// checkpoint (also the fallback if sealing fails). On by default.
    pub checkpoint_on_close: bool,
    /// Bytes of recently read values and metadata kept in memory, so hot
    /// reads skip the disk read. 64 MiB by default; 0 turns it off.
    pub value_cache_bytes: usize,
    /// Bytes of decompressed history-run blocks kept in memory (the block
    /// cache every read of sealed history goes through). 64 MiB by
    /// default.
    pub block_cache_bytes: usize,
    /// [`Db::compact`](crate::Db::compact) and the background sealer move
    /// history out of the log into key-clustered history runs, so a key's
    /// versions are contiguous on disk and the in-memory index holds only
    /// the recent tail. On by default; off keeps all history in log
    /// segments (and in the in-memory index), and compaction rewrites
    /// segments instead.
    pub history_runs: bool,
    /// With `history_runs`, a background thread seals the log into runs
    /// each time this many bytes were appended to it, which bounds the
    /// in-memory index (about 46 bytes per version in the tail) and the
    /// number of open segment files. 256 MiB by default; `None` seals only
    /// in [`Db::compact`](crate::Db::compact) and
    /// [`Db::seal`](crate::Db::seal).
    pub seal_log_bytes: Option<u64>,
    /// Caps what the database keeps in memory: a quarter for the value
    /// cache, a quarter for the block cache (overriding
    /// `value_cache_bytes` and `block_cache_bytes`) and half for the
    /// in-memory tail of the index, which the background sealer moves into
    /// history runs when its estimated size (64 bytes per version, 24 per
    /// transaction) reaches that half. On top come the run summaries (the
    /// block-index pages reads have loaded, at most an entry per 64 KiB
    /// block, and a 10-bit-per-key filter: at most about 0.4% of the run
    /// bytes) and what the caller holds. `None` by
    /// default: each setting as given. Needs `history_runs`.
    pub memory_budget: Option<usize>,
    /// Uncompressed bytes per history-run block. 64 KiB by default
    /// (chosen by measurement, see BENCHMARKS.md "Stop 23"): a point read
    /// decodes one 16-entry group of a block, not the block, so larger
    /// blocks mostly make run indexes (memory, open time) smaller; scans
    /// and merges read whole blocks. Tests use small blocks so a key spans
    /// several.
    pub run_block_bytes: usize,
    /// Block-index entries per index page of a history run: 128 by
    /// default (a page of about 4.5 KiB). Opening a run reads one small top
    /// table entry per page, and a read loads (and keeps) the one page it
    /// needs, so open time does not grow with the run; smaller pages make
    /// the top tables larger and a cold read's page smaller. `1..=4096`;
    /// tests use tiny pages so every index has several.
    pub run_index_page_entries: u32,
    /// How history-run blocks are compressed: LZ4 by default; a block
    /// that does not shrink is stored as is either way. Only new runs
    /// follow a change: every block records its codec.
    pub run_compression: RunCompression,
    /// Open without the lock and without ever modifying a file, beside a
    /// writer that may hold the database; see
    /// [`Db::open_read_only`](crate::Db::open_read_only). Off by default.
    /// `create_if_missing`, `durability`, `lock_timeout` and
    /// `checkpoint_on_close` do not apply then.
    pub read_only: bool,
    /// What open does when the commit witness shows that acknowledged
    /// commits are missing or damaged at the end of the log:
    /// [`Recovery::Strict`] (the default) refuses with
    /// [`Error::CommitsLost`](crate::Error::CommitsLost) or
    /// [`Error::Corrupt`](crate::Error::Corrupt) and changes nothing.
    pub recovery: Recovery,
}

/// How [`Config::run_compression`] stores history-run blocks. Each block
/// records its codec, so runs written with different settings read alike.
/// Measured at 10M versions of 60-byte values (BENCHMARKS.md "Scale"):
/// LZ4 29 bytes per version and a warm read of an old version in ~15 µs,
/// zstd 16–20 bytes and ~12–45 µs (4–32 KiB blocks), none ~76 bytes.
///
/// ```
/// // History mostly kept rather than read: the fewest bytes.
/// let config = timecask::Config {
///     run_compression: timecask::RunCompression::Zstd,
///     ..Default::default()
/// };
/// assert_ne!(config.run_compression, timecask::RunCompression::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunCompression {
    /// Blocks stored as they are: the most disk, the cheapest read.
    None,
    /// LZ4: the default; decodes a block about three times faster than
    /// zstd, and compresses faster, for about 1.5–2 times its bytes.
    #[default]
    Lz4,
    /// zstd at level 3: the fewest bytes, for history mostly kept rather
    /// than read.
    Zstd,
}

/// How open treats acknowledged commits that are missing or damaged at the
/// end of the log (a deleted or cut newest segment, a bit flip in its
/// last frames). Damage anywhere else is always
/// [`Error::Corrupt`](crate::Error::Corrupt).
///
/// ```
/// let config = timecask::Config {
///     recovery: timecask::Recovery::AcceptLoss,
///     ..Default::default()
/// };
/// assert_ne!(config.recovery, timecask::Recovery::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recovery {
    /// Refuse to open: the loss is reported, nothing is changed on disk.
    #[default]
    Strict,
    /// Open anyway: the log is cut before the first damaged frame, the
    /// missing txids are reported in
    /// [`Stats::lost_txids`](crate::Stats::lost_txids), and the next commit
    /// reuses the first of them. Only for when no backup is better.
    AcceptLoss,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            durability: Durability::Immediate,
            segment_roll_bytes: 64 * 1024 * 1024,
            segment_preallocate_bytes: 4 * 1024 * 1024,
            record_identical_updates: false,
            create_if_missing: true,
            storage: Arc::new(FileStorage),
            lock_timeout: Duration::ZERO,
            checkpoint_on_close: true,
            value_cache_bytes: 64 * 1024 * 1024,
            block_cache_bytes: 64 * 1024 * 1024,
            history_runs: true,
            seal_log_bytes: Some(256 * 1024 * 1024),
            memory_budget: None,
            run_block_bytes: 64 * 1024,
            run_index_page_entries: 128,
            run_compression: RunCompression::default(),
            read_only: false,
            recovery: Recovery::Strict,
        }
    }
}

impl Config {
    /// Bytes of the value cache: `value_cache_bytes`, or a quarter of the
    /// memory budget.
    pub(crate) fn value_cache_size(&self) -> usize {
        self.memory_budget.map_or(self.value_cache_bytes, |b| b / 4)
    }

    /// Bytes of the block cache: `block_cache_bytes`, or a quarter of the
    /// memory budget.
    pub(crate) fn block_cache_size(&self) -> usize {
        self.memory_budget.map_or(self.block_cache_bytes, |b| b / 4)
    }

    /// Estimated bytes of in-memory tail at which the sealer runs.
    pub(crate) fn tail_budget(&self) -> Option<u64> {
        self.memory_budget.map(|b| (b / 2) as u64)
    }

    /// How the log writer sizes segments.
    pub(crate) fn segment_sizing(&self) -> crate::log::writer::SegmentSizing {
        crate::log::writer::SegmentSizing {
            roll_bytes: self.segment_roll_bytes,
            preallocate_bytes: self.segment_preallocate_bytes,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(SEGMENT_ROLL_SIZE_MIN..=SEGMENT_ROLL_SIZE_MAX).contains(&self.segment_roll_bytes) {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "segment_roll_bytes {} is outside {SEGMENT_ROLL_SIZE_MIN}..={SEGMENT_ROLL_SIZE_MAX}",
                    self.segment_roll_bytes
                ),
            });
        }
        if self.segment_preallocate_bytes > SEGMENT_ROLL_SIZE_MAX {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "segment_preallocate_bytes {} is above {SEGMENT_ROLL_SIZE_MAX}",
                    self.segment_preallocate_bytes
                ),
            });
        }
        if let Some(bytes) = self.seal_log_bytes
            && bytes < SEGMENT_ROLL_SIZE_MIN
        {
            return Err(Error::InvalidConfig {
                reason: format!("seal_log_bytes {bytes} is below {SEGMENT_ROLL_SIZE_MIN}"),
            });
        }
        if let Some(budget) = self.memory_budget
            && (budget < MEMORY_BUDGET_MIN || !self.history_runs)
        {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "memory_budget {budget} needs history_runs and at least {MEMORY_BUDGET_MIN} bytes"
                ),
            });
        }
        if !(1..=crate::limits::INDEX_PAGE_ENTRIES_MAX).contains(&self.run_index_page_entries) {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "run_index_page_entries {} is outside 1..={}",
                    self.run_index_page_entries,
                    crate::limits::INDEX_PAGE_ENTRIES_MAX
                ),
            });
        }
        let blocks = crate::limits::BLOCK_TARGET_SIZE_MIN..=crate::limits::BLOCK_TARGET_SIZE_MAX;
        if !blocks.contains(&self.run_block_bytes) {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "run_block_bytes {} is outside {}..={}",
                    self.run_block_bytes,
                    blocks.start(),
                    blocks.end()
                ),
            });
        }
        Ok(())
    }
}

/// How much history compaction keeps for one table, set with
/// [`WriteTx::set_retention`](crate::WriteTx::set_retention). Each field
/// protects versions; a version is dropped only if neither protects it, so
/// at least one must be set.
///
/// At each [`Db::compact`](crate::Db::compact) the table gets a horizon:
/// the oldest txid from which no key keeps more than `keep_last` versions
/// (a delete counts as one), but never so new that a version younger than
/// `keep_for` is dropped. History of the table
/// before its horizon is dropped (the version visible at the horizon is
/// kept), and as-of reads of that table below it fail with
/// [`Error::HistoryPurged`](crate::Error::HistoryPurged). The horizon never
/// passes a live snapshot's txid.
///
/// ```
/// use std::time::Duration;
/// let policy = timecask::RetentionPolicy {
///     keep_last: Some(10),
///     keep_for: Some(Duration::from_secs(30 * 24 * 3600)),
/// };
/// # let _ = policy;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep at most this many versions of each key (at least 1).
    pub keep_last: Option<u32>,
    /// Keep every version written less than this long ago.
    pub keep_for: Option<Duration>,
}

impl RetentionPolicy {
    /// Refuses policies that would not say what they mean: `keep_last: 0`
    /// (which would keep not even the current version), and a policy with
    /// neither limit (which protects nothing, so each compaction would drop
    /// every version but the latest — say `keep_last: Some(1)` for that).
    pub(crate) fn validate(&self) -> Result<()> {
        if self.keep_last == Some(0) {
            return Err(Error::InvalidConfig {
                reason: "retention keep_last must be at least 1".to_string(),
            });
        }
        if self.keep_last.is_none() && self.keep_for.is_none() {
            return Err(Error::InvalidConfig {
                reason: "a retention policy needs keep_last or keep_for; with neither it would \
                         keep only each key's latest version (say keep_last: Some(1) for that)"
                    .to_string(),
            });
        }
        Ok(())
    }

    /// Encoded as `u32 keep_last (0: none) | u64 keep_for µs (u64::MAX: none)`.
    pub(crate) fn encode(&self) -> [u8; 12] {
        let mut out = [0; 12];
        out[..4].copy_from_slice(&self.keep_last.unwrap_or(0).to_le_bytes());
        // u64::MAX means "none": a longer or equal duration saturates just
        // below it (585,000 years) instead of turning into "none".
        let micros = self.keep_for.map_or(u64::MAX, |d| {
            u64::try_from(d.as_micros()).map_or(u64::MAX - 1, |m| m.min(u64::MAX - 1))
        });
        out[4..].copy_from_slice(&micros.to_le_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<RetentionPolicy> {
        let bytes: &[u8; 12] = bytes.try_into().ok()?;
        let keep_last = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let mut micros = [0; 8];
        micros.copy_from_slice(&bytes[4..]);
        let micros = u64::from_le_bytes(micros);
        Some(RetentionPolicy {
            keep_last: (keep_last > 0).then_some(keep_last),
            keep_for: (micros != u64::MAX).then(|| Duration::from_micros(micros)),
        })
    }
}
