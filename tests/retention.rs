//! Purge, erase and compaction: what reads see, what the disk keeps, and
//! that a crash at any step of compaction loses nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use std::time::Duration;
use timecask::testing::FaultyStorage;

use timecask::{Config, Db, Durability, Error, HistoryQuery, RetentionPolicy, TxId};

fn config(storage: Option<&FaultyStorage>) -> Config {
    let mut config = Config {
        durability: Durability::Buffered,
        segment_roll_bytes: 4096,
        ..Config::default()
    };
    if let Some(storage) = storage {
        config.storage = Arc::new(storage.clone());
    }
    config
}

/// `config(None)` with history runs stored uncompressed, so a search of
/// the files for erased bytes means something.
fn uncompressed() -> Config {
    Config {
        run_compression: timecask::RunCompression::None,
        ..config(None)
    }
}

/// 200 transactions over 10 keys with deletes; returns the expected value
/// of every key at every txid.
fn fill(db: &Db) -> BTreeMap<(u64, u64), Option<Vec<u8>>> {
    let mut state: BTreeMap<u64, Option<Vec<u8>>> = BTreeMap::new();
    let mut expected = BTreeMap::new();
    for i in 1..=200u64 {
        let mut tx = db.begin();
        let key = i % 10;
        let value = if i % 13 == 0 {
            None
        } else {
            Some(format!("value-{i:04}-{}", "x".repeat(40)).into_bytes())
        };
        match &value {
            Some(v) => tx.put("t", key.to_be_bytes(), v).expect("put"),
            None => {
                tx.delete("t", key.to_be_bytes()).expect("delete");
            }
        }
        let live_before = state.get(&key).cloned().flatten().is_some();
        let changes = value.is_some() || live_before;
        let txid = tx.commit().expect("commit");
        if changes {
            state.insert(key, value);
            let txid = txid.expect("changed").0;
            for k in 0..10 {
                expected.insert((txid, k), state.get(&k).cloned().flatten());
            }
        }
    }
    expected
}

#[track_caller]
fn check_from(db: &Db, expected: &BTreeMap<(u64, u64), Option<Vec<u8>>>, from: u64) {
    for (&(txid, key), want) in expected.range((from, 0)..) {
        let got = db
            .as_of(TxId(txid))
            .expect("as_of")
            .get("t", key.to_be_bytes())
            .expect("get");
        assert_eq!(&got, want, "key {key} as of {txid}");
    }
}

#[test]
fn purge_keeps_everything_from_the_horizon_on_and_refuses_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    let expected = fill(&db);
    let latest = db.latest_txid().0;
    let horizon = latest / 2;
    let versions_before = db.stats().n_versions;
    db.purge_history(TxId(horizon))
        .expect("purge")
        .expect("a purge record");
    assert_eq!(db.stats().horizon, TxId(horizon));
    assert!(db.stats().n_versions < versions_before);
    for t in [0, 1, horizon - 1] {
        assert!(
            matches!(db.as_of(TxId(t)), Err(Error::HistoryPurged { .. })),
            "as_of({t})"
        );
    }
    assert!(matches!(
        db.transaction(TxId(1)),
        Err(Error::HistoryPurged { .. })
    ));
    assert!(matches!(
        db.diff("t", TxId(1), TxId(horizon)),
        Err(Error::HistoryPurged { .. })
    ));
    check_from(&db, &expected, horizon);
    // History starts at the version visible at the horizon.
    for key in 0..10u64 {
        let history = db
            .snapshot()
            .history("t", key.to_be_bytes(), HistoryQuery::all())
            .expect("history");
        if let Some(first) = history.first() {
            assert!(first.txid <= TxId(horizon) || history.iter().all(|v| v.txid > TxId(horizon)));
            assert!(history.iter().filter(|v| v.txid <= TxId(horizon)).count() <= 1);
        }
    }
    // Purging below the horizon again changes nothing.
    assert_eq!(db.purge_history(TxId(3)).expect("no-op"), None);
    // Survives reopen, compaction and verify.
    drop(db);
    let db = Db::open_with(dir.path(), config(None)).expect("reopen");
    assert_eq!(db.stats().horizon, TxId(horizon));
    check_from(&db, &expected, horizon);
    let report = db.compact().expect("compact");
    assert!(
        report.versions_dropped > 0 && report.bytes_after < report.bytes_before,
        "{report:?}"
    );
    db.verify().expect("verify after compaction");
    check_from(&db, &expected, horizon);
    drop(db);
    let db = Db::open_with(dir.path(), config(None)).expect("reopen after compaction");
    db.verify().expect("verify");
    check_from(&db, &expected, horizon);
}

