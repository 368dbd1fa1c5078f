//! History runs wired into the engine: compaction seals history into runs,
//! and every read answers the same before and after, across reopens, for
//! writers and readers, with purges and erasures in between.

use std::collections::BTreeMap;
use std::path::Path;

use timecask::{Config, Db, HistoryQuery, Op, TxId};

fn config() -> Config {
    Config {
        segment_roll_bytes: 4 * 1024,
        run_block_bytes: 64,
        run_index_page_entries: 3,
        history_runs: true,
        ..Config::default()
    }
}

fn open(dir: &Path) -> Db {
    Db::open_with(dir, config()).unwrap()
}

type Value = Option<Vec<u8>>;
/// A history entry: txid, end txid, value.
type Step = (TxId, Option<TxId>, Value);
/// A transaction record: txid, metadata entries, (table, key, value)s.
type Record = (TxId, usize, Vec<(String, Vec<u8>, Value)>);

/// Everything a reader can see, as plain data, for comparison.
#[derive(Debug, PartialEq)]
struct Seen {
    latest: Vec<(Vec<u8>, Vec<u8>)>,
    reverse: Vec<Vec<u8>>,
    count: u64,
    as_of: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
    gets: Vec<Option<Vec<u8>>>,
    versions: Vec<Option<(TxId, Option<TxId>, Op)>>,
    histories: Vec<Vec<Step>>,
    newest_two: Vec<Vec<TxId>>,
    txs: Vec<Record>,
    diff: Vec<(Vec<u8>, Value, Value)>,
}

fn seen(db: &Db, keys: &[Vec<u8>], txids: &[TxId]) -> Seen {
    let view = db.snapshot();
    let latest = view.iter("t").unwrap().map(|kv| kv.unwrap()).collect();
    let reverse = view
        .iter("t")
        .unwrap()
        .rev()
        .map(|kv| kv.unwrap().0)
        .collect();
    let as_of = txids
        .iter()
        .map(|t| {
            db.as_of(*t)
                .unwrap()
                .range("t", b"k03".to_vec()..b"k15".to_vec())
                .unwrap()
                .map(|kv| kv.unwrap())
                .collect()
        })
        .collect();
    let mut gets = Vec::new();
    let mut versions = Vec::new();
    for t in txids {
        let v = db.as_of(*t).unwrap();
        for k in keys {
            gets.push(v.get("t", k).unwrap());
            versions.push(
                v.get_version("t", k)
                    .unwrap()
                    .map(|v| (v.txid, v.end_txid, v.op)),
            );
        }
    }
    let histories = keys
        .iter()
        .map(|k| {
            view.history("t", k, HistoryQuery::all())
                .unwrap()
                .into_iter()
                .map(|v| (v.txid, v.end_txid, v.value))
                .collect()
        })
        .collect();
    let newest_two = keys
        .iter()
        .map(|k| {
            view.history("t", k, HistoryQuery::all().newest_first().limit(2))
                .unwrap()
                .into_iter()
                .map(|v| v.txid)
                .collect()
        })
        .collect();
    let txs = db
        .log(..)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            let changes = r
                .changes
                .into_iter()
                .map(|c| (c.table, c.key, c.value))
                .collect();
            (r.txid, r.meta.len(), changes)
        })
        .collect();
    let diff = db
        .diff("t", txids[0], *txids.last().unwrap())
        .unwrap()
        .into_iter()
        .map(|d| (d.key, d.before, d.after))
        .collect();
    Seen {
        latest,
        reverse,
        count: view.count("t").unwrap(),
        as_of,
        gets,
        versions,
        histories,
        newest_two,
        txs,
        diff,
    }
}

/// Rounds of updates, deletes and metadata, a compaction after some.
fn write_rounds(db: &Db, rounds: u32, compact_every: u32) -> Vec<TxId> {
    let mut txids = Vec::new();
    for round in 0..rounds {
        let mut tx = db.begin();
        for k in 0..20u32 {
            let key = format!("k{k:02}");
            if (k + round) % 7 == 0 {
                tx.delete("t", &key).unwrap();
            } else if (k * 3 + round) % 4 != 0 {
                tx.put(
                    "t",
                    &key,
                    format!("{key}-r{round}-{}", "x".repeat(k as usize)),
                )
                .unwrap();
            }
        }
        if round % 3 == 0 {
            tx.set_meta("round", round.to_string()).unwrap();
        }
        txids.push(tx.commit().unwrap().unwrap());
        if compact_every > 0 && round % compact_every == compact_every - 1 {
            db.compact().unwrap();
        }
    }
    txids
}

