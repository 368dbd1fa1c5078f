//! Preallocated segment space: the newest segment's file runs ahead of its
//! frames in zeros (`Config::segment_preallocate_bytes`), written and
//! fsynced once per chunk. Recovery, read-only opens, followers, verify,
//! backup and rolls must find the end of the frames, never take the zeros
//! for damage, and a failed or interrupted extension must lose no
//! acknowledged commit.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use timecask::testing::{CrashMode, DirState, FaultyStorage};
use timecask::{Config, Db, Durability, Error, TxId};

mod common;

use common::{frames_end, segments};

const PREALLOCATE: u64 = 8 * 1024;

fn config(durability: Durability) -> Config {
    Config {
        durability,
        segment_roll_bytes: 1 << 20,
        segment_preallocate_bytes: PREALLOCATE,
        ..Config::default()
    }
}

fn faulty(storage: &FaultyStorage, durability: Durability) -> Config {
    Config {
        storage: Arc::new(storage.clone()),
        ..config(durability)
    }
}

fn value(i: u64) -> Vec<u8> {
    vec![i as u8; 700]
}

fn commit(db: &Db, i: u64) -> timecask::Result<Option<TxId>> {
    let mut tx = db.begin();
    tx.put("t", i.to_be_bytes(), value(i))?;
    tx.commit()
}

#[track_caller]
fn assert_has(db: &Db, upto: u64) {
    assert_eq!(db.latest_txid(), TxId(upto));
    let view = db.snapshot();
    for i in 1..=upto {
        assert_eq!(
            view.get("t", i.to_be_bytes()).expect("get"),
            Some(value(i)),
            "tx {i}"
        );
    }
}

/// Copies the files of `from` into the empty directory `to` (what a
/// process crash leaves: the page cache holds every write).
fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        if entry.file_name() != "LOCK" {
            fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

fn len(path: &Path) -> u64 {
    fs::metadata(path).expect("meta").len()
}

#[test]
fn zeros_after_the_last_frame_are_preallocated_space_for_writers_and_readers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(Durability::Immediate)).expect("open");
    for i in 1..=5 {
        commit(&db, i).expect("commit");
    }
    let seg = segments(dir.path()).pop().expect("segment");
    let end = frames_end(&seg);
    assert!(len(&seg) > end, "the open writer preallocated space");
    assert!(
        fs::read(&seg).expect("read")[end as usize..]
            .iter()
            .all(|b| *b == 0)
    );
    // A reader beside the writer ends the log at the zeros.
    let reader = Db::open_read_only(dir.path()).expect("read-only open");
    assert_has(&reader, 5);
    assert_eq!(reader.stats().torn_tail_bytes, 0);
    reader.verify().expect("verify read-only");
    db.verify().expect("verify writer");
    drop(reader);
    // A crash now: read-only first (changes nothing), then the writer,
    // which cuts the zeros.
    let image = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), image.path());
    let image_seg = segments(image.path()).pop().expect("segment");
    let bytes = fs::read(&image_seg).expect("read");
    let reader = Db::open_read_only(image.path()).expect("read-only open of the image");
    assert_has(&reader, 5);
    assert_eq!(reader.stats().torn_tail_bytes, 0);
    drop(reader);
    assert_eq!(fs::read(&image_seg).expect("read"), bytes, "read-only");
    let writer = Db::open_with(image.path(), config(Durability::Immediate)).expect("reopen");
    assert_has(&writer, 5);
    assert_eq!(writer.stats().torn_tail_bytes, 0);
    assert_eq!(len(&image_seg), end, "open cut the zeros");
    commit(&writer, 6).expect("commit after reopen");
    drop(writer);
    // A clean close leaves the segment as long as its frames.
    drop(db);
    assert_eq!(len(&seg), end);
    assert_has(
        &Db::open_with(dir.path(), config(Durability::Immediate)).expect("reopen"),
        5,
    );
}

