//! Single faults that used to lose data silently or destroy a foreign file
//! (issue 18): a failed fsync inside a checkpoint, zero-filled tails, a
//! missing first segment, a failed compaction's leftovers, a deleted or
//! truncated newest segment, a bit flip in the last acknowledged frame, a
//! foreign file named like a segment, and history windows that meant the
//! wrong thing. One test per defect; each failed before its fix.

mod common;
use common::segments;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use timecask::testing::FaultyStorage;
use timecask::{Config, Db, Durability, Error, HistoryQuery, Op, Recovery, TxId};

fn config(durability: Durability) -> Config {
    Config {
        durability,
        segment_roll_bytes: 4096,
        ..Config::default()
    }
}

/// Commits `n` transactions (txids 1..=n), each putting `k{i % 5}` = `v{i}`.
fn fill(db: &Db, n: u64) {
    for i in db.latest_txid().0 + 1..=n {
        let mut tx = db.begin();
        tx.put("t", format!("k{}", i % 5), format!("v{i}"))
            .expect("put");
        assert_eq!(tx.commit().expect("commit"), Some(TxId(i)));
    }
}

/// Every txid up to `n` reads back what `fill` wrote.
#[track_caller]
fn assert_filled(db: &Db, n: u64) {
    assert_eq!(db.latest_txid(), TxId(n));
    for i in 1..=n {
        let got = db
            .as_of(TxId(i))
            .expect("view")
            .get("t", format!("k{}", i % 5))
            .expect("get");
        assert_eq!(got, Some(format!("v{i}").into_bytes()), "txid {i}");
    }
}

/// Every file of `dir` with its bytes, to check that a refused open
/// changed nothing.
fn snapshot_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = fs::read(&p).expect("read");
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_failed_fsync_inside_checkpoint_poisons_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = Db::open_with(
        dir.path(),
        Config {
            storage: Arc::new(storage.clone()),
            ..config(Durability::Buffered)
        },
    )
    .expect("open");
    fill(&db, 5);
    storage.arm(|p| p.fail_sync_at = Some(1));
    match db.checkpoint() {
        Err(Error::Io { path, .. }) => assert!(
            path.extension().is_some_and(|e| e == "tcseg"),
            "the error names the segment, not {}",
            path.display()
        ),
        other => panic!("checkpoint with a failed fsync: {other:?}"),
    }
    // Buffered txids 1..=5 were never made durable: nothing may claim so.
    assert!(matches!(db.flush(), Err(Error::Poisoned { .. })));
    let mut tx = db.begin();
    tx.set_durability(Durability::Immediate);
    tx.put("t", "x", "y").expect("put");
    assert!(matches!(tx.commit(), Err(Error::Poisoned { .. })));
    // Reads keep working.
    assert_filled(&db, 5);
}

#[test]
fn zero_filled_tails_are_preallocated_space_for_writers_and_readers() {
    for zeros in [8, 9, 64, 4096, 70_000] {
        for with_witness in [true, false] {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = Db::open_with(dir.path(), config(Durability::Immediate)).expect("open");
            fill(&db, 12);
            drop(db);
            if !with_witness {
                // A database written before the witness existed.
                fs::remove_file(dir.path().join("COMMIT")).expect("remove witness");
            }
            let seg = segments(dir.path()).pop().expect("segment");
            let mut bytes = fs::read(&seg).expect("read");
            let len = bytes.len() as u64;
            bytes.resize(bytes.len() + zeros, 0);
            fs::write(&seg, &bytes).expect("write");
            let what = format!("{zeros} zeros, witness {with_witness}");
            let reader = Db::open_read_only(dir.path()).expect(&what);
            assert_filled(&reader, 12);
            // Zeros after the last frame are preallocated space, not a tear.
            assert_eq!(reader.stats().torn_tail_bytes, 0, "{what}");
            assert_eq!(fs::read(&seg).expect("read"), bytes, "{what}: read-only");
            drop(reader);
            let db = Db::open_with(dir.path(), config(Durability::Immediate)).expect(&what);
            assert_filled(&db, 12);
            assert_eq!(db.stats().torn_tail_bytes, 0, "{what}");
            assert_eq!(fs::metadata(&seg).expect("meta").len(), len, "{what}: cut");
            fill(&db, 13);
        }
    }
}

