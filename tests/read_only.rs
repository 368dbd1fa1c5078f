//! `Db::open_read_only`: opening a database beside its writer, seeing the
//! log as of the open, refusing every write, and never changing a file,
//! not even to repair a torn tail or a half-made segment.

mod common;
use common::segments;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::SystemTime;

use timecask::{Config, Db, Durability, Error, HistoryQuery, RetentionPolicy, TxId};

fn config() -> Config {
    Config {
        durability: Durability::Buffered,
        segment_roll_bytes: 4096,
        ..Config::default()
    }
}

/// Commits `value` under `table`/`key` in its own transaction.
fn put(db: &Db, table: &str, key: &str, value: &str) -> TxId {
    let mut tx = db.begin();
    tx.set_meta("by", "test").expect("meta");
    tx.put(table, key, value).expect("put");
    tx.commit().expect("commit").expect("a change was written")
}

/// Commits number `from..from + n` over a few keys of two tables, with
/// deletes (each writes at least one change).
fn fill(db: &Db, from: u64, n: u64) {
    for i in from..from + n {
        let mut tx = db.begin();
        tx.set_meta("i", i.to_string()).expect("meta");
        tx.put(
            ["a", "b"][(i % 2) as usize],
            format!("k{}", i % 7),
            format!("v{i}-{}", "x".repeat(i as usize % 50)),
        )
        .expect("put");
        if i % 5 == 4 {
            tx.delete("a", format!("k{}", (i + 1) % 7)).expect("delete");
        }
        tx.commit().expect("commit");
    }
}

/// Every file of `dir` by name: length, modification time and bytes.
type Listing = BTreeMap<String, (u64, SystemTime, Vec<u8>)>;

fn listing(dir: &Path) -> Listing {
    fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            let meta = e.metadata().expect("metadata");
            let bytes = fs::read(e.path()).expect("read");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, (meta.len(), meta.modified().expect("mtime"), bytes))
        })
        .collect()
}

/// Everything a reader can see: every table at every readable txid, every
/// transaction record and every key's history, as text.
fn dump(db: &Db) -> String {
    let mut out = String::new();
    let latest = db.latest_txid();
    let horizon = db.stats().horizon;
    for t in horizon.0..=latest.0 {
        let view = db.as_of(TxId(t)).expect("view");
        for table in view.tables() {
            // A table trimmed by its retention policy refuses old txids.
            let rows = view
                .iter(&table)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
            out += &format!("{t} {table} {rows:?}\n");
        }
    }
    for record in db.log(..).expect("log") {
        out += &format!("{:?}\n", record.expect("record"));
    }
    let view = db.snapshot();
    for table in view.tables() {
        for k in 0..7 {
            let key = format!("k{k}");
            let history = view
                .history(&table, &key, HistoryQuery::all())
                .expect("history");
            out += &format!("{table} {key} {history:?}\n");
        }
    }
    out
}

#[track_caller]
fn assert_read_only<T: std::fmt::Debug>(result: Result<T, Error>, dir: &Path) {
    match result {
        Err(Error::ReadOnly { path }) => assert_eq!(path, dir),
        other => panic!("expected Error::ReadOnly, got {other:?}"),
    }
}

