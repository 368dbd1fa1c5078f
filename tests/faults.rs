//! I/O faults through the storage seam: failed writes, failed fsyncs, a
//! full disk, and post-crash images that keep only fsynced bytes.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use timecask::storage::{FileStorage, Storage, StorageFile};
use timecask::{Config, Db, Durability, Error, TxId};

/// Which calls fail. Counters count calls on segment files after the plan
/// is armed; `None` never fails.
#[derive(Debug, Default)]
struct Plan {
    fail_write_at: Option<u64>,
    fail_sync_at: Option<u64>,
    fail_set_len_at: Option<u64>,
    /// A failing write first writes this many bytes (a partial write).
    partial_write_bytes: usize,
    error: Option<io::ErrorKind>,
    writes: u64,
    syncs: u64,
    set_lens: u64,
    /// Bytes of each file known to be durable (as of its last fsync).
    synced_len: HashMap<PathBuf, u64>,
}

/// A file system that fails on cue and remembers what was fsynced.
#[derive(Debug, Clone, Default)]
struct FaultyStorage {
    plan: Arc<Mutex<Plan>>,
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn StorageFile>,
    path: PathBuf,
    plan: Arc<Mutex<Plan>>,
}

fn injected(plan: &Plan) -> io::Error {
    match plan.error {
        Some(io::ErrorKind::StorageFull) => io::Error::from_raw_os_error(28), // ENOSPC
        Some(kind) => io::Error::new(kind, "injected fault"),
        None => io::Error::other("injected fault"),
    }
}

impl Storage for FaultyStorage {
    fn open(&self, path: &Path, create_new: bool) -> io::Result<Arc<dyn StorageFile>> {
        let inner = FileStorage.open(path, create_new)?;
        let len = inner.len()?;
        self.plan
            .lock()
            .expect("plan")
            .synced_len
            .entry(path.to_path_buf())
            .or_insert(len);
        Ok(Arc::new(FaultyFile {
            inner,
            path: path.to_path_buf(),
            plan: Arc::clone(&self.plan),
        }))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        FileStorage.sync_dir(dir)
    }
}

impl StorageFile for FaultyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut plan = self.plan.lock().expect("plan");
        plan.writes += 1;
        if plan.fail_write_at == Some(plan.writes) {
            let partial = plan.partial_write_bytes.min(buf.len());
            self.inner.write_all_at(&buf[..partial], offset)?;
            return Err(injected(&plan));
        }
        self.inner.write_all_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut plan = self.plan.lock().expect("plan");
        plan.set_lens += 1;
        if plan.fail_set_len_at == Some(plan.set_lens) {
            return Err(injected(&plan));
        }
        self.inner.set_len(len)?;
        let synced = plan.synced_len.entry(self.path.clone()).or_insert(len);
        *synced = (*synced).min(len);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut plan = self.plan.lock().expect("plan");
        plan.syncs += 1;
        if plan.fail_sync_at == Some(plan.syncs) {
            return Err(injected(&plan));
        }
        self.inner.sync_data()?;
        let len = self.inner.len()?;
        plan.synced_len.insert(self.path.clone(), len);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl FaultyStorage {
    fn arm(&self, f: impl FnOnce(&mut Plan)) {
        let mut plan = self.plan.lock().expect("plan");
        plan.writes = 0;
        plan.syncs = 0;
        plan.set_lens = 0;
        f(&mut plan);
    }

    /// Copies the database as a power cut would leave it: each segment cut
    /// to its fsynced length, followed by `garbage` bytes standing in for a
    /// torn unsynced tail.
    fn crash_image(&self, from: &Path, to: &Path, garbage: &[u8]) {
        let plan = self.plan.lock().expect("plan");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "tcseg") {
                continue;
            }
            let mut bytes = std::fs::read(&path).expect("read");
            let synced = plan.synced_len.get(&path).copied().unwrap_or(0) as usize;
            if synced < bytes.len() {
                bytes.truncate(synced);
                bytes.extend_from_slice(garbage);
            }
            std::fs::write(to.join(path.file_name().expect("name")), bytes).expect("write");
        }
    }
}

fn open(dir: &Path, storage: &FaultyStorage, durability: Durability) -> Db {
    Db::open_with(
        dir,
        Config {
            durability,
            segment_roll_bytes: 4096,
            storage: Arc::new(storage.clone()),
            ..Config::default()
        },
    )
    .expect("open")
}

fn commit_one(db: &Db, i: u64) -> timecask::Result<Option<TxId>> {
    let mut tx = db.begin();
    tx.put("t", i.to_be_bytes(), vec![i as u8; 100])?;
    tx.commit()
}

#[track_caller]
fn assert_has(db: &Db, upto: u64) {
    assert_eq!(db.latest_txid(), TxId(upto));
    let view = db.snapshot();
    for i in 1..=upto {
        assert_eq!(
            view.get("t", i.to_be_bytes()).expect("get"),
            Some(vec![i as u8; 100]),
            "tx {i}"
        );
    }
}

