//! Temporal queries over the whole database: diffs between two txids, the
//! change feed, and hot backup.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::db::Db;
use crate::engine::Located;
use crate::error::{Error, Result};
use crate::index::chain::{VersionRef, visible_at};
use crate::log::frame::FRAME_HEADER_SIZE;
use crate::log::segment::{SEGMENT_HEADER_SIZE, segment_path};
use crate::record::TxRecord;
use crate::types::TxId;

/// One key whose value differs between two txids, from [`Db::diff`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffEntry {
    /// The key.
    pub key: Vec<u8>,
    /// Its value at the first txid (`None`: absent).
    pub before: Option<Vec<u8>>,
    /// Its value at the second txid (`None`: absent).
    pub after: Option<Vec<u8>>,
}

/// Keys looked at per index-lock acquisition while diffing.
const DIFF_BATCH: usize = 1024;

impl Db {
    /// Every key of `table` whose value differs between the state as of
    /// `from` and as of `to`, in key order, with both values. A key that
    /// changed and changed back is not listed.
    ///
    /// Only keys with a version between the two txids have their values
    /// read; the rest cost one in-memory check each.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// let mut tx = db.begin();
    /// tx.put("t", b"a", b"1")?;
    /// tx.put("t", b"b", b"1")?;
    /// let t1 = tx.commit()?.unwrap();
    /// let mut tx = db.begin();
    /// tx.put("t", b"a", b"2")?;
    /// tx.delete("t", b"b")?;
    /// let t2 = tx.commit()?.unwrap();
    /// let diff = db.diff("t", t1, t2)?;
    /// assert_eq!(diff.len(), 2);
    /// assert_eq!((diff[1].before.as_deref(), diff[1].after.as_deref()), (Some(&b"1"[..]), None));
    /// # Ok(()) }
    /// ```
    pub fn diff(&self, table: &str, from: TxId, to: TxId) -> Result<Vec<DiffEntry>> {
        self.shared.check_readable(from)?;
        self.shared.check_readable(to)?;
        let (low, high) = (from.min(to), from.max(to));
        // Keep a purge from dropping the versions this diff reads.
        let _pin = crate::read::Snapshot::new(std::sync::Arc::clone(&self.shared), low)?;
        if self.shared.read_index().runs().is_some() {
            let high_view = crate::read::Snapshot::new(std::sync::Arc::clone(&self.shared), high)?;
            let (a, b) = if from <= to {
                (&_pin, &high_view)
            } else {
                (&high_view, &_pin)
            };
            {
                let index = self.shared.read_index();
                index.readable_table_at(table, low)?;
                index.readable_table_at(table, high)?;
            }
            let mut diff = Vec::new();
            for (key, before, after) in crate::read::changed_keys(a, b, table)? {
                let read = |v: Option<crate::read::Found>| match v {
                    Some(v) => v.read(&self.shared),
                    None => Ok(None),
                };
                let (before, after) = (read(before)?, read(after)?);
                if before != after {
                    diff.push(DiffEntry { key, before, after });
                }
            }
            return Ok(diff);
        }
        type Side = Option<Located<VersionRef>>;
        let mut candidates: Vec<(Vec<u8>, Side, Side)> = Vec::new();
        let mut after_key: Option<Vec<u8>> = None;
        loop {
            let index = self.shared.read_index();
            // Both ends must be readable in this table.
            index.readable_table_at(table, low)?;
            let Some(t) = index.readable_table_at(table, high)? else {
                break;
            };
            let range = match &after_key {
                Some(k) => t.keys.range::<[u8], _>((
                    std::ops::Bound::Excluded(k.as_slice()),
                    std::ops::Bound::Unbounded,
                )),
                None => t.keys.range::<[u8], _>(..),
            };
            let mut looked = 0;
            let mut last = None;
            for (key, chain) in range.take(DIFF_BATCH) {
                looked += 1;
                last = Some(key);
                let at_low = visible_at(chain, low).copied();
                let at_high = visible_at(chain, high).copied();
                if at_low.map(|v| v.txid()) != at_high.map(|v| v.txid()) {
                    let locate = |v: Option<VersionRef>| -> Result<Side> {
                        v.map(|v| self.shared.locate(&index, v.segment(), v))
                            .transpose()
                    };
                    let (at_low, at_high) = (locate(at_low)?, locate(at_high)?);
                    let (a, b) = if from <= to {
                        (at_low, at_high)
                    } else {
                        (at_high, at_low)
                    };
                    candidates.push((key.to_vec(), a, b));
                }
            }
            after_key = last.map(|k| k.to_vec());
            if looked < DIFF_BATCH {
                break;
            }
        }
        let mut diff = Vec::new();
        for (key, before, after) in candidates {
            let read = |v: Option<Located<VersionRef>>| match v {
                Some(v) => self.shared.read_value(&v),
                None => Ok(None),
            };
            let (before, after) = (read(before)?, read(after)?);
            if before != after {
                diff.push(DiffEntry { key, before, after });
            }
        }
        Ok(diff)
    }