#[test]
fn a_torn_frame_followed_by_zeros_is_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(Durability::Buffered)).expect("open");
    for i in 1..=5 {
        commit(&db, i).expect("commit");
    }
    db.flush().expect("flush");
    let witness = fs::read(dir.path().join("COMMIT")).expect("witness");
    let seg = segments(dir.path()).pop().expect("segment");
    let start = frames_end(&seg);
    commit(&db, 6).expect("commit");
    let end = frames_end(&seg);
    assert!(len(&seg) > end, "frame 6 went into preallocated space");
    let image = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), image.path());
    drop(db);
    let image_seg = segments(image.path()).pop().expect("segment");
    let whole = fs::read(&image_seg).expect("read");
    // Frame 6 written only in part (its end never reached the disk, the
    // preallocated zeros are still there), at every cut.
    for cut in [1, 8, 20, (end - start) / 2, end - start - 1] {
        let mut bytes = whole.clone();
        bytes[(start + cut) as usize..end as usize].fill(0);
        for with_witness in [false, true] {
            fs::write(&image_seg, &bytes).expect("write");
            if with_witness {
                fs::write(image.path().join("COMMIT"), &witness).expect("witness");
            } else {
                fs::remove_file(image.path().join("COMMIT")).expect("remove witness");
            }
            let what = format!("cut {cut}, witness {with_witness}");
            let torn = bytes[start as usize..]
                .iter()
                .rposition(|b| *b != 0)
                .map_or(0, |i| i as u64 + 1);
            let reader = Db::open_read_only(image.path()).expect(&what);
            assert_has(&reader, 5);
            assert_eq!(reader.stats().torn_tail_bytes, torn, "{what}");
            drop(reader);
            assert_eq!(
                fs::read(&image_seg).expect("read"),
                bytes,
                "{what}: read-only"
            );
            let writer = Db::open_with(image.path(), config(Durability::Buffered)).expect(&what);
            assert_has(&writer, 5);
            assert_eq!(writer.stats().torn_tail_bytes, torn, "{what}");
            drop(writer);
            assert_eq!(len(&image_seg), start, "{what}: cut at the torn frame");
        }
    }
}

#[test]
fn zeros_where_acknowledged_frames_were_are_commits_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(Durability::Immediate)).expect("open");
    for i in 1..=5 {
        commit(&db, i).expect("commit");
    }
    let seg = segments(dir.path()).pop().expect("segment");
    let image = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), image.path());
    drop(db);
    let image_seg = segments(image.path()).pop().expect("segment");
    let mut bytes = fs::read(&image_seg).expect("read");
    // Frames 4 and 5 (acknowledged) read back as zeros.
    let mut at = 32;
    for _ in 0..3 {
        let n = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        at += 8 + n;
    }
    let end = frames_end(&image_seg) as usize;
    bytes[at..end].fill(0);
    fs::write(&image_seg, &bytes).expect("write");
    for read_only in [true, false] {
        let err = if read_only {
            Db::open_read_only(image.path()).expect_err("refused")
        } else {
            Db::open_with(image.path(), config(Durability::Immediate)).expect_err("refused")
        };
        assert!(
            matches!(
                err,
                Error::CommitsLost {
                    log_end: TxId(3),
                    acknowledged: TxId(5),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            fs::read(&image_seg).expect("read"),
            bytes,
            "nothing changed"
        );
    }
    assert_eq!(len(&seg), frames_end(&seg));
}

#[test]
fn a_crash_at_any_call_around_extending_keeps_every_acknowledged_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = Db::open_with(dir.path(), faulty(&storage, Durability::Immediate)).expect("open");
    storage.capture_before_every_call(true);
    // 700-byte values in 8 KiB chunks: an extension every ~10 commits.
    let mut acknowledged_at = Vec::new();
    for i in 1..=24 {
        commit(&db, i).expect("commit");
        acknowledged_at.push(storage.calls());
    }
    storage.capture_before_every_call(false);
    let states = storage.take_captures();
    assert!(states.len() > 24 * 2, "every write and fsync captured");
    let modes = CrashMode::all(2);
    for state in &states {
        let acknowledged = acknowledged_at
            .iter()
            .filter(|at| **at <= state.calls())
            .count() as u64;
        for mode in &modes {
            let image = tempfile::tempdir().expect("tempdir");
            state.write_image(dir.path(), image.path(), mode, DirState::Durable);
            let what = format!("call {}, {mode:?}", state.calls());
            let reader = Db::open_read_only(image.path()).expect(&what);
            let seen = reader.latest_txid().0;
            assert!(seen >= acknowledged, "{what}: {seen} < {acknowledged}");
            assert_has(&reader, seen);
            drop(reader);
            let writer = Db::open_with(image.path(), config(Durability::Immediate)).expect(&what);
            assert_eq!(writer.latest_txid().0, seen, "{what}");
            assert_has(&writer, seen);
            writer.verify().expect(&what);
            commit(&writer, seen + 1).expect(&what);
        }
    }
}