#[test]
fn a_missing_first_segment_is_corrupt_naming_it() {
    for checkpoint in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open_with(dir.path(), config(Durability::Buffered)).expect("open");
        fill(&db, 300);
        if checkpoint {
            db.checkpoint().expect("checkpoint");
        }
        drop(db);
        let segs = segments(dir.path());
        assert!(segs.len() >= 3, "several segments");
        fs::remove_file(&segs[0]).expect("remove first segment");
        let before = snapshot_files(dir.path());
        for read_only in [false, true] {
            let result = Db::open_with(
                dir.path(),
                Config {
                    read_only,
                    ..config(Durability::Buffered)
                },
            );
            match result {
                Err(Error::Corrupt { path, .. }) => assert_eq!(path, segs[0]),
                other => panic!("missing first segment (read-only {read_only}): {other:?}"),
            }
        }
        // The segment after it renamed into its place does not start at 1.
        fs::rename(&segs[1], &segs[0]).expect("rename");
        assert!(matches!(
            Db::open_with(dir.path(), config(Durability::Buffered)),
            Err(Error::Corrupt { .. })
        ));
        fs::rename(&segs[0], &segs[1]).expect("rename back");
        assert_eq!(snapshot_files(dir.path()).len(), before.len());
    }
}

#[test]
fn a_failed_compaction_removes_its_partial_rewrite() {
    for (fail_sync, history_runs) in [(false, false), (true, false), (false, true), (true, true)] {
        // Fail the nth write (or fsync) of a compaction, for every n, until
        // one compaction gets through; some of them fail inside a rewrite
        // (a segment's, or a history run's).
        let mut failed_in_a_rewrite = false;
        for n in 1..200 {
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = FaultyStorage::default();
            let db = Db::open_with(
                dir.path(),
                Config {
                    storage: Arc::new(storage.clone()),
                    history_runs,
                    run_block_bytes: 256,
                    ..config(Durability::Buffered)
                },
            )
            .expect("open");
            fill(&db, 200);
            db.purge_history(TxId(150)).expect("purge");
            let before = db.snapshot().iter("t").expect("iter").count();
            storage.arm(|p| {
                p.error = Some(std::io::ErrorKind::StorageFull);
                if fail_sync {
                    p.fail_sync_at = Some(n);
                } else {
                    p.fail_write_at = Some(n);
                }
            });
            let result = db.compact();
            // A failed sealing leaves no run the manifest does not list.
            let manifest = fs::read(dir.path().join("MANIFEST")).unwrap_or_default();
            let strays: Vec<_> = fs::read_dir(dir.path())
                .expect("read dir")
                .map(|e| e.expect("entry").path())
                .filter(|p| {
                    let name = p.to_string_lossy();
                    name.ends_with(".compact")
                        || name.ends_with("MANIFEST.tmp")
                        || (name.ends_with(".tcrun") && result.is_err() && manifest.is_empty())
                })
                .collect();
            assert!(
                strays.is_empty(),
                "fail_sync {fail_sync}, runs {history_runs}, n {n}: {strays:?} left"
            );
            let ok = result.is_ok();
            match result {
                Ok(_) => {}
                Err(Error::Io { path, .. })
                    if path.to_string_lossy().ends_with(".compact")
                        || path.to_string_lossy().ends_with(".tcrun") =>
                {
                    failed_in_a_rewrite = true;
                }
                Err(_) => {}
            }
            // Nothing readable was lost, before or after a reopen.
            storage.arm(|_| {});
            drop(db);
            let db = Db::open_with(
                dir.path(),
                Config {
                    storage: Arc::new(storage.clone()),
                    history_runs,
                    ..config(Durability::Buffered)
                },
            )
            .expect("reopen");
            assert_eq!(db.snapshot().iter("t").expect("iter").count(), before);
            db.verify().expect("verify");
            if ok {
                break;
            }
        }
        assert!(
            failed_in_a_rewrite,
            "fail_sync {fail_sync}: no fault hit a rewrite"
        );
    }
}