#[test]
fn read_only_open_beside_a_writer_sees_the_commits_made_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Db::open_with(dir.path(), config()).expect("open writer");
    let t1 = put(&writer, "t", "k", "v1");
    let t2 = put(&writer, "t", "k", "v2");
    let t3 = put(&writer, "u", "other", "x");
    let reader = Db::open_read_only(dir.path()).expect("open read-only beside the writer");
    assert!(reader.is_read_only() && !writer.is_read_only());
    assert_eq!(reader.latest_txid(), t3);
    assert_eq!(
        reader.snapshot().get("t", "k").expect("get"),
        Some(b"v2".to_vec())
    );
    assert_eq!(
        reader.as_of(t1).expect("as of").get("t", "k").expect("get"),
        Some(b"v1".to_vec())
    );
    let history = reader
        .snapshot()
        .history("t", "k", HistoryQuery::all())
        .expect("history");
    let txids: Vec<_> = history.iter().map(|v| (v.txid, v.end_txid)).collect();
    assert_eq!(txids, vec![(t1, Some(t2)), (t2, None)]);
    assert_eq!(reader.transaction(t2).expect("tx").meta["by"], "test");
    assert_eq!(reader.diff("t", t1, t2).expect("diff").len(), 1);
    assert_eq!(reader.changes_since(TxId(0)).count(), 3);
    assert!(reader.as_of_time(SystemTime::now()).is_ok());
    assert_eq!(reader.verify().expect("verify").txid, t3);
    assert_eq!(reader.stats().latest_txid, t3);

    // Later commits of the writer are not visible to the open reader...
    let t4 = put(&writer, "t", "k", "v3");
    assert_eq!(reader.latest_txid(), t3);
    assert_eq!(
        reader.snapshot().get("t", "k").expect("get"),
        Some(b"v2".to_vec())
    );
    assert!(matches!(reader.as_of(t4), Err(Error::FutureTxid { .. })));
    assert_eq!(
        reader.verify().expect("verify after a later commit").txid,
        t3
    );
    // ...and a new read-only open sees them.
    let reader = Db::open_read_only(dir.path()).expect("reopen read-only");
    assert_eq!(reader.latest_txid(), t4);
    assert_eq!(
        reader.snapshot().get("t", "k").expect("get"),
        Some(b"v3".to_vec())
    );
    assert_eq!(dump(&reader), dump(&writer));
}

#[test]
fn read_only_open_of_many_segments_matches_the_writer_and_uses_the_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Db::open_with(dir.path(), config()).expect("open writer");
    fill(&writer, 0, 150);
    assert!(segments(dir.path()).len() > 2, "several segments");
    writer.checkpoint().expect("checkpoint");
    fill(&writer, 150, 5);
    let reader = Db::open_read_only(dir.path()).expect("open read-only");
    assert!(reader.stats().opened_from_checkpoint);
    assert_eq!(dump(&reader), dump(&writer));
    reader.verify().expect("verify");
}

#[test]
fn every_write_through_a_read_only_db_is_refused_and_no_file_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    let writer = Db::open_with(path, config()).expect("open writer");
    fill(&writer, 0, 40);
    writer.flush().expect("flush");
    let before = listing(path);
    let reader = Db::open_read_only(path).expect("open read-only");
    let latest = reader.latest_txid();

    let mut tx = reader.begin();
    tx.put("a", "new", "v").expect("staging a write is allowed");
    assert_read_only(tx.commit(), path);
    assert_read_only(reader.begin().commit(), path);
    let mut tx = reader.begin();
    tx.purge_history(TxId(3)).expect("stage purge");
    assert_read_only(tx.commit(), path);
    let mut tx = reader.begin();
    tx.erase("a", "k1").expect("stage erase");
    assert_read_only(tx.commit(), path);
    let mut tx = reader.begin();
    tx.set_retention(
        "a",
        RetentionPolicy {
            keep_last: Some(1),
            keep_for: None,
        },
    )
    .expect("stage retention");
    assert_read_only(tx.commit(), path);
    let mut tx = reader.begin();
    tx.revert("a", "k1", TxId(2)).expect("stage revert");
    assert_read_only(tx.commit(), path);
    let mut tx = reader.begin();
    tx.undo(latest).expect("stage undo");
    assert_read_only(tx.commit(), path);
    assert_read_only(reader.purge_history(TxId(3)), path);
    assert_read_only(reader.erase("a", "k1"), path);
    assert_read_only(reader.compact(), path);
    assert_read_only(reader.checkpoint(), path);
    reader.flush().expect("flush has nothing to do");

    // Reads of every kind still work.
    assert_eq!(reader.latest_txid(), latest);
    reader.verify().expect("verify");
    let _ = dump(&reader);
    let backup = tempfile::tempdir().expect("tempdir");
    let copy = backup.path().join("copy");
    assert_eq!(reader.backup(&copy).expect("backup"), latest);
    assert_eq!(dump(&Db::open(&copy).expect("open backup")), dump(&reader));

    assert_eq!(listing(path), before, "a read-only database changed a file");
    drop(reader);
    assert_eq!(
        listing(path),
        before,
        "closing a read-only database changed a file"
    );
    // The writer is untouched and goes on.
    put(&writer, "a", "after", "v");
}

