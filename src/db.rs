//! `Db`: opening a database directory and the state every view and
//! transaction shares.

use std::fs::{File, TryLockError};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::checkpoint::CheckpointReport;
use crate::config::Config;
use crate::durable::Durable;
use crate::engine::{Shared, WriterState};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::log::files::SegmentFiles;
use crate::log::poison::Poison;
use crate::log::recovery::{
    Expected, LogFiles, LogStart, OpenSegments, Recovered, ReplayMode, ResumePoint, open_segments,
    replay,
};
use crate::log::segment::list_segments;
use crate::log::tail::LogTail;
use crate::log::value_cache::ValueCache;
use crate::log::witness::{WITNESS_FILE, Witness, WitnessState, read_witness};
use crate::manifest::{self, Manifest};
use crate::pins::Pins;
use crate::read::Snapshot;
use crate::record::TxRecord;
use crate::runs::BlockCache;
use crate::sealed::RunSet;
use crate::sealer::SealerGuard;
use crate::storage::Storage;
use crate::trigger::SealTrigger;
use crate::tx::WriteTx;
use crate::types::{Timestamp, TxId};

/// A clean close seals the log tail when it holds at least this many
/// versions or frames (with history runs), or writes a checkpoint when at
/// least this many frames were replayed or committed since the last one.
const CHECKPOINT_ON_CLOSE_MIN_FRAMES: u64 = 10_000;

/// Name of the lock file inside a database directory.
const LOCK_FILE: &str = "LOCK";

/// An open database: one directory, held for writing by one process at a
/// time; any number of read-only opens ([`Db::open_read_only`]) may read
/// it beside the writer.
///
/// `Db` is cheap to clone (it is an `Arc`) and can be shared across threads.
/// Views ([`Snapshot`]) and write transactions ([`WriteTx`]) keep the
/// database open while they live.
///
/// ```
/// # fn main() -> Result<(), timecask::Error> {
/// let dir = tempfile::tempdir().unwrap();
/// let db = timecask::Db::open(dir.path())?;
/// let mut tx = db.begin();
/// tx.put("user", b"1", b"Alice")?;
/// let t1 = tx.commit()?.expect("one change was written");
/// let mut tx = db.begin();
/// tx.put("user", b"1", b"Bob")?;
/// tx.commit()?;
/// assert_eq!(db.snapshot().get("user", b"1")?, Some(b"Bob".to_vec()));
/// assert_eq!(db.as_of(t1)?.get("user", b"1")?, Some(b"Alice".to_vec()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    /// The background sealer, stopped and joined with the last handle
    /// (before `shared` is released). `None` when read-only or off.
    _sealer: Option<Arc<SealerGuard>>,
    /// Prepares the next open when the last handle goes (after the sealer
    /// stopped), not when the last snapshot or transaction does.
    _close: Option<Arc<CloseGuard>>,
    pub(crate) shared: Arc<Shared>,
}