#[test]
fn failed_write_fails_the_commit_and_loses_nothing() {
    for kind in [io::ErrorKind::StorageFull, io::ErrorKind::Other] {
        for partial in [0, 1, 50] {
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = FaultyStorage::default();
            let db = open(dir.path(), &storage, Durability::Immediate);
            for i in 1..=5 {
                commit_one(&db, i).expect("commit");
            }
            storage.arm(|p| {
                p.fail_write_at = Some(1);
                p.partial_write_bytes = partial;
                p.error = Some(kind);
            });
            let err = commit_one(&db, 6).expect_err("write fails");
            assert!(matches!(err, Error::Io { .. }), "{err}");
            // Reads keep working and see nothing of the failed commit.
            assert_has(&db, 5);
            // The partial write was cut off: the next commit lands cleanly.
            assert_eq!(commit_one(&db, 6).expect("retry"), Some(TxId(6)));
            drop(db);
            assert_has(
                &open(dir.path(), &FaultyStorage::default(), Durability::Immediate),
                6,
            );
        }
    }
}

#[test]
fn failed_write_whose_cleanup_fails_refuses_writes_until_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = open(dir.path(), &storage, Durability::Immediate);
    commit_one(&db, 1).expect("commit");
    storage.arm(|p| {
        p.fail_write_at = Some(1);
        p.partial_write_bytes = 30;
        p.fail_set_len_at = Some(1);
    });
    assert!(matches!(commit_one(&db, 2), Err(Error::Io { .. })));
    assert!(matches!(commit_one(&db, 2), Err(Error::Poisoned { .. })));
    assert_has(&db, 1);
    drop(db);
    // Reopening cuts the partial frame as a torn tail.
    let db = open(dir.path(), &FaultyStorage::default(), Durability::Immediate);
    assert_has(&db, 1);
    assert_eq!(commit_one(&db, 2).expect("commit"), Some(TxId(2)));
}

#[test]
fn failed_fsync_poisons_writes_but_not_reads() {
    for kind in [io::ErrorKind::StorageFull, io::ErrorKind::Other] {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FaultyStorage::default();
        let db = open(dir.path(), &storage, Durability::Immediate);
        for i in 1..=3 {
            commit_one(&db, i).expect("commit");
        }
        storage.arm(|p| {
            p.fail_sync_at = Some(1);
            p.error = Some(kind);
        });
        assert!(matches!(commit_one(&db, 4), Err(Error::Io { .. })));
        // No retry-and-pretend: every later write is refused.
        assert!(matches!(commit_one(&db, 4), Err(Error::Poisoned { .. })));
        assert!(matches!(db.flush(), Err(Error::Poisoned { .. })));
        // The unacknowledged commit 4 never became visible; reads work.
        assert_has(&db, 3);
        let image = tempfile::tempdir().expect("tempdir");
        storage.crash_image(dir.path(), image.path(), &[0x5A; 20]);
        drop(db);
        // After a power cut only fsynced data is left: commits 1..=3.
        assert_has(
            &open(
                image.path(),
                &FaultyStorage::default(),
                Durability::Immediate,
            ),
            3,
        );
        // Reopening the real directory recovers and accepts writes again.
        let db = open(dir.path(), &FaultyStorage::default(), Durability::Immediate);
        assert!(db.latest_txid() >= TxId(3));
        let next = db.latest_txid().0 + 1;
        assert_eq!(commit_one(&db, next).expect("commit"), Some(TxId(next)));
    }
}

#[test]
fn failed_fsync_at_segment_roll_fails_the_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = open(dir.path(), &storage, Durability::Buffered);
    // Buffered commits do not fsync, so the first fsync is the roll's.
    storage.arm(|p| p.fail_sync_at = Some(1));
    let mut failed_at = None;
    for i in 1..=100 {
        if commit_one(&db, i).is_err() {
            failed_at = Some(i);
            break;
        }
    }
    let failed_at = failed_at.expect("a roll happened within 100 commits");
    assert!(matches!(
        commit_one(&db, failed_at),
        Err(Error::Poisoned { .. })
    ));
    assert_has(&db, failed_at - 1);
}

#[test]
fn crash_images_keep_every_acknowledged_immediate_commit() {
    // Take an image after every commit: the image keeps exactly the
    // fsynced prefix plus a garbage tail, and must open with every
    // acknowledged commit.
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = open(dir.path(), &storage, Durability::Immediate);
    for i in 1..=60u64 {
        commit_one(&db, i).expect("commit");
        let image = tempfile::tempdir().expect("tempdir");
        let garbage: Vec<u8> = (0..(i * 37 % 200)).map(|b| (b * 31 + i) as u8).collect();
        storage.crash_image(dir.path(), image.path(), &garbage);
        let recovered = open(
            image.path(),
            &FaultyStorage::default(),
            Durability::Immediate,
        );
        assert_has(&recovered, i);
    }
}

#[test]
fn crash_images_after_buffered_commits_keep_what_was_flushed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = open(dir.path(), &storage, Durability::Buffered);
    let mut flushed = 0;
    for i in 1..=80u64 {
        commit_one(&db, i).expect("commit");
        if i % 9 == 0 {
            db.flush().expect("flush");
            flushed = i;
        }
        let image = tempfile::tempdir().expect("tempdir");
        storage.crash_image(dir.path(), image.path(), &[0xEE; 13]);
        let recovered = open(
            image.path(),
            &FaultyStorage::default(),
            Durability::Buffered,
        );
        let latest = recovered.latest_txid().0;
        assert!(
            latest >= flushed,
            "flushed commit {flushed} lost (image has {latest})"
        );
        assert_has(&recovered, latest);
    }
}