/// Which commits, after `before` commits, extend the segment.
fn extending_commits(n: u64) -> Vec<u64> {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(Durability::Immediate)).expect("open");
    let seg = segments(dir.path()).pop().expect("segment");
    let mut out = Vec::new();
    for i in 1..=n {
        let before = len(&seg);
        commit(&db, i).expect("commit");
        if len(&seg) > before {
            out.push(i);
        }
    }
    out
}

#[test]
fn a_failed_extension_fails_the_commit_and_loses_nothing() {
    let extending = extending_commits(30);
    assert!(extending.len() >= 3, "{extending:?}");
    for &i in &extending {
        for (kind, partial, fail_sync) in [
            (io::ErrorKind::StorageFull, 0, false),
            (io::ErrorKind::StorageFull, 1000, false),
            (io::ErrorKind::Other, 0, true),
        ] {
            let what = format!("commit {i}, {kind:?}, partial {partial}, sync {fail_sync}");
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = FaultyStorage::default();
            let db =
                Db::open_with(dir.path(), faulty(&storage, Durability::Immediate)).expect("open");
            for j in 1..i {
                commit(&db, j).expect("commit");
            }
            storage.arm(|p| {
                // The extension's first write of zeros, or its fsync.
                if fail_sync {
                    p.fail_sync_at = Some(1);
                } else {
                    p.fail_write_at = Some(1);
                }
                p.partial_write_bytes = partial;
                p.error = Some(kind);
            });
            let err = commit(&db, i).expect_err(&what);
            assert!(matches!(err, Error::Io { .. }), "{what}: {err:?}");
            assert_has(&db, i - 1);
            // A power cut now keeps every acknowledged commit.
            let image = tempfile::tempdir().expect("tempdir");
            storage.crash_image(dir.path(), image.path(), &[]);
            assert_has(
                &Db::open_with(image.path(), config(Durability::Immediate)).expect(&what),
                i - 1,
            );
            let acknowledged = if fail_sync {
                // A failed fsync refuses every later write until reopen.
                assert!(
                    matches!(commit(&db, i), Err(Error::Poisoned { .. })),
                    "{what}"
                );
                i - 1
            } else {
                // A failed write of zeros changes nothing: the retry works.
                assert_eq!(commit(&db, i).expect(&what), Some(TxId(i)), "{what}");
                i
            };
            drop(db);
            let db = Db::open_with(dir.path(), config(Durability::Immediate)).expect(&what);
            assert!(db.latest_txid().0 >= acknowledged, "{what}");
            assert_has(&db, db.latest_txid().0);
            db.verify().expect(&what);
        }
    }
}

#[test]
fn a_follower_reads_frames_written_into_preallocated_space_and_across_rolls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let small = Config {
        segment_roll_bytes: 16 * 1024,
        segment_preallocate_bytes: 4096,
        ..config(Durability::Immediate)
    };
    let db = Db::open_with(dir.path(), small).expect("open");
    commit(&db, 1).expect("commit");
    let follower = Db::open_read_only(dir.path()).expect("follower");
    assert_has(&follower, 1);
    for i in 2..=80 {
        commit(&db, i).expect("commit");
        if i % 7 == 0 {
            assert_eq!(follower.refresh().expect("refresh"), TxId(i));
            assert_has(&follower, i);
            assert_eq!(follower.stats().torn_tail_bytes, 0);
        }
    }
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "rolled");
    let (newest, sealed) = segs.split_last().expect("segments");
    for seg in sealed {
        // A rolled segment was cut back to its last frame.
        assert_eq!(len(seg), frames_end(seg), "{}", seg.display());
    }
    assert!(
        len(newest) > frames_end(newest),
        "the newest is preallocated"
    );
    assert_eq!(follower.refresh().expect("refresh"), TxId(80));
    assert_has(&follower, 80);
    follower.verify().expect("verify follower");
    db.verify().expect("verify writer");
    // A backup holds frames only.
    let backup = tempfile::tempdir().expect("tempdir");
    let target = backup.path().join("copy");
    db.backup(&target).expect("backup");
    for seg in segments(&target) {
        assert_eq!(len(&seg), frames_end(&seg), "{}", seg.display());
    }
    assert_has(&Db::open_read_only(&target).expect("open backup"), 80);
}

