//! The index checkpoint: used when valid, ignored (full replay) when stale,
//! damaged, foreign or invalidated by compaction — never a wrong answer.

mod common;
use common::{run_file_count, segments};

use std::path::Path;

use timecask::{Config, Db, Durability, HistoryQuery, TxId};

fn config() -> Config {
    Config {
        durability: Durability::Buffered,
        segment_roll_bytes: 8192,
        checkpoint_on_close: false,
        ..Config::default()
    }
}

fn commit_range(db: &Db, from: u64, to: u64) {
    for i in from..to {
        let mut tx = db.begin();
        tx.set_meta("i", i.to_string()).expect("meta");
        tx.put("t", (i % 17).to_be_bytes(), format!("v{i}"))
            .expect("put");
        if i % 5 == 0 {
            tx.delete("t", ((i + 3) % 17).to_be_bytes())
                .expect("delete");
        }
        tx.commit().expect("commit");
    }
}

/// Everything observable, to compare two opens of the same log.
fn fingerprint(db: &Db) -> Vec<String> {
    let mut out = vec![format!(
        "{:?}",
        (db.latest_txid(), db.stats().n_versions, db.stats().horizon)
    )];
    for t in (0..=db.latest_txid().0).step_by(7) {
        let Ok(view) = db.as_of(TxId(t)) else {
            continue;
        };
        let rows: Vec<_> = view
            .iter("t")
            .expect("iter")
            .map(|kv| kv.expect("kv"))
            .collect();
        out.push(format!("{t}: {rows:?}"));
    }
    for k in 0..17u64 {
        let h = db
            .snapshot()
            .history("t", k.to_be_bytes(), HistoryQuery::all())
            .expect("history");
        out.push(format!(
            "{k}: {:?}",
            h.iter()
                .map(|v| (v.txid, v.op, v.meta.clone()))
                .collect::<Vec<_>>()
        ));
    }
    out
}

fn reopen(dir: &Path) -> Db {
    Db::open_with(dir, config()).expect("open")
}

#[test]
fn checkpoint_is_used_and_gives_the_same_answers_as_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = reopen(dir.path());
    commit_range(&db, 0, 300);
    let want = fingerprint(&db);
    let report = db.checkpoint().expect("checkpoint");
    assert_eq!(report.txid, TxId(300));
    drop(db);
    let db = reopen(dir.path());
    assert!(db.stats().opened_from_checkpoint);
    assert_eq!(fingerprint(&db), want);
    db.verify().expect("verify");
    // Frames after the checkpoint are replayed on top of it.
    commit_range(&db, 300, 420);
    let want = fingerprint(&db);
    drop(db);
    let db = reopen(dir.path());
    assert!(db.stats().opened_from_checkpoint);
    assert_eq!(fingerprint(&db), want);
    db.verify().expect("verify");
}

#[test]
fn damaged_or_foreign_checkpoints_fall_back_to_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = reopen(dir.path());
    commit_range(&db, 0, 200);
    let want = fingerprint(&db);
    db.checkpoint().expect("checkpoint");
    drop(db);
    let path = dir.path().join("index.tccp");
    let original = std::fs::read(&path).expect("read");
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", original[..original.len() / 2].to_vec()),
        ("empty", Vec::new()),
    ];
    for at in [0, 9, 20, 40, original.len() / 3, original.len() - 1] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x20;
        cases.push(("flipped", bytes));
    }
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).expect("write");
        let db = reopen(dir.path());
        assert!(!db.stats().opened_from_checkpoint, "{what}");
        assert_eq!(fingerprint(&db), want, "{what}");
    }
}

#[test]
fn compaction_and_torn_tails_invalidate_the_checkpoint_safely() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = reopen(dir.path());
    commit_range(&db, 0, 300);
    db.checkpoint().expect("checkpoint");
    db.purge_history(TxId(250)).expect("purge");
    db.compact().expect("compact");
    let want = fingerprint(&db);
    drop(db);
    let db = reopen(dir.path());
    assert!(!db.stats().opened_from_checkpoint, "compaction removed it");
    assert_eq!(fingerprint(&db), want);
    db.checkpoint().expect("checkpoint");
    drop(db);
    // A segment shorter than the checkpoint says: not used.
    let segments = segments(dir.path());
    let newest = segments.last().expect("segment");
    let len = std::fs::metadata(newest).expect("meta").len();
    if len > 40 {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(newest)
            .expect("open");
        f.set_len(len - 3).expect("truncate");
        drop(f);
        let db = reopen(dir.path());
        assert!(!db.stats().opened_from_checkpoint);
        db.verify().expect("verify");
    }
}