    /// A change feed: every transaction after `txid`, in order, as it
    /// commits. Resume later from [`ChangeFeed::position`].
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// let mut feed = db.changes_since(db.latest_txid());
    /// let mut tx = db.begin();
    /// tx.put("t", b"k", b"v")?;
    /// tx.commit()?;
    /// let record = feed.wait_next(std::time::Duration::from_secs(1))?.expect("a commit arrived");
    /// assert_eq!(record.changes[0].key, b"k");
    /// # Ok(()) }
    /// ```
    pub fn changes_since(&self, txid: TxId) -> ChangeFeed {
        ChangeFeed {
            db: self.clone(),
            position: txid,
        }
    }

    /// Writes a consistent copy of the database as of the latest txid into
    /// `dest` (which must not exist or be empty), while the database stays
    /// in use. Returns the txid the copy holds. The copy is fsynced and
    /// opens like any database.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// # let mut tx = db.begin(); tx.put("t", b"k", b"v")?; tx.commit()?;
    /// let dest = tempfile::tempdir().unwrap();
    /// let txid = db.backup(dest.path().join("copy"))?;
    /// let copy = timecask::Db::open(dest.path().join("copy"))?;
    /// assert_eq!(copy.latest_txid(), txid);
    /// # Ok(()) }
    /// ```
    pub fn backup(&self, dest: impl AsRef<Path>) -> Result<TxId> {
        let dest = dest.as_ref();
        if dest.exists() {
            let mut entries = fs::read_dir(dest).map_err(|e| Error::io(dest, e))?;
            if entries.next().is_some() {
                return Err(Error::InvalidConfig {
                    reason: format!("backup destination {} is not empty", dest.display()),
                });
            }
        }
        fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
        // Compaction rewrites sealed segments: not while copying them.
        let _no_compaction = self.shared.lock_maintenance();
        let txid = self.latest_txid();
        // Where the copy ends: right after the frame of `txid`.
        let end = self.shared.read_index().tx(txid).map(|info| {
            (
                info.segment,
                u64::from(info.frame_offset)
                    + (FRAME_HEADER_SIZE as u64)
                    + u64::from(info.payload_len),
            )
        });
        // The runs and the manifest that lists them (unchanged while the
        // maintenance lock is held), through the open run handles.
        let runs = self.shared.read_index().runs().cloned();
        if let Some(runs) = runs {
            for run in runs.runs() {
                let name = run
                    .path()
                    .file_name()
                    .ok_or_else(|| Error::corrupt(run.path(), 0, "run path has no file name"))?;
                let len = run.summary().file_bytes;
                copy_file(run.file().as_ref(), run.path(), len, &dest.join(name))?;
            }
            let manifest = self.shared.lock_manifest().clone();
            let out_path = dest.join(crate::manifest::MANIFEST_FILE);
            let mut out = fs::File::create_new(&out_path).map_err(|e| Error::io(&out_path, e))?;
            out.write_all(&manifest.encode())
                .and_then(|()| out.sync_all())
                .map_err(|e| Error::io(&out_path, e))?;
        }
        // The open handles, never a path: a read-only database copies the
        // files it opened, whatever a writer renamed over them since.
        for id in self.shared.files.ids() {
            let src = segment_path(&self.shared.dir, id);
            let file = self.shared.files.handle(id)?;
            let len = match end {
                Some((seg, _)) if id > seg => break,
                Some((seg, end)) if id == seg => end,
                Some(_) => file.len().map_err(|e| Error::io(&src, e))?,
                // An empty database: its first segment's header (a writer
                // may have appended frames after a read-only open).
                None => SEGMENT_HEADER_SIZE as u64,
            };
            copy_file(file.as_ref(), &src, len, &segment_path(dest, id))?;
            if end.is_none() {
                // An empty database: one segment header is the whole copy.
                break;
            }
        }
        fs::File::open(dest)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dest, e))?;
        Ok(txid)
    }
}