#[test]
fn a_deleted_or_truncated_newest_segment_is_commits_lost_and_changes_nothing() {
    type Damage = fn(&[PathBuf]) -> u64;
    // Each damage returns the txid the log ends at afterwards.
    let cases: [(&str, Damage); 3] = [
        ("deleted newest segment", |segs| {
            fs::remove_file(segs.last().expect("newest")).expect("remove");
            0
        }),
        ("newest cut to its header", |segs| {
            let seg = segs.last().expect("newest");
            let bytes = fs::read(seg).expect("read");
            fs::write(seg, &bytes[..32]).expect("write");
            0
        }),
        ("newest cut inside its last frame", |segs| {
            let seg = segs.last().expect("newest");
            let bytes = fs::read(seg).expect("read");
            fs::write(seg, &bytes[..bytes.len() - 3]).expect("write");
            0
        }),
    ];
    for (what, damage) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open_with(dir.path(), config(Durability::Immediate)).expect("open");
        fill(&db, 100);
        drop(db);
        let segs = segments(dir.path());
        assert!(segs.len() >= 2, "{what}: several segments");
        damage(&segs);
        let before = snapshot_files(dir.path());
        for read_only in [true, false] {
            let result = Db::open_with(
                dir.path(),
                Config {
                    read_only,
                    ..config(Durability::Immediate)
                },
            );
            match result {
                Err(Error::CommitsLost {
                    log_end,
                    acknowledged,
                    ..
                }) => {
                    assert_eq!(acknowledged, TxId(100), "{what}");
                    assert!(log_end < TxId(100), "{what}");
                }
                other => panic!("{what} (read-only {read_only}): {other:?}"),
            }
            assert_eq!(
                snapshot_files(dir.path()),
                before,
                "{what}: nothing changed"
            );
        }
        // An explicit recovery goes on without the lost commits, says so,
        // and the database is whole again afterwards.
        let accept = Config {
            recovery: Recovery::AcceptLoss,
            ..config(Durability::Immediate)
        };
        let db = Db::open_with(dir.path(), accept).expect(what);
        let end = db.latest_txid();
        assert_eq!(
            db.stats().lost_txids,
            Some(end.next()..=TxId(100)),
            "{what}"
        );
        assert_filled(&db, end.0);
        let mut tx = db.begin();
        tx.put("t", "after", "loss").expect("put");
        assert_eq!(tx.commit().expect("commit"), Some(end.next()));
        drop(db);
        let db = Db::open_with(dir.path(), config(Durability::Immediate)).expect("strict reopen");
        assert_eq!(db.latest_txid(), end.next(), "{what}");
        assert_eq!(db.stats().lost_txids, None);
    }
}

#[test]
fn a_bit_flip_in_the_last_acknowledged_frame_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    fill(&db, 3);
    let mut tx = db.begin();
    tx.put("big", "k", vec![7u8; 1 << 20]).expect("put");
    assert_eq!(tx.commit().expect("commit"), Some(TxId(4)));
    drop(db);
    let seg = segments(dir.path()).pop().expect("segment");
    let original = fs::read(&seg).expect("read");
    let frame_start = {
        // The big frame is the last one: 1 MiB of value and a few bytes.
        original.len() - (1 << 20) - 64
    };
    for offset in [
        original.len() - 1,
        original.len() - 500_000,
        frame_start + 40,
    ] {
        let mut damaged = original.clone();
        damaged[offset] ^= 0x10;
        fs::write(&seg, &damaged).expect("write");
        for read_only in [true, false] {
            let result = Db::open_with(
                dir.path(),
                Config {
                    read_only,
                    ..Config::default()
                },
            );
            match result {
                Err(Error::Corrupt {
                    path, offset: at, ..
                }) => {
                    assert_eq!(path, seg);
                    assert!(at as usize <= offset, "names the damaged frame's offset");
                }
                other => panic!("flip at {offset} (read-only {read_only}): {other:?}"),
            }
        }
        assert_eq!(fs::read(&seg).expect("read"), damaged, "nothing was cut");
    }
}