#[test]
fn closing_a_read_only_db_writes_no_checkpoint_even_after_a_long_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Db::open_with(
        dir.path(),
        Config {
            checkpoint_on_close: false,
            ..config()
        },
    )
    .expect("open writer");
    for i in 0..10_050u64 {
        let mut tx = writer.begin();
        tx.put("t", (i % 100).to_be_bytes(), i.to_be_bytes())
            .expect("put");
        tx.commit().expect("commit");
    }
    let before = listing(dir.path());
    drop(Db::open_read_only(dir.path()).expect("open read-only"));
    assert_eq!(listing(dir.path()), before);
}

/// Builds a database of `n` commits in one segment and returns the segment,
/// its bytes and the offset where the last frame starts.
fn one_segment(dir: &Path, n: u64) -> (std::path::PathBuf, Vec<u8>, u64) {
    let db = Db::open_with(
        dir,
        Config {
            segment_roll_bytes: 1 << 20,
            ..config()
        },
    )
    .expect("open");
    fill(&db, 0, n - 1);
    db.flush().expect("flush");
    let seg = segments(dir).pop().expect("segment");
    // Where the frames end (the open writer preallocated zeros after them).
    let last_frame_start = common::frames_end(&seg);
    // The last commit is written but, as in a crash before its fsync, the
    // commit witness never learns of it.
    let witness = fs::read(dir.join("COMMIT")).expect("witness");
    fill(&db, n - 1, 1);
    drop(db);
    fs::write(dir.join("COMMIT"), witness).expect("restore witness");
    let bytes = fs::read(&seg).expect("read");
    (seg, bytes, last_frame_start)
}

/// Bytes up to and including the last non-zero one.
fn nonzero_len(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |i| i as u64 + 1)
}

#[test]
fn torn_tail_is_ignored_read_only_and_still_cut_by_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (seg, full, last_frame_start) = one_segment(dir.path(), 10);
    let frame_len = full.len() as u64 - last_frame_start;
    // Cuts inside the frame header, at its end, in the payload, one short.
    for cut in [1, 4, 8, 9, frame_len / 2, frame_len - 1] {
        fs::write(&seg, &full[..(last_frame_start + cut) as usize]).expect("write");
        let before = listing(dir.path());
        let reader = Db::open_read_only(dir.path()).expect("read-only open of a torn tail");
        assert_eq!(reader.latest_txid(), TxId(9), "cut {cut}");
        // Torn bytes run to the last non-zero one (zeros after a bad frame
        // cannot be told from preallocated space).
        let torn = nonzero_len(&full[last_frame_start as usize..(last_frame_start + cut) as usize]);
        assert_eq!(reader.stats().torn_tail_bytes, torn);
        reader.verify().expect("verify");
        let seen = dump(&reader);
        drop(reader);
        assert_eq!(listing(dir.path()), before, "cut {cut}: files changed");
        let writer = Db::open_with(dir.path(), config()).expect("writer open repairs");
        assert_eq!(writer.stats().torn_tail_bytes, torn);
        assert_eq!(dump(&writer), seen);
        drop(writer);
        assert_eq!(fs::metadata(&seg).expect("meta").len(), last_frame_start);
    }
}