#[test]
fn purge_waits_for_live_views() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    fill(&db);
    let old = db.as_of(TxId(10)).expect("view");
    let before = old.get("t", 3u64.to_be_bytes()).expect("get");
    match db.purge_history(TxId(50)) {
        Err(Error::HistoryInUse {
            requested,
            oldest_view,
        }) => {
            assert_eq!((requested, oldest_view), (TxId(50), TxId(10)));
        }
        other => panic!("expected HistoryInUse, got {other:?}"),
    }
    // The held view is untouched.
    assert_eq!(old.get("t", 3u64.to_be_bytes()).expect("get"), before);
    drop(old);
    db.purge_history(TxId(50))
        .expect("purge after the view is gone");
}

#[test]
fn erase_removes_every_version_from_reads_and_after_compaction_from_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), uncompressed()).expect("open");
    let secret_key = b"ann@example.com";
    let secret = |i: u32| format!("SECRET-PHONE-{i:03}").into_bytes();
    for i in 0..30u32 {
        let mut tx = db.begin();
        tx.put("users", secret_key, secret(i)).expect("put");
        tx.put("users", format!("other{}", i % 3), format!("keep-{i}"))
            .expect("put");
        tx.commit().expect("commit");
    }
    let mut tx = db.begin();
    tx.set_meta("reason", "erasure request 7").expect("meta");
    tx.erase("users", secret_key).expect("erase");
    let erased_at = tx.commit().expect("commit").expect("erase record");
    for t in 1..=erased_at.0 {
        assert_eq!(
            db.as_of(TxId(t))
                .expect("view")
                .get("users", secret_key)
                .expect("get"),
            None,
            "as of {t}"
        );
    }
    assert!(
        db.snapshot()
            .history("users", secret_key, HistoryQuery::all())
            .expect("history")
            .is_empty()
    );
    assert_eq!(
        db.snapshot().get("users", "other2").expect("get"),
        Some(b"keep-29".to_vec())
    );
    let record = db.transaction(erased_at).expect("record");
    assert_eq!(record.meta["reason"], "erasure request 7");
    // Before compaction the bytes are still in the log; after, gone.
    let contains = |needle: &[u8]| {
        std::fs::read_dir(dir.path()).expect("dir").any(|e| {
            let bytes = std::fs::read(e.expect("entry").path()).expect("read");
            bytes.windows(needle.len()).any(|w| w == needle)
        })
    };
    assert!(contains(b"SECRET-PHONE-"));
    db.compact().expect("compact");
    assert!(!contains(b"SECRET-PHONE-"), "erased values left on disk");
    assert!(!contains(secret_key), "erased key left on disk");
    assert!(contains(b"keep-29"));
    db.verify().expect("verify");
    drop(db);
    let db = Db::open_with(dir.path(), uncompressed()).expect("reopen");
    assert_eq!(db.snapshot().get("users", secret_key).expect("get"), None);
    assert_eq!(
        db.snapshot().get("users", "other0").expect("get"),
        Some(b"keep-27".to_vec())
    );
    // The erasure itself stays on record, without the key.
    let record = db.transaction(erased_at).expect("record");
    assert_eq!(record.meta["reason"], "erasure request 7");
    assert!(
        record.changes.iter().all(|c| !c
            .value
            .as_deref()
            .unwrap_or_default()
            .ends_with(secret_key))
    );
    // A key can be written again after its erasure: a fresh history.
    let mut tx = db.begin();
    tx.put("users", secret_key, "new").expect("put");
    tx.commit().expect("commit");
    let history = db
        .snapshot()
        .history("users", secret_key, HistoryQuery::all())
        .expect("history");
    assert_eq!(history.len(), 1);
}

#[test]
fn compaction_runs_while_readers_and_writers_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    let expected = fill(&db);
    let horizon = db.latest_txid().0 - 20;
    db.purge_history(TxId(horizon)).expect("purge");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (db, expected, stop) = (db.clone(), expected.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut rounds = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || rounds < 3 {
                    check_from(&db, &expected, horizon + r);
                    rounds += 1;
                }
            })
        })
        .collect();
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for i in 0..100u64 {
                let mut tx = db.begin();
                tx.put("w", i.to_be_bytes(), [7u8; 50]).expect("put");
                tx.commit().expect("commit");
            }
        })
    };
    for _ in 0..3 {
        db.compact().expect("compact");
    }
    writer.join().expect("writer");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader");
    }
    assert_eq!(db.snapshot().count("w").expect("count"), 100);
    db.verify().expect("verify");
}

