//! Reopen, recovery, corruption detection and typed errors for bad input.

mod common;
use common::segments;

use std::fs;
use std::path::Path;

use timecask::limits::{KEY_SIZE_MAX, META_SIZE_MAX, VALUE_SIZE_MAX};
use timecask::{Config, Db, Durability, Error, HistoryQuery, TxId};

fn buffered() -> Config {
    Config {
        durability: Durability::Buffered,
        ..Config::default()
    }
}

/// Commits `n` transactions, each writing `k{i % 7}` = `v{i}` with metadata.
fn fill(db: &Db, n: u64) {
    fill_from(db, 0, n);
}

/// The commits of `fill` from the `from`th (0-based) up to the `n`th.
fn fill_from(db: &Db, from: u64, n: u64) {
    for i in from..n {
        let mut tx = db.begin();
        tx.set_meta("i", i.to_string()).expect("meta");
        tx.put("t", format!("k{}", i % 7), format!("v{i}"))
            .expect("put");
        tx.commit().expect("commit");
    }
}

/// Every txid up to `n` reads back what `fill` wrote.
#[track_caller]
fn assert_filled(db: &Db, n: u64) {
    assert_eq!(db.latest_txid(), TxId(n));
    for txid in 1..=n {
        let record = db.transaction(TxId(txid)).expect("transaction");
        let i = txid - 1;
        assert_eq!(record.meta["i"], i.to_string());
        let value = db
            .as_of(TxId(txid))
            .expect("view")
            .get("t", format!("k{}", i % 7))
            .expect("get");
        assert_eq!(value, Some(format!("v{i}").into_bytes()));
    }
}

#[test]
fn reopen_keeps_every_commit_across_segment_rolls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        segment_roll_bytes: 4096,
        ..buffered()
    };
    let db = Db::open_with(dir.path(), config.clone()).expect("open");
    fill(&db, 300);
    drop(db);
    assert!(segments(dir.path()).len() > 3, "segments rolled");
    let db = Db::open_with(dir.path(), config.clone()).expect("reopen");
    assert_filled(&db, 300);
    let mut tx = db.begin();
    tx.put("t", "after", "reopen").expect("put");
    assert_eq!(tx.commit().expect("commit"), Some(TxId(301)));
    drop(db);
    let db = Db::open_with(dir.path(), config).expect("reopen again");
    assert_eq!(
        db.snapshot().get("t", "after").expect("get"),
        Some(b"reopen".to_vec())
    );
    assert_eq!(db.stats().n_versions, 301);
}

#[test]
fn immediate_commits_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    fill(&db, 5);
    drop(db);
    assert_filled(&Db::open(dir.path()).expect("reopen"), 5);
}

#[test]
fn torn_tail_is_cut_and_database_stays_writable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), buffered()).expect("open");
    fill(&db, 9);
    db.flush().expect("flush");
    // Commit 10 is written but, as in a crash before its fsync, the commit
    // witness never learns of it: a cut inside it is a torn tail.
    let witness = fs::read(dir.path().join("COMMIT")).expect("witness");
    fill_from(&db, 9, 10);
    drop(db);
    fs::write(dir.path().join("COMMIT"), &witness).expect("restore witness");
    let seg = segments(dir.path()).pop().expect("segment");
    let len = fs::metadata(&seg).expect("meta").len();
    // Cut the last frame at every byte inside it: the first 9 commits stay.
    let original = fs::read(&seg).expect("read");
    let last_frame_start = {
        let db = Db::open_with(dir.path(), buffered()).expect("open");
        let size_without_last = len - frame_len(&db, TxId(10));
        drop(db);
        size_without_last
    };
    for cut in last_frame_start + 1..len {
        fs::write(&seg, &original[..cut as usize]).expect("write");
        fs::write(dir.path().join("COMMIT"), &witness).expect("restore witness");
        let db = Db::open_with(dir.path(), buffered()).expect("open after tear");
        assert_filled(&db, 9);
        // Torn bytes run to the last non-zero one (zeros after a bad frame
        // cannot be told from preallocated space).
        let torn = original[last_frame_start as usize..cut as usize]
            .iter()
            .rposition(|b| *b != 0)
            .map_or(0, |i| i as u64 + 1);
        assert_eq!(db.stats().torn_tail_bytes, torn);
    }
    // Garbage appended after valid frames is a torn tail too.
    fs::write(&seg, &original).expect("write");
    let mut garbage = original.clone();
    garbage.extend_from_slice(&[0xAB; 37]);
    fs::write(&seg, &garbage).expect("write");
    let db = Db::open_with(dir.path(), buffered()).expect("open");
    assert_filled(&db, 10);
    let mut tx = db.begin();
    tx.put("t", "new", "v").expect("put");
    assert_eq!(tx.commit().expect("commit"), Some(TxId(11)));
    drop(db);
    let db = Db::open_with(dir.path(), buffered()).expect("reopen");
    assert_eq!(db.latest_txid(), TxId(11));
    assert_eq!(
        db.snapshot().get("t", "new").expect("get"),
        Some(b"v".to_vec())
    );
    assert_eq!(
        db.as_of(TxId(10))
            .expect("view")
            .get("t", "k2")
            .expect("get"),
        Some(b"v9".to_vec())
    );
}