fn keys() -> Vec<Vec<u8>> {
    (0..22u32)
        .map(|k| format!("k{k:02}").into_bytes())
        .collect()
}

fn run_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tcrun")
        })
        .count()
}

/// A database without history runs: the answers to compare with.
fn plain() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(
        dir.path(),
        Config {
            history_runs: false,
            ..config()
        },
    )
    .unwrap();
    (dir, db)
}

/// A database without history runs (the answers to compare with) and one
/// whose background sealer runs every `seal_log_bytes` of log.
fn plain_and_sealing(seal_log_bytes: u64) -> (tempfile::TempDir, Db, tempfile::TempDir, Db) {
    let (plain, a) = plain();
    let sealed = tempfile::tempdir().unwrap();
    let b = Db::open_with(
        sealed.path(),
        Config {
            seal_log_bytes: Some(seal_log_bytes),
            ..config()
        },
    )
    .unwrap();
    (plain, a, sealed, b)
}

#[test]
fn reads_are_the_same_with_history_in_runs_after_reopen_and_read_only() {
    let (_plain, a) = plain();
    let sealed = tempfile::tempdir().unwrap();
    let b = open(sealed.path());
    let txids = write_rounds(&a, 30, 0);
    assert_eq!(write_rounds(&b, 30, 4), txids);
    let picks: Vec<TxId> = [1, 2, 5, 9, 13, 20, 29].iter().map(|i| txids[*i]).collect();
    let want = seen(&a, &keys(), &picks);
    assert!(run_files(sealed.path()) >= 1, "compaction made runs");
    assert_eq!(seen(&b, &keys(), &picks), want, "live, runs and tail");
    b.compact().unwrap();
    assert_eq!(seen(&b, &keys(), &picks), want, "everything in runs");
    b.verify().unwrap();
    drop(b);
    let b = open(sealed.path());
    assert_eq!(seen(&b, &keys(), &picks), want, "after reopen");
    let r = Db::open_read_only(sealed.path()).unwrap();
    assert_eq!(seen(&r, &keys(), &picks), want, "read-only");
    // More commits on top of the runs, then compare again.
    write_rounds(&a, 5, 0);
    write_rounds(&b, 5, 0);
    let picks2: Vec<TxId> = picks.iter().copied().chain([TxId(33)]).collect();
    assert_eq!(seen(&b, &keys(), &picks2), seen(&a, &keys(), &picks2));
    assert_eq!(
        a.as_of_time(a.transaction(txids[7]).unwrap().commit_time)
            .unwrap()
            .txid(),
        b.as_of_time(b.transaction(txids[7]).unwrap().commit_time)
            .unwrap()
            .txid()
    );
    let backup = tempfile::tempdir().unwrap();
    b.backup(backup.path().join("copy")).unwrap();
    let copy = Db::open(backup.path().join("copy")).unwrap();
    assert_eq!(seen(&copy, &keys(), &picks2), seen(&a, &keys(), &picks2));
    copy.verify().unwrap();
}

#[test]
fn purge_and_erase_hide_run_versions_at_once_and_compaction_drops_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let txids = write_rounds(&db, 12, 0);
    db.compact().unwrap();
    db.erase("t", b"k01").unwrap();
    assert_eq!(db.snapshot().get("t", b"k01").unwrap(), None);
    assert!(
        db.snapshot()
            .history("t", b"k01", HistoryQuery::all())
            .unwrap()
            .is_empty()
    );
    assert_eq!(db.as_of(txids[3]).unwrap().get("t", b"k01").unwrap(), None);
    let before = db
        .snapshot()
        .history("t", b"k02", HistoryQuery::all())
        .unwrap()
        .len();
    db.purge_history(txids[8]).unwrap();
    let after: Vec<TxId> = db
        .snapshot()
        .history("t", b"k02", HistoryQuery::all())
        .unwrap()
        .iter()
        .map(|v| v.txid)
        .collect();
    assert!(after.len() < before, "{after:?}");
    assert!(after.iter().skip(1).all(|t| *t > txids[8]));
    let report = db.compact().unwrap();
    assert!(report.versions_dropped > 0, "{report:?}");
    let check = |db: &Db| {
        assert_eq!(db.snapshot().get("t", b"k01").unwrap(), None);
        let again: Vec<TxId> = db
            .snapshot()
            .history("t", b"k02", HistoryQuery::all())
            .unwrap()
            .iter()
            .map(|v| v.txid)
            .collect();
        assert_eq!(again, after);
        db.verify().unwrap();
    };
    check(&db);
    drop(db);
    check(&open(dir.path()));
}