#[test]
fn open_never_rewrites_a_foreign_file_named_like_a_segment() {
    let header_of_segment_1 = {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Db::open(dir.path()).expect("create"));
        fs::read(dir.path().join("0000000001.tcseg")).expect("read")
    };
    assert_eq!(header_of_segment_1.len(), 32);
    for foreign in [&b"hello\n"[..], b"TCASKLOG\x02", &[0xFF; 31]] {
        let dir = tempfile::tempdir().expect("tempdir");
        let seg = dir.path().join("0000000001.tcseg");
        fs::write(&seg, foreign).expect("write");
        let stray = dir.path().join("notes.compact");
        fs::write(&stray, b"mine").expect("write");
        for read_only in [true, false] {
            let result = Db::open_with(
                dir.path(),
                Config {
                    read_only,
                    ..Config::default()
                },
            );
            assert!(
                matches!(
                    result,
                    Err(Error::Corrupt { .. } | Error::NotADatabase { .. })
                ),
                "{foreign:?}: {result:?}"
            );
            assert_eq!(fs::read(&seg).expect("read"), foreign, "{foreign:?}");
            assert_eq!(fs::read(&stray).expect("read"), b"mine");
        }
    }
    // A prefix of the real header is a crash while creating the segment:
    // that one is ours, and repaired.
    for cut in [0, 1, 10, 31] {
        let dir = tempfile::tempdir().expect("tempdir");
        let seg = dir.path().join("0000000001.tcseg");
        fs::write(&seg, &header_of_segment_1[..cut]).expect("write");
        let db = Db::open(dir.path()).expect("a half-made header is repaired");
        fill(&db, 2);
        assert_filled(&db, 2);
    }
}

#[test]
fn history_windows_return_every_version_valid_in_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    // Versions of "k" at txids 2, 5, 9 (a delete) and 12; other keys fill
    // the txids between.
    for txid in 1..=12u64 {
        let mut tx = db.begin();
        match txid {
            2 | 5 | 12 => tx.put("t", "k", format!("v{txid}")).expect("put"),
            9 => assert!(tx.delete("t", "k").expect("delete")),
            _ => tx.put("t", "other", format!("o{txid}")).expect("put"),
        }
        assert_eq!(tx.commit().expect("commit"), Some(TxId(txid)));
    }
    let view = db.snapshot();
    let txids = |query: HistoryQuery| -> Vec<u64> {
        view.history("t", "k", query)
            .expect("history")
            .iter()
            .map(|v| v.txid.0)
            .collect()
    };
    let t = TxId;
    let cases: Vec<(HistoryQuery, Vec<u64>)> = vec![
        // The case: as_of(7) sees the version from 5.
        (HistoryQuery::all().txids(t(6)..=t(8)), vec![5]),
        (HistoryQuery::all().written_in(t(6)..=t(8)), vec![]),
        (HistoryQuery::all().txids(t(1)..=t(1)), vec![]),
        (HistoryQuery::all().txids(t(0)..=t(2)), vec![2]),
        (HistoryQuery::all().txids(t(4)..t(10)), vec![2, 5, 9]),
        (HistoryQuery::all().txids(t(9)..=t(11)), vec![9]),
        (HistoryQuery::all().txids(t(10)..), vec![9, 12]),
        (HistoryQuery::all().txids(t(13)..), vec![]),
        (HistoryQuery::all().txids(t(8)..t(8)), vec![]),
        (HistoryQuery::all().txids(t(5)..=t(5)), vec![5]),
        (HistoryQuery::all().written_in(t(5)..=t(12)), vec![5, 9, 12]),
        (
            HistoryQuery::all()
                .txids(t(3)..=t(10))
                .newest_first()
                .limit(2),
            vec![9, 5],
        ),
    ];
    for (query, want) in cases {
        assert_eq!(txids(query.clone()), want, "{query:?}");
    }
    // The delete is a version too: valid from 9 until 12.
    let deleted = view
        .history("t", "k", HistoryQuery::all().txids(t(10)..=t(10)))
        .expect("history");
    assert_eq!(
        (deleted[0].op, deleted[0].end_txid, deleted[0].value.clone()),
        (Op::Delete, Some(t(12)), None)
    );
    // Paging oldest first with `txids(end_txid..)` visits each version once.
    let mut seen = Vec::new();
    let mut query = HistoryQuery::all().limit(1);
    loop {
        let page = view.history("t", "k", query.clone()).expect("page");
        let Some(v) = page.last() else { break };
        seen.push(v.txid.0);
        let Some(end) = v.end_txid else { break };
        query = HistoryQuery::all().txids(end..).limit(1);
    }
    assert_eq!(seen, [2, 5, 9, 12]);
    // And newest first with `txids(..txid)`.
    let mut seen = Vec::new();
    let mut query = HistoryQuery::all().newest_first().limit(1);
    loop {
        let page = view.history("t", "k", query.clone()).expect("page");
        let Some(v) = page.last() else { break };
        seen.push(v.txid.0);
        query = HistoryQuery::all().txids(..v.txid).newest_first().limit(1);
    }
    assert_eq!(seen, [12, 9, 5, 2]);
}