/// How often a [`ChangeFeed`] on a read-only database looks for commits
/// of another process while it waits ([`ChangeFeed::wait_next`]).
pub const FOLLOW_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A resumable cursor over committed transactions, from
/// [`Db::changes_since`]. As an [`Iterator`] it yields what is committed
/// now and ends; [`ChangeFeed::wait_next`] blocks for the next commit.
pub struct ChangeFeed {
    db: Db,
    position: TxId,
}

impl ChangeFeed {
    /// The last txid delivered (or the starting txid): pass it to
    /// [`Db::changes_since`] to resume after a restart.
    pub fn position(&self) -> TxId {
        self.position
    }

    /// The next transaction if one is committed, without blocking.
    pub fn try_next(&mut self) -> Result<Option<TxRecord>> {
        if self.position >= self.db.latest_txid() {
            return Ok(None);
        }
        let record = self.db.transaction(self.position.next())?;
        self.position = record.txid;
        Ok(Some(record))
    }

    /// The next transaction, waiting up to `timeout` for one to commit.
    /// `Ok(None)` when the time ran out.
    ///
    /// On a read-only database it follows the writer, in this process or
    /// another: while nothing new is visible it calls [`Db::refresh`]
    /// every [`FOLLOW_POLL_INTERVAL`], so a commit made elsewhere arrives
    /// within about that long of being durable. A refresh error is
    /// returned.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let writer = timecask::Db::open(dir.path())?;
    /// let follower = timecask::Db::open_read_only(dir.path())?;
    /// let mut feed = follower.changes_since(follower.latest_txid());
    /// let mut tx = writer.begin();
    /// tx.put("t", b"k", b"v")?;
    /// let txid = tx.commit()?.expect("one change");
    /// let record = feed.wait_next(std::time::Duration::from_secs(10))?.expect("it arrives");
    /// assert_eq!(record.txid, txid);
    /// # Ok(()) }
    /// ```
    pub fn wait_next(&mut self, timeout: Duration) -> Result<Option<TxRecord>> {
        let deadline = Instant::now() + timeout;
        if !self.db.is_read_only() {
            self.db
                .shared
                .durable
                .wait_visible_beyond(self.position, deadline);
            return self.try_next();
        }
        loop {
            if self.position < self.db.refresh()? {
                return self.try_next();
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(FOLLOW_POLL_INTERVAL.min(deadline - now));
        }
    }
}

impl Iterator for ChangeFeed {
    type Item = Result<TxRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        self.try_next().transpose()
    }
}

/// Copies the first `len` bytes of `file` (at `src`) into a new file
/// `out_path`, fsynced.
fn copy_file(
    file: &dyn crate::storage::StorageFile,
    src: &Path,
    len: u64,
    out_path: &Path,
) -> Result<()> {
    let mut out = fs::File::create_new(out_path).map_err(|e| Error::io(out_path, e))?;
    let mut offset = 0;
    let mut buf = vec![0; (1 << 20).min(len as usize)];
    while offset < len {
        let n = (len - offset).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], offset)
            .map_err(|e| Error::io(src, e))?;
        out.write_all(&buf[..n])
            .map_err(|e| Error::io(out_path, e))?;
        offset += n as u64;
    }
    out.sync_all().map_err(|e| Error::io(out_path, e))
}