/// Size of the frame of `txid` on disk, recomputed from its record by the
/// layout in FORMAT.md (this helper assumes the transaction created no table).
fn frame_len(db: &Db, txid: TxId) -> u64 {
    let record = db.transaction(txid).expect("tx");
    let meta: usize = 4 + record
        .meta
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len())
        .sum::<usize>();
    let changes: usize = record
        .changes
        .iter()
        .map(|c| 9 + c.key.len() + c.value.as_ref().map_or(0, |v| 4 + v.len()))
        .sum();
    (8 + 8 + 8 + 4 + meta + 4 + 4 + changes) as u64
}

#[test]
fn bit_flip_in_acknowledged_frame_is_corrupt_with_path_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), buffered()).expect("open");
    fill(&db, 9);
    db.flush().expect("flush");
    // Commit 10 is written but, as in a crash before its fsync, the commit
    // witness never learns of it: a cut inside it is a torn tail.
    let witness = fs::read(dir.path().join("COMMIT")).expect("witness");
    fill_from(&db, 9, 10);
    drop(db);
    fs::write(dir.path().join("COMMIT"), &witness).expect("restore witness");
    let seg = segments(dir.path()).pop().expect("segment");
    let original = fs::read(&seg).expect("read");
    // Flip one bit in the payload of an early frame (past the 32-byte
    // segment header and the first frame's 8-byte frame header).
    for at in [32 + 8 + 3, 32 + 8 + 30, original.len() / 2] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x10;
        fs::write(&seg, &bytes).expect("write");
        match Db::open_with(dir.path(), buffered()) {
            Err(Error::Corrupt { path, offset, .. }) => {
                assert_eq!(path, seg);
                assert!(
                    offset <= at as u64,
                    "offset {offset} locates the frame holding byte {at}"
                );
            }
            other => panic!("flip at {at}: expected Corrupt, got {other:?}"),
        }
    }
    fs::write(&seg, &original).expect("restore");
    assert_filled(&Db::open_with(dir.path(), buffered()).expect("open"), 10);
}

#[test]
fn damage_in_an_older_segment_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        segment_roll_bytes: 4096,
        ..buffered()
    };
    let db = Db::open_with(dir.path(), config.clone()).expect("open");
    fill(&db, 200);
    drop(db);
    let segs = segments(dir.path());
    assert!(segs.len() >= 2);
    let first = &segs[0];
    let len = fs::metadata(first).expect("meta").len();
    // Truncating an older segment loses acknowledged commits: refuse.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(first)
        .expect("open");
    f.set_len(len - 3).expect("truncate");
    drop(f);
    let err = Db::open_with(dir.path(), config.clone()).expect_err("refused");
    assert!(
        matches!(&err, Error::Corrupt { path, .. } if path == first),
        "{err}"
    );
    // A missing middle segment is refused too.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir2.path(), config.clone()).expect("open");
    fill(&db, 200);
    drop(db);
    let segs = segments(dir2.path());
    fs::remove_file(&segs[1]).expect("remove");
    assert!(matches!(
        Db::open_with(dir2.path(), config),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn second_opener_gets_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let err = Db::open(dir.path()).expect_err("locked");
    assert!(matches!(&err, Error::Locked { path } if path == dir.path()));
    assert!(err.to_string().contains("locked"));
    drop(db);
    Db::open(dir.path()).expect("open after close");
}

#[test]
fn snapshot_keeps_database_open_after_db_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    fill(&db, 3);
    let view = db.snapshot();
    drop(db);
    assert!(matches!(Db::open(dir.path()), Err(Error::Locked { .. })));
    assert_eq!(view.get("t", "k2").expect("get"), Some(b"v2".to_vec()));
    drop(view);
    Db::open(dir.path()).expect("open");
}