/// Runs a purge + erase + compaction with a fault injected at the `n`th
/// write or fsync, then reopens and checks the data is all there.
fn compaction_with_fault(dir: &Path, fail_sync: bool, n: u64) -> bool {
    let storage = FaultyStorage::default();
    let db = Db::open_with(dir, config(Some(&storage))).expect("open");
    let expected = fill(&db);
    let horizon = 120;
    db.purge_history(TxId(horizon)).expect("purge");
    db.erase("t", 4u64.to_be_bytes()).expect("erase");
    storage.arm(|p| {
        if fail_sync {
            p.fail_sync_at = Some(n);
        } else {
            p.fail_write_at = Some(n);
        }
    });
    let failed = db.compact().is_err();
    drop(db);
    let db = Db::open_with(dir, config(None)).expect("reopen after a failed compaction");
    db.verify().expect("verify");
    for (&(txid, key), want) in expected.range((horizon, 0)..) {
        let got = db
            .as_of(TxId(txid))
            .expect("as_of")
            .get("t", key.to_be_bytes())
            .expect("get");
        let want = if key == 4 { None } else { want.clone() };
        assert_eq!(got, want, "key {key} as of {txid} (fault at {n})");
    }
    // A second compaction finishes the job.
    db.compact().expect("compact again");
    db.verify().expect("verify");
    failed
}

#[test]
fn a_fault_at_any_step_of_compaction_loses_nothing() {
    for fail_sync in [false, true] {
        let mut n = 1;
        loop {
            let dir = tempfile::tempdir().expect("tempdir");
            if !compaction_with_fault(dir.path(), fail_sync, n) {
                break; // The fault came after the last write/sync.
            }
            n += 1;
            assert!(n < 200, "compaction never finishes");
        }
        assert!(n > 2, "faults were injected into compaction ({n})");
    }
}

#[test]
fn stray_rewrite_files_are_removed_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    fill(&db);
    drop(db);
    let stray = dir.path().join("0000000001.tcseg.compact");
    std::fs::write(&stray, b"half a rewrite").expect("write");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    assert!(!stray.exists());
    db.verify().expect("verify");
}

/// Writes `n` versions of each of `keys` keys in `table`, one transaction
/// per version.
fn versions(db: &Db, table: &str, keys: u64, n: u64) {
    for v in 0..n {
        for k in 0..keys {
            let mut tx = db.begin();
            tx.put(table, k.to_be_bytes(), format!("{table}-{k}-{v}"))
                .expect("put");
            tx.commit().expect("commit");
        }
    }
}

#[test]
fn keep_last_policy_trims_on_compaction_and_refuses_reads_below_its_horizon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    let mut tx = db.begin();
    tx.set_retention(
        "sessions",
        timecask::RetentionPolicy {
            keep_last: Some(3),
            keep_for: None,
        },
    )
    .expect("policy");
    tx.commit().expect("commit");
    versions(&db, "sessions", 4, 10);
    versions(&db, "audit", 2, 10);
    let before_sessions: Vec<_> = (0..4u64)
        .map(|k| db.snapshot().get("sessions", k.to_be_bytes()).expect("get"))
        .collect();
    let old = TxId(5);
    let audit_at_old = db
        .as_of(old)
        .expect("view")
        .get("audit", 0u64.to_be_bytes())
        .expect("get");
    db.compact().expect("compact");
    for k in 0..4u64 {
        let history = db
            .snapshot()
            .history("sessions", k.to_be_bytes(), HistoryQuery::all())
            .expect("history");
        assert!(
            history.len() <= 3,
            "key {k} keeps {} versions",
            history.len()
        );
        assert!(!history.is_empty());
        assert_eq!(
            db.snapshot().get("sessions", k.to_be_bytes()).expect("get"),
            before_sessions[k as usize]
        );
    }
    // Other tables keep everything; the policy's table refuses old reads.
    let view = db.as_of(old).expect("view of another table's past");
    assert_eq!(
        view.get("audit", 0u64.to_be_bytes()).expect("get"),
        audit_at_old
    );
    assert!(matches!(
        view.get("sessions", 0u64.to_be_bytes()),
        Err(Error::HistoryPurged { .. })
    ));
    assert!(matches!(
        view.contains("sessions", 0u64.to_be_bytes()),
        Err(Error::HistoryPurged { .. })
    ));
    assert_eq!(
        db.snapshot()
            .history("audit", 0u64.to_be_bytes(), HistoryQuery::all())
            .expect("history")
            .len(),
        10
    );
    db.verify().expect("verify");
    // Survives reopen (log replay) and the checkpoint.
    drop(view);
    drop(db);
    let db = Db::open_with(dir.path(), config(None)).expect("reopen");
    assert!(matches!(
        db.as_of(old)
            .expect("view")
            .get("sessions", 0u64.to_be_bytes()),
        Err(Error::HistoryPurged { .. })
    ));
    db.checkpoint().expect("checkpoint");
    drop(db);
    let db = Db::open_with(dir.path(), config(None)).expect("reopen from checkpoint");
    assert!(db.stats().opened_from_checkpoint);
    assert!(matches!(
        db.as_of(old)
            .expect("view")
            .get("sessions", 0u64.to_be_bytes()),
        Err(Error::HistoryPurged { .. })
    ));
    // The policy stays in force: more versions, compact again, still ≤ 3.
    versions(&db, "sessions", 4, 5);
    db.compact().expect("compact");
    for k in 0..4u64 {
        let n = db
            .snapshot()
            .history("sessions", k.to_be_bytes(), HistoryQuery::all())
            .expect("history")
            .len();
        assert!(n <= 3, "key {k}: {n}");
    }
    db.verify().expect("verify");
}

