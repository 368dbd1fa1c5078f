//! I/O faults through the storage seam: failed writes, failed fsyncs, a
//! full disk, and post-crash images that keep only fsynced bytes.

use std::io;
use std::path::Path;
use std::sync::Arc;

use timecask::testing::FaultyStorage;
use timecask::{Config, Db, Durability, Error, TxId};

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
fn a_purge_whose_write_fails_purges_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = open(dir.path(), &storage, Durability::Immediate);
    for i in 1..=5 {
        commit_one(&db, i).expect("commit");
    }
    storage.arm(|p| p.fail_write_at = Some(1));
    let mut tx = db.begin();
    tx.purge_history(TxId(4)).expect("purge");
    assert!(matches!(tx.commit(), Err(Error::Io { .. })));
    // History before tx 4 is still there, in memory and after reopening.
    let old = db.as_of(TxId(2)).expect("tx 2 is still readable");
    assert_eq!(
        old.get("t", 2u64.to_be_bytes()).expect("get"),
        Some(vec![2; 100])
    );
    drop(old);
    // The retry purges for real.
    let mut tx = db.begin();
    tx.purge_history(TxId(4)).expect("purge");
    tx.commit().expect("commit");
    assert!(matches!(
        db.as_of(TxId(2)),
        Err(Error::HistoryPurged { .. })
    ));
    drop(db);
    let db = open(dir.path(), &FaultyStorage::default(), Durability::Immediate);
    assert!(matches!(
        db.as_of(TxId(2)),
        Err(Error::HistoryPurged { .. })
    ));
    assert_eq!(db.latest_txid(), TxId(6));
    assert_eq!(
        db.snapshot().get("t", 5u64.to_be_bytes()).expect("get"),
        Some(vec![5; 100])
    );
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