#[test]
fn a_checkpoint_records_the_end_of_the_frames_not_of_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(Durability::Immediate)).expect("open");
    for i in 1..=5 {
        commit(&db, i).expect("commit");
    }
    db.checkpoint().expect("checkpoint");
    commit(&db, 6).expect("commit");
    // A crash: the zeros are still there when the next open checks the
    // checkpoint against the segment.
    let image = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), image.path());
    drop(db);
    for path in [dir.path(), image.path()] {
        let db = Db::open_with(path, config(Durability::Immediate)).expect("reopen");
        assert!(db.stats().opened_from_checkpoint, "{}", path.display());
        assert_has(&db, 6);
    }
}

#[test]
fn preallocation_off_appends_every_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let off = Config {
        segment_preallocate_bytes: 0,
        ..config(Durability::Immediate)
    };
    let db = Db::open_with(dir.path(), off).expect("open");
    let seg = segments(dir.path()).pop().expect("segment");
    for i in 1..=5 {
        commit(&db, i).expect("commit");
        assert_eq!(len(&seg), frames_end(&seg));
    }
}

/// The header of segment `id` whose first txid is `first_txid`.
fn segment_header(id: u32, first_txid: u64) -> Vec<u8> {
    let mut header = Vec::new();
    header.extend_from_slice(b"TCASKLOG");
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&id.to_le_bytes());
    header.extend_from_slice(&first_txid.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32fast::hash(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    header
}

#[test]
fn after_a_failed_roll_the_old_segment_keeps_ending_at_its_frames() {
    let mut failed_rolls = 0;
    for fail_sync in 1..=4 {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FaultyStorage::default();
        let db = Db::open_with(dir.path(), faulty(&storage, Durability::Buffered)).expect("open");
        let n = 5;
        for i in 1..=n {
            commit(&db, i).expect("commit");
        }
        // Compaction seals the active segment (a roll); one of its fsyncs
        // is the new segment's header, whose creation then fails.
        storage.arm(|p| p.fail_sync_at = Some(fail_sync));
        let compacted = db.compact();
        let segs = segments(dir.path());
        if compacted.is_ok() || segs.len() != 1 || commit(&db, n + 1).is_err() {
            // No failed roll, or the segment's own fsync failed (poisoned).
            continue;
        }
        failed_rolls += 1;
        let what = format!("fsync {fail_sync}");
        // Commits go on into the first segment, without preallocation.
        let last = n + 30;
        for i in n + 2..=last {
            commit(&db, i).expect(&what);
        }
        assert_eq!(len(&segs[0]), frames_end(&segs[0]), "{what}");
        // A process crash, with the failed roll's new segment left behind
        // (its removal failed too): a stale header after the frames.
        let image = tempfile::tempdir().expect("tempdir");
        storage.crash_image_with(
            dir.path(),
            image.path(),
            &CrashMode::AllWritten,
            DirState::Live,
        );
        fs::write(
            image.path().join("0000000002.tcseg"),
            segment_header(2, n + 1),
        )
        .expect("write");
        let reader = Db::open_read_only(image.path()).expect(&what);
        assert_has(&reader, last);
        drop(reader);
        let reopened = Db::open_with(image.path(), config(Durability::Buffered)).expect(&what);
        assert_has(&reopened, last);
        commit(&reopened, last + 1).expect(&what);
        reopened.verify().expect(&what);
    }
    assert!(failed_rolls > 0, "no fsync failed a roll's creation");
}