#[test]
fn a_transaction_open_across_a_compaction_still_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    write_rounds(&db, 3, 0);
    let mut slow = db.begin();
    slow.put("t", b"k05", b"slow").unwrap();
    let mut fast = db.begin();
    fast.put("t", b"k05", b"fast").unwrap();
    fast.commit().unwrap();
    db.compact().unwrap();
    assert!(matches!(
        slow.commit(),
        Err(timecask::Error::Conflict { .. })
    ));
    assert_eq!(
        db.snapshot().get("t", b"k05").unwrap().as_deref(),
        Some(&b"fast"[..])
    );
}

#[test]
fn leftovers_of_a_crash_around_the_manifest_switch_are_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let txids = write_rounds(&db, 10, 0);
    let segments_before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tcseg"))
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    let want = seen(&db, &keys(), &txids[..3]);
    db.compact().unwrap();
    drop(db);
    // A crash after the install, before the deletions: the sealed segments
    // are still there; a crash while building: an unlisted run.
    for (path, bytes) in &segments_before {
        if !path.exists() {
            std::fs::write(path, bytes).unwrap();
        }
    }
    std::fs::write(dir.path().join("0000000000000777.tcrun"), b"half a run").unwrap();
    std::fs::write(dir.path().join("MANIFEST.tmp"), b"half a manifest").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not ours").unwrap();
    let r = Db::open_read_only(dir.path()).unwrap();
    assert_eq!(seen(&r, &keys(), &txids[..3]), want);
    drop(r);
    let db = open(dir.path());
    assert_eq!(seen(&db, &keys(), &txids[..3]), want);
    assert!(!dir.path().join("0000000000000777.tcrun").exists());
    assert!(!dir.path().join("MANIFEST.tmp").exists());
    assert!(dir.path().join("notes.txt").exists());
    assert!(!segments_before[0].0.exists(), "covered segment deleted");
    db.verify().unwrap();
}

#[test]
fn a_damaged_run_is_corrupt_never_other_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let txids = write_rounds(&db, 10, 0);
    db.compact().unwrap();
    let want: BTreeMap<Vec<u8>, Vec<u8>> = db
        .as_of(txids[4])
        .unwrap()
        .iter("t")
        .unwrap()
        .map(|kv| kv.unwrap())
        .collect();
    drop(db);
    let run = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "tcrun"))
        .unwrap();
    let bytes = std::fs::read(&run).unwrap();
    for pos in (0..bytes.len()).step_by(37) {
        let mut damaged = bytes.clone();
        damaged[pos] ^= 0x10;
        std::fs::write(&run, &damaged).unwrap();
        let outcome = Db::open_read_only(dir.path()).and_then(|db| {
            let got: Result<BTreeMap<_, _>, _> = db.as_of(txids[4])?.iter("t")?.collect();
            got
        });
        match outcome {
            Ok(got) => assert_eq!(got, want, "flip at {pos} changed the answer"),
            Err(timecask::Error::Corrupt { .. }) => {}
            Err(e) => panic!("flip at {pos}: {e:?}"),
        }
    }
    std::fs::write(&run, &bytes).unwrap();
    open(dir.path()).verify().unwrap();
}

#[test]
fn the_background_sealer_keeps_the_log_short_and_changes_no_answer() {
    let (_plain, a, sealed, b) = plain_and_sealing(16 * 1024);
    let txids = write_rounds(&a, 60, 0);
    assert_eq!(write_rounds(&b, 60, 0), txids);
    // The sealer runs on its own thread: wait for it to catch up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while run_files(sealed.path()) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(run_files(sealed.path()) >= 1, "the sealer made runs");
    assert_eq!(b.stats().background_error, None);
    let picks: Vec<TxId> = [0, 9, 30, 59].iter().map(|i| txids[*i]).collect();
    assert_eq!(seen(&b, &keys(), &picks), seen(&a, &keys(), &picks));
    // Dropping the last handle stops the thread: the directory can be
    // opened again at once.
    drop(b);
    let b = open(sealed.path());
    assert_eq!(seen(&b, &keys(), &picks), seen(&a, &keys(), &picks));
    b.verify().unwrap();
    let segments = std::fs::read_dir(sealed.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tcseg")
        })
        .count();
    assert!(segments < 10, "{segments} segments left");
}