#[test]
fn damage_before_a_valid_frame_is_corrupt_read_only_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (seg, mut bytes, last_frame_start) = one_segment(dir.path(), 10);
    // A flipped byte in the payload of the second to last frame.
    bytes[last_frame_start as usize - 3] ^= 0x40;
    fs::write(&seg, &bytes).expect("write");
    let before = listing(dir.path());
    assert!(matches!(
        Db::open_read_only(dir.path()),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn damage_in_an_older_segment_is_corrupt_read_only_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config()).expect("open");
    fill(&db, 0, 150);
    drop(db);
    let first = segments(dir.path()).remove(0);
    let len = fs::metadata(&first).expect("meta").len();
    fs::File::options()
        .write(true)
        .open(&first)
        .and_then(|f| f.set_len(len - 5))
        .expect("truncate");
    let before = listing(dir.path());
    match Db::open_read_only(dir.path()) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, first),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(listing(dir.path()), before);
}

/// A segment header (as FORMAT.md describes it).
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
fn half_made_newest_segment_is_ignored_read_only_and_repaired_by_the_writer() {
    // (bytes of a new segment 2 beside a segment 1 holding txids 1..=10)
    let cases: [(&str, Vec<u8>); 3] = [
        ("created, nothing written", Vec::new()),
        ("header half written", segment_header(2, 11)[..13].to_vec()),
        ("stale first txid of a failed roll", segment_header(2, 5)),
    ];
    for (what, bytes) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        one_segment(dir.path(), 10);
        let expected = dump(&Db::open_read_only(dir.path()).expect("open"));
        let orphan = dir.path().join("0000000002.tcseg");
        fs::write(&orphan, &bytes).expect("write");
        let before = listing(dir.path());
        let reader = Db::open_read_only(dir.path()).expect(what);
        assert_eq!(reader.latest_txid(), TxId(10), "{what}");
        assert_eq!(dump(&reader), expected, "{what}");
        reader.verify().expect(what);
        drop(reader);
        assert_eq!(listing(dir.path()), before, "{what}: files changed");
        let writer = Db::open_with(dir.path(), config()).expect(what);
        assert_eq!(dump(&writer), expected, "{what}");
        assert_eq!(put(&writer, "t", "k", "v"), TxId(11), "{what}");
        drop(writer);
        assert_eq!(
            fs::read(&orphan).expect("read")[..32],
            segment_header(2, 11)[..],
            "{what}"
        );
    }
}

#[test]
fn stray_compaction_rewrite_is_left_alone_read_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    one_segment(dir.path(), 5);
    // A writer compacting right now (or a crash while it did).
    let stray = dir.path().join("0000000001.tcseg.compact");
    fs::write(&stray, b"half a rewrite").expect("write");
    let before = listing(dir.path());
    let reader = Db::open_read_only(dir.path()).expect("open read-only");
    assert_eq!(reader.latest_txid(), TxId(5));
    reader.verify().expect("verify");
    drop(reader);
    assert_eq!(listing(dir.path()), before);
    drop(Db::open(dir.path()).expect("the writer's open removes it"));
    assert!(!stray.exists());
}

#[test]
fn missing_or_empty_directory_is_not_found_and_nothing_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");
    assert!(
        matches!(Db::open_read_only(&missing), Err(Error::NotFound { path }) if path == missing)
    );
    assert!(!missing.exists());
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    assert!(matches!(Db::open_read_only(&empty), Err(Error::NotFound { path }) if path == empty));
    assert_eq!(fs::read_dir(&empty).expect("read dir").count(), 0);
    let foreign = dir.path().join("foreign");
    fs::create_dir(&foreign).expect("mkdir");
    fs::write(foreign.join("notes.txt"), "hi").expect("write");
    assert!(matches!(
        Db::open_read_only(&foreign),
        Err(Error::NotADatabase { .. })
    ));
    assert_eq!(fs::read_dir(&foreign).expect("read dir").count(), 1);
    // The only segment is being created right now: nothing to read yet.
    let creating = dir.path().join("creating");
    fs::create_dir(&creating).expect("mkdir");
    fs::write(
        creating.join("0000000001.tcseg"),
        &segment_header(1, 1)[..10],
    )
    .expect("write");
    assert!(matches!(
        Db::open_read_only(&creating),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        fs::read(creating.join("0000000001.tcseg"))
            .expect("read")
            .len(),
        10
    );
}