/// Runs [`Shared::close`] when the last [`Db`] handle is dropped: a
/// snapshot, transaction or feed that outlives every handle keeps the
/// state alive but never pays for sealing the tail in its own drop.
struct CloseGuard(Arc<Shared>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Db {
    /// Opens (or creates) the database in directory `path` with the default
    /// [`Config`].
    ///
    /// The lock is an OS advisory lock on `LOCK`, held by the open file:
    /// if another thread of this process forks a child while a `Db` is
    /// open, the child holds the lock until it execs or exits, so a reopen
    /// right after closing can briefly see `Locked`;
    /// [`Config::lock_timeout`] rides that out.
    ///
    /// Fails with [`Error::Locked`] if another process (or another `Db` in
    /// this one) has it open for writing; [`Db::open_read_only`] reads it
    /// beside that writer. Fails with [`Error::Corrupt`] if the log is
    /// damaged other than a torn tail, and [`Error::NotADatabase`] if the
    /// directory holds unrelated files.
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        Db::open_with(path, Config::default())
    }

    /// Opens (or creates) the database in `path` with `config`.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let config = timecask::Config { durability: timecask::Durability::Buffered, ..Default::default() };
    /// let db = timecask::Db::open_with(dir.path(), config).unwrap();
    /// # drop(db);
    /// ```
    pub fn open_with(path: impl AsRef<Path>, config: Config) -> Result<Db> {
        config.validate()?;
        let dir = path.as_ref().to_path_buf();
        if config.read_only {
            return Db::open_read_only_in(dir, config);
        }
        if !dir.exists() {
            if !config.create_if_missing {
                return Err(Error::NotFound { path: dir });
            }
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        if !dir.is_dir() {
            return Err(Error::NotADatabase { path: dir });
        }
        refuse_foreign_directory(&dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        let deadline = std::time::Instant::now() + config.lock_timeout;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        return Err(Error::Locked { path: dir });
                    }
                    std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(5)));
                }
                Err(TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
            }
        }
        // The witness is read before the log: it never runs ahead of it.
        let witness = read_witness(config.storage.as_ref(), &dir)?;
        crate::log::segment::remove_stray_rewrites(&dir)?;
        let storage = config.storage.as_ref();
        manifest::remove_stray_tmp(storage, &dir)?;
        let manifest = manifest::load(storage, &dir)?.unwrap_or_else(Manifest::empty);
        remove_unlisted_runs(storage, &dir, &manifest)?;
        let segments = open_segments(storage, &dir, ReplayMode::Repair, log_start(&manifest))?;
        Db::from_log(dir, config, &segments, witness, Some(lock), manifest)
    }

    /// Opens the database in `path` read-only, beside a writer that may
    /// hold it open (in another process or this one), with the default
    /// [`Config`] (the same as [`Config::read_only`] set with
    /// [`Db::open_with`]).
    ///
    /// The database shows the log as it was when it opened until
    /// [`Db::refresh`] catches it up with what the writer has committed
    /// since (a [`ChangeFeed`](crate::ChangeFeed) refreshes by itself while
    /// it waits).
    /// It takes no lock and never creates, writes, truncates, syncs or
    /// deletes a file: where a writer's open would repair the end of the
    /// log (a torn last frame, a half-created newest segment) a read-only
    /// open ends the log before it, since a writer may be writing it right
    /// now; [`Stats::torn_tail_bytes`] counts the bytes it ignored. Damage
    /// elsewhere is [`Error::Corrupt`] as for a writer. A valid index
    /// checkpoint is used, never written.
    ///
    /// Every read works (views, as-of reads, history, `log`, `diff`, the
    /// change feed, `verify`, `stats`, `backup`). Every write fails with
    /// [`Error::ReadOnly`]: [`WriteTx::commit`] (so also purge, erase,
    /// retention and revert commits), [`Db::purge_history`], [`Db::erase`],
    /// [`Db::compact`] and [`Db::checkpoint`]. [`Db::flush`] has nothing
    /// to flush and returns `Ok`.
    ///
    /// A missing directory, or one without segments, is [`Error::NotFound`].
    /// Segment files are opened once, here: a writer's later compaction
    /// renames rewritten segments over them, and this database keeps
    /// reading the files it opened.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = timecask::Db::open(dir.path())?;
    /// let mut tx = db.begin();
    /// tx.put("t", b"k", b"v1")?;
    /// tx.commit()?;
    /// // The writer keeps the database open; a reader opens it beside it.
    /// let reader = timecask::Db::open_read_only(dir.path())?;
    /// let mut tx = db.begin();
    /// tx.put("t", b"k", b"v2")?;
    /// tx.commit()?;
    /// assert_eq!(reader.snapshot().get("t", b"k")?, Some(b"v1".to_vec()));
    /// assert!(matches!(
    ///     reader.begin().commit(),
    ///     Err(timecask::Error::ReadOnly { .. })
    /// ));
    /// let reader = timecask::Db::open_read_only(dir.path())?;
    /// assert_eq!(reader.snapshot().get("t", b"k")?, Some(b"v2".to_vec()));
    /// # Ok(()) }
    /// ```
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Db> {
        Db::open_with(
            path,
            Config {
                read_only: true,
                ..Config::default()
            },
        )
    }

    /// Whether this database was opened read-only ([`Db::open_read_only`]).
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let writer = timecask::Db::open(dir.path())?;
    /// let config = timecask::Config { read_only: true, ..Default::default() };
    /// let reader = timecask::Db::open_with(dir.path(), config)?;
    /// assert!(reader.is_read_only() && !writer.is_read_only());
    /// # Ok(()) }
    /// ```
    pub fn is_read_only(&self) -> bool {
        self.shared.config.read_only
    }

    /// Catches a read-only database up with what the writer (in another
    /// process, or this one) has committed since it opened or last
    /// refreshed, and returns the new latest txid.
    ///
    /// It reads only what is new: frames appended to the newest segment,
    /// segments the writer rolled to, and, when the writer sealed segments
    /// into history runs or merged runs (a new `MANIFEST`), the runs that
    /// replaced them. Only complete frames whose checksum holds are
    /// applied: a frame the writer is appending right now (a torn end of
    /// the newest segment) is not an error, the log just ends before it
    /// until a later refresh. Damage a writer would refuse (a bad frame
    /// followed by a newer segment, a checksummed frame that does not
    /// decode) is [`Error::Corrupt`]; the database keeps what it had.
    ///
    /// Views taken before a refresh keep answering as of their txid, even
    /// after the writer deleted the segments they read from: the files
    /// stay open while read, and sealed history is read from the runs. One
    /// exception: the writer cannot see this process's views, so its
    /// purges, retention trims and erasures are not held back by them
    /// (after a refresh past a purge, history below its horizon is gone
    /// here too, as for the writer's own views after an erasure).
    ///
    /// A refresh is cheap when nothing changed (a read of the manifest and
    /// the newest segment's length); refreshes of one database run one at
    /// a time. On a writable database there is nothing to catch up with:
    /// it returns [`Db::latest_txid`].
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let writer = timecask::Db::open(dir.path())?;
    /// let mut tx = writer.begin();
    /// tx.put("t", b"k", b"v1")?;
    /// tx.commit()?;
    /// let reader = timecask::Db::open_read_only(dir.path())?;
    /// let before = reader.snapshot();
    /// let mut tx = writer.begin();
    /// tx.put("t", b"k", b"v2")?;
    /// let t2 = tx.commit()?.expect("one change");
    /// assert_eq!(reader.refresh()?, t2);
    /// assert_eq!(reader.snapshot().get("t", b"k")?, Some(b"v2".to_vec()));
    /// // A view taken before the refresh keeps its state.
    /// assert_eq!(before.get("t", b"k")?, Some(b"v1".to_vec()));
    /// // A writable database is always up to date.
    /// assert_eq!(writer.refresh()?, t2);
    /// # Ok(()) }
    /// ```
    pub fn refresh(&self) -> Result<TxId> {
        self.shared.refresh()
    }

    /// The read-only open: only reads the directory and the files in it.
    fn open_read_only_in(dir: PathBuf, config: Config) -> Result<Db> {
        match std::fs::metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound { path: dir });
            }
            Err(e) => return Err(Error::io(&dir, e)),
            Ok(meta) if !meta.is_dir() => return Err(Error::NotADatabase { path: dir }),
            Ok(_) => {}
        }
        refuse_foreign_directory(&dir)?;
        // Read before the log: a writer records the witness only after the
        // frames it covers are in the segment, so the log seen afterwards
        // reaches at least as far.
        let witness = read_witness(config.storage.as_ref(), &dir)?;
        // A writer's compaction may switch the manifest and delete what
        // the old one named while this opens: then open again.
        let mut attempts = 0;
        loop {
            let storage = config.storage.as_ref();
            let manifest = manifest::load(storage, &dir)?.unwrap_or_else(Manifest::empty);
            let opened = open_segments(storage, &dir, ReplayMode::ReadOnly, log_start(&manifest))
                .and_then(|segments| {
                    Db::from_log(
                        dir.clone(),
                        config.clone(),
                        &segments,
                        witness,
                        None,
                        manifest.clone(),
                    )
                });
            match opened {
                Err(e) if attempts < 3 => {
                    let now = manifest::load(storage, &dir)?.unwrap_or_else(Manifest::empty);
                    if now.seq == manifest.seq {
                        return Err(e);
                    }
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    /// Builds the database from its opened segments (after the lock, if
    /// any, is held).
    fn from_log(
        dir: PathBuf,
        config: Config,
        segments: &OpenSegments,
        witness: WitnessState,
        lock: Option<File>,
        manifest: Manifest,
    ) -> Result<Db> {
        let poison = Arc::new(Poison::default());
        let expected = Expected {
            acknowledged: witness.acknowledged(),
            recovery: config.recovery,
        };
        let block_cache = Arc::new(BlockCache::new(config.block_cache_size()));
        let runs = Arc::new(RunSet::open(
            config.storage.as_ref(),
            &dir,
            &manifest,
            Arc::clone(&block_cache),
        )?);
        let base = Index::from_manifest(&manifest, runs);
        let (files, index, recovered, checkpoint_used) =
            load_and_replay(&dir, &config, segments, expected, &poison, base)?;
        assert_eq!(index.last_txid(), recovered.last_txid);
        let last_commit_time = index
            .tx(recovered.last_txid)
            .map_or(manifest.runs_through_time, |t| t.commit_time);
        let horizon = index.horizon();
        let cache = ValueCache::new(config.value_cache_size());
        // Recovery made the whole log it kept durable; from now on the
        // witness says so (and, after an accepted loss, no more than that).
        let witness = match lock {
            Some(_) => Some(Witness::open(
                config.storage.as_ref(),
                &dir,
                witness,
                recovered.last_txid,
                &poison,
            )?),
            None => None,
        };
        let tail = lock.is_none().then(|| {
            let (segment, offset) = recovered.writer.position();
            LogTail {
                segment,
                offset,
                next_txid: recovered.last_txid.next(),
            }
        });
        let (active, active_path) = recovered.writer.active();
        let durable = Durable::new(
            recovered.last_txid,
            Arc::clone(active),
            active_path.clone(),
            poison,
            witness,
        );
        let shared = Arc::new(Shared {
            dir,
            config,
            durable,
            pins: Pins::new(horizon),
            cache,
            maintenance: Mutex::new(()),
            torn_tail_bytes: recovered.torn_bytes,
            lost_txids: recovered.lost.clone(),
            checkpoint_used,
            frames_replayed: recovered.frames_replayed,
            frames_since_checkpoint: AtomicU64::new(recovered.frames_replayed),
            index: RwLock::new(index),
            manifest: Mutex::new(manifest),
            block_cache,
            sealed_count: Mutex::new(None),
            sealer: Arc::new(SealTrigger::default()),
            files,
            writer: Mutex::new(WriterState {
                log: recovered.writer,
                last_commit_time,
            }),
            tail: Mutex::new(tail),
            _lock: lock,
        });
        let auto = shared.config.seal_log_bytes.is_some() || shared.config.memory_budget.is_some();
        let sealer = match (&shared._lock, shared.config.seal_log_bytes) {
            (Some(_), threshold) if shared.config.history_runs && auto => {
                // A log already past the threshold is sealed right away.
                let log_bytes: u64 = shared
                    .files
                    .ids()
                    .into_iter()
                    .filter_map(|id| shared.files.handle(id).ok()?.len().ok())
                    .sum();
                shared.sealer.appended(log_bytes, threshold);
                let tail = shared.read_index().tail_estimate();
                shared.sealer.tail(tail, shared.config.tail_budget());
                Some(Arc::new(crate::sealer::start(&shared)?))
            }
            _ => None,
        };
        let close = (!shared.config.read_only).then(|| Arc::new(CloseGuard(Arc::clone(&shared))));
        Ok(Db {
            _sealer: sealer,
            _close: close,
            shared,
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.shared.dir
    }

    /// The latest committed (and visible) txid; `TxId(0)` for an empty database.
    pub fn latest_txid(&self) -> TxId {
        self.shared.visible()
    }

    /// Starts a write transaction over a snapshot of the latest state.
    ///
    /// Nothing is written until [`WriteTx::commit`]; dropping the
    /// transaction aborts it and consumes no txid.
    pub fn begin(&self) -> WriteTx {
        WriteTx::new(self.snapshot())
    }

    /// A read-only view of the latest committed state. It never changes
    /// while held, whatever is committed meanwhile.
    pub fn snapshot(&self) -> Snapshot {
        // The latest txid is never below the horizon (purges stop at it).
        Snapshot::new(Arc::clone(&self.shared), self.latest_txid())
            .expect("the latest txid is at or above the purge horizon")
    }

    /// A read-only view of the state right after transaction `txid`
    /// committed (`TxId(0)`: before the first commit, an empty view).
    ///
    /// A txid after the latest is [`Error::FutureTxid`].
    pub fn as_of(&self, txid: TxId) -> Result<Snapshot> {
        self.shared.check_readable(txid)?;
        Snapshot::new(Arc::clone(&self.shared), txid)
    }

    /// A view of the state at wall-clock time `time`: as of the last
    /// transaction that committed at or before it.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = timecask::Db::open(dir.path())?;
    /// let view = db.as_of_time(std::time::SystemTime::now())?;
    /// assert_eq!(view.txid(), timecask::TxId(0));
    /// # Ok(()) }
    /// ```
    pub fn as_of_time(&self, time: impl Into<Timestamp>) -> Result<Snapshot> {
        let time = time.into();
        let latest = self.latest_txid();
        let (in_tail, runs) = {
            let index = self.shared.read_index();
            (index.txid_at_time(time), index.runs().cloned())
        };
        let txid = match (in_tail, runs) {
            (Some(txid), _) => txid,
            (None, Some(runs)) => runs.txid_at_time(time)?,
            (None, None) => TxId::ZERO,
        };
        self.as_of(txid.min(latest))
    }

    /// Fsyncs everything committed so far (needed only for
    /// [`Durability::Buffered`](crate::Durability::Buffered) commits).
    ///
    /// On a read-only database there is nothing to flush: `Ok` at once.
    pub fn flush(&self) -> Result<()> {
        if self.is_read_only() {
            return Ok(());
        }
        self.shared.durable.sync_all()
    }

    /// Time, metadata and every change of transaction `txid`.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = timecask::Db::open(dir.path())?;
    /// let mut tx = db.begin();
    /// tx.set_meta("user", "ann")?;
    /// tx.put("t", b"k", b"v")?;
    /// let txid = tx.commit()?.unwrap();
    /// let record = db.transaction(txid)?;
    /// assert_eq!(record.meta["user"], "ann");
    /// assert_eq!(record.changes[0].op, timecask::Op::Insert);
    /// # Ok(()) }
    /// ```
    pub fn transaction(&self, txid: TxId) -> Result<TxRecord> {
        if txid == TxId::ZERO {
            return Err(Error::NoSuchTransaction { txid });
        }
        self.shared.check_readable(txid)?;
        self.shared.read_tx(txid)
    }

    /// The transactions in `txids`, oldest first. An explicit end after the
    /// latest txid is [`Error::FutureTxid`]; an open end stops at the latest.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// for record in db.log(timecask::TxId(1)..)? {
    ///     let record = record?;
    ///     println!("{} changed {} keys", record.txid, record.changes.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn log(&self, txids: impl RangeBounds<TxId>) -> Result<LogIter> {
        let latest = self.latest_txid();
        let horizon = self.shared.pins.horizon();
        let start = match txids.start_bound() {
            Bound::Included(t) => t.0.max(1),
            Bound::Excluded(t) => t.0.saturating_add(1).max(1),
            // From the oldest transaction whose record is whole.
            Bound::Unbounded => horizon.0.max(1),
        };
        let end = match txids.end_bound() {
            Bound::Included(t) => *t,
            Bound::Excluded(t) => TxId(t.0.saturating_sub(1)),
            Bound::Unbounded => latest,
        };
        if end > latest {
            return Err(Error::FutureTxid {
                requested: end,
                latest,
            });
        }
        // Pin the start so a purge cannot rewrite what is still to come.
        let pin = Snapshot::new(Arc::clone(&self.shared), TxId(start.min(latest.0)))?;
        Ok(LogIter {
            shared: Arc::clone(&self.shared),
            _pin: pin,
            next: start,
            end: end.0,
        })
    }

    /// Drops history superseded at or before `before` in one transaction
    /// (see [`WriteTx::purge_history`]); returns its txid, or `None` if the
    /// horizon is already there.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// for v in ["a", "b", "c"] {
    ///     let mut tx = db.begin();
    ///     tx.put("t", b"k", v)?;
    ///     tx.commit()?;
    /// }
    /// db.purge_history(timecask::TxId(2))?;
    /// assert!(matches!(db.as_of(timecask::TxId(1)), Err(timecask::Error::HistoryPurged { .. })));
    /// assert_eq!(db.as_of(timecask::TxId(2))?.get("t", b"k")?, Some(b"b".to_vec()));
    /// # Ok(()) }
    /// ```
    pub fn purge_history(&self, before: TxId) -> Result<Option<TxId>> {
        let mut tx = self.begin();
        tx.set_durability(crate::Durability::Immediate);
        tx.purge_history(before)?;
        tx.commit()
    }

    /// Erases every version of `key` in `table` in one transaction (see
    /// [`WriteTx::erase`]); returns its txid.
    pub fn erase(&self, table: &str, key: impl AsRef<[u8]>) -> Result<TxId> {
        let mut tx = self.begin();
        tx.set_durability(crate::Durability::Immediate);
        tx.erase(table, key)?;
        Ok(tx.commit()?.expect("an erase record is always written"))
    }

    /// Writes an index checkpoint so the next open reads it instead of
    /// replaying the whole log (it then replays only later frames). Commits
    /// wait while the index is copied in memory. Also done on close when
    /// [`Config::checkpoint_on_close`] is set and enough changed.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = timecask::Db::open(dir.path())?;
    /// # let mut tx = db.begin(); tx.put("t", b"k", b"v")?; tx.commit()?;
    /// db.checkpoint()?;
    /// drop(db);
    /// let db = timecask::Db::open(dir.path())?;
    /// assert!(db.stats().opened_from_checkpoint);
    /// # Ok(()) }
    /// ```
    pub fn checkpoint(&self) -> Result<CheckpointReport> {
        let report = self.shared.write_checkpoint()?;
        self.shared
            .frames_since_checkpoint
            .store(0, Ordering::Relaxed);
        Ok(report)
    }

    /// Counts of what the database holds.
    pub fn stats(&self) -> Stats {
        let sealed = self.shared.sealed_versions();
        let index = self.shared.read_index();
        Stats {
            latest_txid: index.last_txid(),
            n_versions: index.n_versions() + sealed,
            n_tables: index.table_names_at(index.last_txid()).len(),
            horizon: index.horizon(),
            torn_tail_bytes: self.shared.torn_tail_bytes,
            lost_txids: self.shared.lost_txids.clone(),
            opened_from_checkpoint: self.shared.checkpoint_used,
            frames_replayed: self.shared.frames_replayed,
            background_error: self.shared.sealer.error(),
            history_runs: index.runs().map_or(0, |r| r.runs().len()),
        }
    }
}

/// Counts of what a database holds, from [`Db::stats`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The latest committed txid.
    pub latest_txid: TxId,
    /// Versions across all keys and tables.
    pub n_versions: u64,
    /// Tables created so far.
    pub n_tables: usize,
    /// The oldest readable txid (0 until history is purged).
    pub horizon: TxId,
    /// Bytes of a torn (unacknowledged) tail cut off the log at open; for a
    /// read-only database, the bytes after the valid log that it ignored
    /// (perhaps a commit a writer was appending as it opened). Counted to
    /// the last non-zero byte: zeros after the last frame are preallocated
    /// space, not a tear.
    pub torn_tail_bytes: u64,
    /// The index was loaded from the checkpoint at open (only the frames
    /// after it were replayed).
    pub opened_from_checkpoint: bool,
    /// Log frames (transactions) the open replayed into the in-memory
    /// index: those after the history runs and after the checkpoint. A
    /// clean close with history runs seals the log tail, so the next open
    /// replays none.
    pub frames_replayed: u64,
    /// Why the last background job (sealing the log into history runs)
    /// failed, if it did; it is tried again after more commits, and
    /// [`Db::compact`] reports the error itself.
    pub background_error: Option<String>,
    /// Txids that were acknowledged as durable but that the log no longer
    /// held when the database opened with
    /// [`Recovery::AcceptLoss`](crate::Recovery::AcceptLoss); the next
    /// commit reuses the first of them. `None` when nothing was lost.
    pub lost_txids: Option<std::ops::RangeInclusive<TxId>>,
    /// History runs live now (0 without `history_runs`). Background
    /// sealing keeps O(log n) of them, merged by size; [`Db::compact`]
    /// merges them into one.
    pub history_runs: usize,
}

/// Iterator over transactions, from [`Db::log`].
pub struct LogIter {
    shared: Arc<Shared>,
    _pin: Snapshot,
    next: u64,
    end: u64,
}

impl Iterator for LogIter {
    type Item = Result<TxRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next > self.end {
            return None;
        }
        let txid = TxId(self.next);
        self.next += 1;
        Some(self.shared.read_tx(txid))
    }
}

/// Builds the index: from the checkpoint plus the frames after it when the
/// checkpoint is usable, else by replaying the whole log. A checkpoint whose
/// resume point the log contradicts is dropped and the log replayed.
fn load_and_replay(
    dir: &Path,
    config: &Config,
    segments: &OpenSegments,
    expected: Expected,
    poison: &Arc<Poison>,
    base: Index,
) -> Result<(SegmentFiles, Index, Recovered, bool)> {
    let attempt = |index: Index, resume: Option<ResumePoint>| {
        let files = SegmentFiles::new(dir);
        let mut index = index;
        let log = LogFiles {
            storage: &config.storage,
            dir,
            sizing: config.segment_sizing(),
            segments,
            files: &files,
            poison,
        };
        let recovered = replay(log, expected, resume, |loc, payload_len, tx| {
            index.apply(loc, payload_len, tx).map_err(|reason| {
                Error::corrupt(files.path(loc.segment), u64::from(loc.offset), reason)
            })
        })?;
        Ok::<_, Error>((files, index, recovered))
    };
    // A checkpoint continues the runs the manifest lists, or is not used.
    if let Ok((mut index, resume)) = crate::checkpoint::load(dir, segments)
        && index.base() == base.base()
        && {
            index.attach_runs(base.run_set().cloned());
            true
        }
        && let Ok((files, mut index, recovered)) = attempt(index, Some(resume))
    {
        index.shrink_after_replay();
        return Ok((files, index, recovered, true));
    }
    let (files, mut index, recovered) = attempt(base, None)?;
    index.shrink_after_replay();
    Ok((files, index, recovered, false))
}

/// A directory that holds files but no segments and no lock file was not
/// made by timecask; refuse it rather than litter it.
fn log_start(manifest: &Manifest) -> LogStart {
    LogStart {
        segment: manifest.log_first_segment,
        txid: manifest.log_first_txid,
    }
}

/// Deletes run files the manifest does not list: a crash while building
/// one, or after the manifest replaced it. Only names a run of ours has.
fn remove_unlisted_runs(storage: &dyn Storage, dir: &Path, manifest: &Manifest) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut removed = false;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(number) = name.to_str().and_then(manifest::parse_run_file_name) else {
            continue;
        };
        if manifest.runs.iter().any(|r| r.file_number == number) {
            continue;
        }
        let path = entry.path();
        storage
            .remove_file(&path)
            .map_err(|e| Error::io(&path, e))?;
        removed = true;
    }
    if removed {
        storage.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

fn refuse_foreign_directory(dir: &Path) -> Result<()> {
    let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let empty = entries.next().is_none();
    let ours = [LOCK_FILE, WITNESS_FILE, manifest::MANIFEST_FILE]
        .iter()
        .any(|name| dir.join(name).exists());
    if empty || ours || !list_segments(dir)?.is_empty() {
        return Ok(());
    }
    Err(Error::NotADatabase {
        path: dir.to_path_buf(),
    })
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.config.read_only {
            // Never writes: nothing was committed, nothing is checkpointed.
            return;
        }
        // Commits after the last `Db` handle went (a transaction that
        // outlived it) reach the disk too; the next open replays them.
        let _ = self.durable.sync_all();
        let _ = self.lock_writer().log.release_preallocation();
    }
}