#[test]
fn a_memory_budget_seals_the_tail_when_its_index_would_outgrow_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(
        dir.path(),
        Config {
            seal_log_bytes: None,
            memory_budget: Some(timecask::limits::MEMORY_BUDGET_MIN),
            ..config()
        },
    )
    .unwrap();
    // Tiny versions: the log grows slowly, the index's tail fast.
    for round in 0..40u32 {
        let mut tx = db.begin();
        for k in 0..1_000u32 {
            tx.put("t", k.to_be_bytes(), round.to_be_bytes()).unwrap();
        }
        tx.commit().unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while run_files(dir.path()) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(run_files(dir.path()) >= 1, "the budget made the sealer run");
    assert_eq!(db.stats().background_error, None);
    assert_eq!(db.stats().n_versions, 40_000);
    let v = db.snapshot();
    assert_eq!(v.count("t").unwrap(), 1_000);
    assert_eq!(
        v.history("t", 7u32.to_be_bytes(), HistoryQuery::all())
            .unwrap()
            .len(),
        40
    );
    assert!(matches!(
        Db::open_with(
            tempfile::tempdir().unwrap().path(),
            Config {
                memory_budget: Some(1024),
                ..Config::default()
            }
        ),
        Err(timecask::Error::InvalidConfig { .. })
    ));
}

/// Checkpoints while the background sealer retires segments: each one
/// succeeds (it never names a segment the sealer is removing) and the
/// database reopens with everything.
#[test]
fn checkpoints_beside_the_background_sealer_succeed_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        durability: timecask::Durability::Buffered,
        segment_roll_bytes: timecask::limits::SEGMENT_ROLL_SIZE_MIN,
        seal_log_bytes: Some(timecask::limits::SEGMENT_ROLL_SIZE_MIN),
        ..Config::default()
    };
    let db = Db::open_with(dir.path(), config.clone()).expect("open");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checkpoints = {
        let (db, done) = (db.clone(), std::sync::Arc::clone(&done));
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                db.checkpoint().expect("checkpoint beside the sealer");
                n += 1;
            }
            n
        })
    };
    for round in 0..400u32 {
        let mut tx = db.begin();
        for k in 0..4u32 {
            tx.put("t", k.to_be_bytes(), [round as u8; 300])
                .expect("put");
        }
        tx.commit().expect("commit");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(checkpoints.join().expect("checkpoint thread") > 0);
    assert_eq!(db.stats().background_error, None);
    drop(db);
    let db = Db::open_with(dir.path(), config).expect("reopen");
    let history = db
        .snapshot()
        .history("t", 2u32.to_be_bytes(), HistoryQuery::all())
        .expect("history");
    assert_eq!(history.len(), 400);
    db.verify().expect("verify");
}

/// Background sealing leaves several runs, merged by size; a compaction
/// merges them all into one. Neither changes an answer.
#[test]
fn compaction_merges_every_run_into_one_and_changes_no_answer() {
    let (_plain, a, sealed, b) = plain_and_sealing(8 * 1024);
    let mut txids = Vec::new();
    // Chunks of rounds, each given time for the sealer, until it has
    // left at least two runs (sizes 3 and 1 at the latest: the newest run
    // is merged only while it is at least half the size of those after).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while b.stats().history_runs < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sealer left {} runs",
            b.stats().history_runs
        );
        let chunk = write_rounds(&a, 12, 0);
        assert_eq!(write_rounds(&b, 12, 0), chunk);
        txids.extend(chunk);
        // Time for the sealer, which the chunk's commits woke.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(b.stats().background_error, None);
    let picks: Vec<TxId> = [0, 5, txids.len() / 2, txids.len() - 1]
        .iter()
        .map(|i| txids[*i])
        .collect();
    let want = seen(&a, &keys(), &picks);
    assert_eq!(seen(&b, &keys(), &picks), want, "several runs");
    b.compact().unwrap();
    assert_eq!(b.stats().history_runs, 1, "compaction leaves one run");
    assert_eq!(run_files(sealed.path()), 1);
    assert_eq!(seen(&b, &keys(), &picks), want, "one run");
    b.verify().unwrap();
    drop(b);
    let b = open(sealed.path());
    assert_eq!(b.stats().history_runs, 1);
    assert_eq!(seen(&b, &keys(), &picks), want, "one run, reopened");
}