#[test]
fn writer_compaction_does_not_change_what_an_open_reader_sees() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Db::open_with(dir.path(), config()).expect("open writer");
    fill(&writer, 0, 120);
    writer.checkpoint().expect("checkpoint");
    let reader = Db::open_read_only(dir.path()).expect("open read-only");
    let seen = dump(&reader);
    let latest = reader.latest_txid();

    writer.purge_history(TxId(100)).expect("purge");
    writer.erase("a", "k1").expect("erase");
    let mut tx = writer.begin();
    tx.set_retention(
        "b",
        RetentionPolicy {
            keep_last: Some(1),
            keep_for: None,
        },
    )
    .expect("retention");
    tx.commit().expect("commit");
    let report = writer.compact().expect("compact");
    assert!(
        report.segments_rewritten > 0 && report.versions_dropped > 0,
        "{report:?}"
    );
    fill(&writer, 120, 30);

    assert_eq!(reader.latest_txid(), latest);
    assert_eq!(
        dump(&reader),
        seen,
        "compaction changed what the reader sees"
    );
    reader.verify().expect("verify after compaction");
    let backup = tempfile::tempdir().expect("tempdir");
    let copy = backup.path().join("copy");
    assert_eq!(reader.backup(&copy).expect("backup"), latest);
    assert_eq!(dump(&Db::open(&copy).expect("open backup")), seen);
    // A new reader sees the compacted log.
    let reader = Db::open_read_only(dir.path()).expect("reopen");
    assert_eq!(dump(&reader), dump(&writer));
}

#[test]
fn read_only_opens_during_commits_rolls_checkpoints_and_compactions_are_consistent() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Db::open_with(dir.path(), config()).expect("open writer");
    put(&writer, "t", "counter", "0");
    let stop = AtomicBool::new(false);
    let compactions = AtomicU64::new(0);
    let mut opens = 0;
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 1u64;
            while !stop.load(Ordering::Relaxed) {
                let mut tx = writer.begin();
                tx.put("t", "counter", format!("{i:08}")).expect("put");
                tx.put("t", format!("k{}", i % 13), "y".repeat(i as usize % 90))
                    .expect("put");
                tx.commit().expect("commit");
                if i.is_multiple_of(97) {
                    let before = TxId(writer.latest_txid().0 - 20);
                    writer.purge_history(before).expect("purge");
                    writer.erase("t", format!("k{}", i % 13)).expect("erase");
                    writer.compact().expect("compact");
                    compactions.fetch_add(1, Ordering::Relaxed);
                }
                if i.is_multiple_of(61) {
                    writer.checkpoint().expect("checkpoint");
                }
                i += 1;
            }
        });
        // Stops the writer however the reader leaves (a failed assert too).
        let _stop = StopOnDrop(&stop);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut last = (TxId(0), String::new());
        while (opens < 300 || compactions.load(Ordering::Relaxed) < 10)
            && std::time::Instant::now() < deadline
        {
            let reader =
                Db::open_read_only(dir.path()).expect("read-only open beside a busy writer");
            reader.verify().expect("verify");
            for record in reader.log(..).expect("log") {
                record.expect("record");
            }
            let counter = reader.snapshot().get("t", "counter").expect("get");
            let counter = String::from_utf8(counter.expect("counter")).expect("utf-8");
            assert!(
                reader.latest_txid() >= last.0 && counter >= last.1,
                "went back in time"
            );
            last = (reader.latest_txid(), counter);
            opens += 1;
        }
    });
    assert!(
        opens >= 100 && compactions.load(Ordering::Relaxed) >= 5,
        "{opens} opens"
    );
}

struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