impl Shared {
    /// A clean close, when the last `Db` handle goes. Best effort:
    /// Buffered commits reach the disk, and a large replay is not repeated
    /// on the next open: with history runs the tail is sealed into a run
    /// (the next open reads the manifest and the runs' top tables and
    /// replays nothing), else, or if sealing fails, a checkpoint is
    /// written. The newest segment is left as long as its frames.
    fn close(&self) {
        let _ = self.durable.sync_all();
        if self.config.checkpoint_on_close {
            self.prepare_next_open();
        }
        let _ = self.lock_writer().log.release_preallocation();
    }

    /// On a clean close: seal a large log tail into a run (with history
    /// runs), else checkpoint after many new frames. Best effort.
    fn prepare_next_open(&self) {
        let frames = self.frames_since_checkpoint.load(Ordering::Relaxed);
        if self.config.history_runs {
            // The tail is what the next open replays: many frames, or a
            // few large ones (an import in one transaction).
            let tail = self.read_index().n_versions();
            if (frames >= CHECKPOINT_ON_CLOSE_MIN_FRAMES || tail >= CHECKPOINT_ON_CLOSE_MIN_FRAMES)
                && crate::sealer::seal_now(self).is_ok()
            {
                return;
            }
        }
        if frames >= CHECKPOINT_ON_CLOSE_MIN_FRAMES {
            let _ = self.write_checkpoint();
        }
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.shared.dir)
            .field("latest_txid", &self.latest_txid())
            .finish_non_exhaustive()
    }
}