#[test]
fn clean_close_writes_a_checkpoint_after_many_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        durability: Durability::Buffered,
        history_runs: false,
        ..Config::default()
    };
    let db = Db::open_with(dir.path(), config.clone()).expect("open");
    commit_range(&db, 0, 10_050);
    drop(db);
    let db = Db::open_with(dir.path(), config).expect("open");
    assert!(db.stats().opened_from_checkpoint);
    assert_eq!(db.latest_txid(), TxId(10_050));
}

/// The defaults (history runs, a clean close seals the tail) with
/// Buffered commits and 64 KiB segments.
fn sealing_on_close() -> Config {
    Config {
        durability: Durability::Buffered,
        segment_roll_bytes: 64 * 1024,
        ..Config::default()
    }
}

/// The close work (sealing the tail) runs when the last `Db` handle goes,
/// in its thread; a snapshot that outlives every handle keeps reading and
/// its drop seals nothing; a transaction that outlives them still commits
/// (durably when asked), replayed by the next open.
#[test]
fn the_last_db_handle_seals_on_close_not_a_snapshot_that_outlives_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = sealing_on_close();
    let db = Db::open_with(dir.path(), config.clone()).expect("open");
    commit_range(&db, 0, 10_050);
    let view = db.snapshot();
    let seen = |view: &timecask::Snapshot| {
        let rows: Vec<_> = view
            .iter("t")
            .expect("iter")
            .map(|kv| kv.expect("kv"))
            .collect();
        let history = view
            .history("t", 3u64.to_be_bytes(), HistoryQuery::all())
            .expect("history");
        (rows, history)
    };
    let seen_before = seen(&view);
    let mut late = db.begin();
    late.put("late", b"k", b"after the close").expect("put");
    late.set_durability(Durability::Immediate);
    let clone = db.clone();
    drop(db);
    assert_eq!(
        run_file_count(dir.path()),
        0,
        "a handle is left: nothing sealed yet"
    );
    drop(clone);
    assert!(
        run_file_count(dir.path()) > 0,
        "the last handle sealed the tail"
    );
    assert_eq!(
        seen(&view),
        seen_before,
        "the view still reads, from the run"
    );
    let sealed = run_file_count(dir.path());
    let late_txid = late.commit().expect("commit after the close");
    assert_eq!(late_txid, Some(TxId(10_051)));
    drop(view);
    assert_eq!(
        run_file_count(dir.path()),
        sealed,
        "no seal in a later drop"
    );
    let db = Db::open_with(dir.path(), config).expect("open");
    assert_eq!(db.stats().frames_replayed, 1, "the late commit is replayed");
    assert_eq!(
        db.snapshot().get("late", b"k").expect("get"),
        Some(b"after the close".to_vec())
    );
    let view = db.as_of(TxId(10_050)).expect("as of the close");
    assert_eq!(seen(&view), seen_before);
}

/// With history runs (the default), a clean close after many frames seals
/// the log tail into a run instead: the next open replays nothing and
/// answers as before, and a close after few frames leaves the log alone.
#[test]
fn clean_close_with_runs_seals_the_tail_so_the_next_open_replays_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = sealing_on_close();
    let db = Db::open_with(dir.path(), config.clone()).expect("open");
    commit_range(&db, 0, 10_050);
    let before = fingerprint(&db);
    drop(db);
    let db = Db::open_with(dir.path(), config.clone()).expect("open");
    let stats = db.stats();
    assert_eq!(stats.frames_replayed, 0, "{stats:?}");
    assert!(!stats.opened_from_checkpoint);
    assert_eq!(fingerprint(&db), before);
    // A few more commits: closed without sealing, replayed on open.
    commit_range(&db, 10_050, 10_060);
    let before = fingerprint(&db);
    drop(db);
    let db = Db::open_with(dir.path(), config.clone()).expect("open");
    assert_eq!(db.stats().frames_replayed, 10);
    assert_eq!(fingerprint(&db), before);
    drop(db);
    // An import in one transaction: one frame, many versions, sealed too.
    let db = Db::open_with(dir.path(), config.clone()).expect("open");
    let mut tx = db.begin();
    for k in 0..12_000u32 {
        tx.put("import", k.to_be_bytes(), b"row").expect("put");
    }
    tx.commit().expect("commit");
    drop(db);
    let db = Db::open_with(dir.path(), config).expect("open");
    assert_eq!(db.stats().frames_replayed, 0);
    assert_eq!(db.snapshot().iter("import").expect("iter").count(), 12_000);
}