#[test]
fn foreign_directory_is_not_a_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("notes.txt"), "hello").expect("write");
    assert!(matches!(
        Db::open(dir.path()),
        Err(Error::NotADatabase { .. })
    ));
    let file = dir.path().join("notes.txt");
    assert!(matches!(Db::open(&file), Err(Error::NotADatabase { .. })));
    let missing = dir.path().join("missing");
    let config = Config {
        create_if_missing: false,
        ..Config::default()
    };
    assert!(matches!(
        Db::open_with(&missing, config),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn newer_format_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(Db::open(dir.path()).expect("open"));
    let seg = segments(dir.path()).pop().expect("segment");
    let mut bytes = fs::read(&seg).expect("read");
    bytes[8] = 2; // format version
    let crc = crc32(&bytes[..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    fs::write(&seg, &bytes).expect("write");
    let err = Db::open(dir.path()).expect_err("refused");
    assert!(
        matches!(
            err,
            Error::UnsupportedFormat {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
    bytes[0..8].copy_from_slice(b"SQLite f");
    fs::write(&seg, &bytes).expect("write");
    assert!(matches!(
        Db::open(dir.path()),
        Err(Error::Corrupt { offset: 0, .. })
    ));
}

/// CRC-32 (IEEE), bitwise: tests do not depend on the crate's checksum code.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn limits_are_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let mut tx = db.begin();
    let big_key = vec![0u8; KEY_SIZE_MAX + 1];
    assert!(matches!(
        tx.put("t", &big_key, "v"),
        Err(Error::KeyTooLarge { .. })
    ));
    tx.put("t", vec![1u8; KEY_SIZE_MAX], "max key is fine")
        .expect("max key");
    let big_value = vec![0u8; VALUE_SIZE_MAX + 1];
    assert!(matches!(
        tx.put("t", "k", &big_value),
        Err(Error::ValueTooLarge { .. })
    ));
    assert!(matches!(
        tx.put("", "k", "v"),
        Err(Error::InvalidTableName { .. })
    ));
    assert!(matches!(
        tx.put(&"x".repeat(256), "k", "v"),
        Err(Error::InvalidTableName { .. })
    ));
    tx.put(&"x".repeat(255), "k", "v")
        .expect("255-byte table name");
    assert!(matches!(
        tx.put("a\0b", "k", "v"),
        Err(Error::InvalidTableName { .. })
    ));
    assert!(matches!(
        tx.put("__timecask", "k", "v"),
        Err(Error::InvalidTableName { .. })
    ));
    assert!(matches!(
        tx.set_meta("big", "m".repeat(META_SIZE_MAX)),
        Err(Error::MetadataTooLarge { .. })
    ));
    tx.commit().expect("commit");
    drop(db);
    let db = Db::open(dir.path()).expect("reopen");
    assert_eq!(
        db.snapshot()
            .get("t", vec![1u8; KEY_SIZE_MAX])
            .expect("get"),
        Some(b"max key is fine".to_vec())
    );
}

#[test]
fn metadata_history_and_tables_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let mut tx = db.begin();
    tx.create_table("empty").expect("create");
    tx.set_meta("user", "ann").expect("meta");
    tx.set_meta("reason", "import").expect("meta");
    tx.put("users", "1", "Alice").expect("put");
    tx.commit().expect("commit");
    let mut tx = db.begin();
    tx.put("users", "1", "Bob").expect("put");
    tx.commit().expect("commit");
    drop(db);
    let db = Db::open(dir.path()).expect("reopen");
    assert_eq!(
        db.snapshot().tables(),
        vec!["empty".to_string(), "users".to_string()]
    );
    assert_eq!(
        db.as_of(TxId(0)).expect("view").tables(),
        Vec::<String>::new()
    );
    let history = db
        .snapshot()
        .history("users", "1", HistoryQuery::all())
        .expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].meta["user"], "ann");
    assert_eq!(history[0].meta["reason"], "import");
    assert!(history[1].meta.is_empty());
    assert!(history[0].commit_time <= history[1].commit_time);
    let log: Vec<_> = db
        .log(..)
        .expect("log")
        .map(|r| r.expect("record").txid.0)
        .collect();
    assert_eq!(log, vec![1, 2]);
}

/// A database written by format version 1, committed under
/// `tests/fixtures/v1/db`: this build must read it exactly.
#[test]
fn reads_format_v1_fixture_database() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/db");
    let dir = tempfile::tempdir().expect("tempdir");
    if std::env::var_os("TIMECASK_BLESS").is_some() {
        let _ = fs::remove_dir_all(&fixture);
        let db = Db::open(&fixture).expect("create fixture");
        let mut tx = db.begin();
        tx.set_meta("user", "admin").expect("meta");
        tx.insert("user", "1", r#"{"name":"Alice"}"#)
            .expect("insert");
        tx.commit().expect("commit");
        let mut tx = db.begin();
        tx.update("user", "1", r#"{"name":"Bob"}"#).expect("update");
        tx.insert("user", "2", r#"{"name":"Carol"}"#)
            .expect("insert");
        tx.commit().expect("commit");
        let mut tx = db.begin();
        tx.delete("user", "2").expect("delete");
        tx.commit().expect("commit");
        drop(db);
        let _ = fs::remove_file(fixture.join("LOCK"));
    }
    for entry in fs::read_dir(&fixture).expect("fixture exists") {
        let path = entry.expect("entry").path();
        fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
    }
    let db = Db::open(dir.path()).expect("open fixture");
    assert_eq!(db.latest_txid(), TxId(3));
    let at = |t: u64, k: &str| {
        db.as_of(TxId(t))
            .expect("view")
            .get("user", k)
            .expect("get")
            .map(|v| String::from_utf8(v).expect("utf8"))
    };
    assert_eq!(at(1, "1").as_deref(), Some(r#"{"name":"Alice"}"#));
    assert_eq!(at(2, "1").as_deref(), Some(r#"{"name":"Bob"}"#));
    assert_eq!(at(2, "2").as_deref(), Some(r#"{"name":"Carol"}"#));
    assert_eq!(at(3, "2"), None);
    assert_eq!(db.transaction(TxId(1)).expect("tx").meta["user"], "admin");
    let ops: Vec<_> = db
        .log(..)
        .expect("log")
        .flat_map(|r| r.expect("record").changes)
        .map(|c| c.op.as_str())
        .collect();
    assert_eq!(ops, vec!["insert", "update", "insert", "delete"]);
}

#[test]
fn lock_timeout_waits_for_the_holder_to_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let holder = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(db);
    });
    let config = Config {
        lock_timeout: std::time::Duration::from_secs(10),
        ..Config::default()
    };
    let db = Db::open_with(dir.path(), config).expect("opens once the holder closes");
    holder.join().expect("holder");
    // Without a timeout a held lock fails at once.
    assert!(matches!(Db::open(dir.path()), Err(Error::Locked { .. })));
    drop(db);
}

#[test]
fn empty_orphan_segment_from_a_failed_roll_is_repaired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), buffered()).expect("open");
    fill(&db, 3);
    drop(db);
    // Segment 2 made by a roll that failed after writing its header, while
    // commits went on into segment 1: its first txid is stale.
    let mut header = Vec::new();
    header.extend_from_slice(b"TCASKLOG");
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&2u32.to_le_bytes());
    header.extend_from_slice(&2u64.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    fs::write(dir.path().join("0000000002.tcseg"), &header).expect("write");
    let db = Db::open_with(dir.path(), buffered()).expect("open repairs the orphan");
    assert_filled(&db, 3);
    let mut tx = db.begin();
    tx.put("t", "after", "x").expect("put");
    assert_eq!(tx.commit().expect("commit"), Some(TxId(4)));
    drop(db);
    let db = Db::open_with(dir.path(), buffered()).expect("reopen");
    assert_eq!(db.latest_txid(), TxId(4));
    db.verify().expect("verify");
}