#[test]
fn retention_never_trims_past_a_live_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    let mut tx = db.begin();
    tx.set_retention(
        "t",
        timecask::RetentionPolicy {
            keep_last: Some(1),
            keep_for: None,
        },
    )
    .expect("policy");
    tx.commit().expect("commit");
    versions(&db, "t", 2, 5);
    let held = db.as_of(TxId(3)).expect("view");
    let before = held.get("t", 0u64.to_be_bytes()).expect("get");
    db.compact().expect("compact");
    assert_eq!(
        held.get("t", 0u64.to_be_bytes()).expect("get"),
        before,
        "a held view never changes"
    );
    drop(held);
    db.compact().expect("compact");
    let n = db
        .snapshot()
        .history("t", 0u64.to_be_bytes(), HistoryQuery::all())
        .expect("history")
        .len();
    assert_eq!(n, 1);
}

#[test]
fn keep_for_policy_keeps_young_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    let mut tx = db.begin();
    tx.set_retention(
        "t",
        timecask::RetentionPolicy {
            keep_last: None,
            keep_for: Some(std::time::Duration::from_secs(3600)),
        },
    )
    .expect("policy");
    tx.commit().expect("commit");
    versions(&db, "t", 2, 5);
    db.compact().expect("compact");
    // Everything is younger than an hour: nothing trimmed.
    let n = db
        .snapshot()
        .history("t", 0u64.to_be_bytes(), HistoryQuery::all())
        .expect("history")
        .len();
    assert_eq!(n, 5);
    let mut tx = db.begin();
    tx.set_retention(
        "t",
        timecask::RetentionPolicy {
            keep_last: None,
            keep_for: Some(std::time::Duration::ZERO),
        },
    )
    .expect("policy");
    tx.commit().expect("commit");
    db.compact().expect("compact");
    let n = db
        .snapshot()
        .history("t", 0u64.to_be_bytes(), HistoryQuery::all())
        .expect("history")
        .len();
    assert_eq!(n, 1, "keep_for 0 keeps only what is visible now");
}

#[test]
fn policies_that_protect_nothing_are_refused_and_long_ones_keep_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    for policy in [
        RetentionPolicy {
            keep_last: Some(0),
            keep_for: None,
        },
        RetentionPolicy::default(),
    ] {
        let mut tx = db.begin();
        let err = tx.set_retention("t", policy).expect_err("refused");
        assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
    }
    // u64::MAX microseconds is one step past the longest storable span: it
    // must keep everything, not read back as "no time limit".
    let mut tx = db.begin();
    let forever = Duration::from_micros(u64::MAX);
    tx.set_retention(
        "t",
        RetentionPolicy {
            keep_last: Some(1),
            keep_for: Some(forever),
        },
    )
    .expect("set_retention");
    tx.commit().expect("commit");
    versions(&db, "t", 2, 3);
    db.compact().expect("compact");
    let history = db
        .snapshot()
        .history("t", 0u64.to_be_bytes(), HistoryQuery::all())
        .expect("history");
    assert_eq!(history.len(), 3, "every version is younger than forever");
}

/// A view never loses history while it lives: a table trimmed by a policy
/// either refuses a view's reads from its first read on, or never.
#[test]
fn a_trim_never_pulls_history_from_under_a_live_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    let mut tx = db.begin();
    tx.set_retention(
        "t",
        RetentionPolicy {
            keep_last: Some(1),
            keep_for: None,
        },
    )
    .expect("set_retention");
    tx.commit().expect("commit");
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for round in 0..150u64 {
                let mut tx = db.begin();
                tx.put("t", b"k", round.to_be_bytes()).expect("put");
                tx.commit().expect("commit");
                db.compact().expect("compact");
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let mut checked = 0u64;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            let latest = db.latest_txid().0;
            let Ok(view) = db.as_of(TxId(latest.saturating_sub(2).max(1))) else {
                continue;
            };
            if view.get("t", b"k").is_err() {
                continue;
            }
            std::thread::yield_now();
            let again = view.get("t", b"k");
            assert!(
                again.is_ok(),
                "a read at {} worked, then {again:?}",
                view.txid()
            );
            checked += 1;
        }
        assert!(checked > 0, "some views were checked");
    });
}
