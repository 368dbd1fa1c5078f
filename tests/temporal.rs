//! Diff, revert, undo, the change feed and hot backup.

use std::time::Duration;

use timecask::{Config, Db, DiffEntry, Durability, Error, TxId};

/// Runs `script` (transactions separated by `;`, writes `key=value` or
/// `key=-`) on table `t` and returns the database.
fn run(script: &str) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(
        dir.path(),
        Config {
            durability: Durability::Buffered,
            ..Config::default()
        },
    )
    .expect("open");
    for tx_script in script.split(';') {
        let mut tx = db.begin();
        for write in tx_script.split_whitespace() {
            let (k, v) = write.split_once('=').expect("key=value");
            if v == "-" {
                tx.delete("t", k).expect("delete");
            } else {
                tx.put("t", k, v).expect("put");
            }
        }
        tx.commit().expect("commit");
    }
    (dir, db)
}

/// Formats a diff as `key:before>after` with `-` for absent.
fn show(diff: &[DiffEntry]) -> String {
    let s = |v: &Option<Vec<u8>>| {
        v.as_ref()
            .map_or("-".to_string(), |v| String::from_utf8_lossy(v).into_owned())
    };
    diff.iter()
        .map(|d| {
            format!(
                "{}:{}>{}",
                String::from_utf8_lossy(&d.key),
                s(&d.before),
                s(&d.after)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn diff_matrix() {
    // (script, from, to, expected)
    let cases = [
        ("a=1 b=1; a=2; b=-; c=3", 1, 4, "a:1>2 b:1>- c:->3"),
        ("a=1 b=1; a=2; b=-; c=3", 4, 1, "a:2>1 b:->1 c:3>-"),
        ("a=1 b=1; a=2; b=-; c=3", 2, 2, ""),
        ("a=1 b=1; a=2; b=-; c=3", 0, 1, "a:->1 b:->1"),
        // Changed and changed back: not a difference.
        ("a=1; a=2; a=1", 1, 3, ""),
        // Deleted and re-inserted with another value.
        ("a=1; a=-; a=5", 1, 3, "a:1>5"),
        // Untouched keys are not listed.
        ("a=1 b=1 c=1; b=2", 1, 2, "b:1>2"),
    ];
    for (script, from, to, want) in cases {
        let (_dir, db) = run(script);
        let got = db.diff("t", TxId(from), TxId(to)).expect("diff");
        assert_eq!(show(&got), want, "diff({from}, {to}) of {script:?}");
    }
    let (_dir, db) = run("a=1");
    assert!(matches!(
        db.diff("t", TxId(0), TxId(5)),
        Err(Error::FutureTxid { .. })
    ));
    assert!(
        db.diff("missing", TxId(0), TxId(1))
            .expect("diff")
            .is_empty()
    );
}

#[test]
fn diff_over_many_keys_crosses_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(
        dir.path(),
        Config {
            durability: Durability::Buffered,
            ..Config::default()
        },
    )
    .expect("open");
    let mut tx = db.begin();
    for i in 0u32..5000 {
        tx.put("t", i.to_be_bytes(), [0]).expect("put");
    }
    let t1 = tx.commit().expect("commit").expect("changed");
    let mut tx = db.begin();
    for i in (0u32..5000).step_by(7) {
        tx.put("t", i.to_be_bytes(), [1]).expect("put");
    }
    let t2 = tx.commit().expect("commit").expect("changed");
    let diff = db.diff("t", t1, t2).expect("diff");
    let keys: Vec<u32> = diff
        .iter()
        .map(|d| u32::from_be_bytes(d.key.clone().try_into().expect("4 bytes")))
        .collect();
    assert_eq!(keys, (0u32..5000).step_by(7).collect::<Vec<_>>());
}

#[test]
fn revert_writes_the_old_value_as_a_new_version() {
    let (_dir, db) = run("a=1; a=2; a=-");
    let cases = [(1, Some("1")), (2, Some("2")), (0, None)];
    for (to, want) in cases {
        let mut tx = db.begin();
        tx.revert("t", "a", TxId(to)).expect("revert");
        tx.commit().expect("commit");
        assert_eq!(
            db.snapshot().get("t", "a").expect("get"),
            want.map(|v| v.as_bytes().to_vec()),
            "revert to {to}"
        );
    }
    let mut tx = db.begin();
    assert!(matches!(
        tx.revert("t", "a", TxId(99)),
        Err(Error::FutureTxid { .. })
    ));
    // Reverting to the current value changes nothing and commits nothing.
    let mut tx = db.begin();
    assert!(!tx.revert("t", "a", db.latest_txid()).expect("revert"));
    assert_eq!(tx.commit().expect("commit"), None);
}

#[test]
fn undo_inverts_a_whole_transaction() {
    let (_dir, db) = run("a=1 b=1; a=2 b=- c=3; d=4");
    let mut tx = db.begin();
    tx.undo(TxId(2)).expect("undo");
    let t = tx.commit().expect("commit").expect("changed");
    let view = db.as_of(t).expect("view");
    let got: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|k| view.get("t", k).expect("get"))
        .collect();
    assert_eq!(
        got,
        vec![
            Some(b"1".to_vec()),
            Some(b"1".to_vec()),
            None,
            Some(b"4".to_vec())
        ]
    );
    let record = db.transaction(t).expect("record");
    let ops: Vec<_> = record
        .changes
        .iter()
        .map(|c| (String::from_utf8_lossy(&c.key).into_owned(), c.op.as_str()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("a".into(), "update"),
            ("b".into(), "insert"),
            ("c".into(), "delete")
        ]
    );
}

#[test]
fn undo_refuses_when_a_later_transaction_touched_the_key() {
    let (_dir, db) = run("a=1 b=1; a=2; b=5");
    let mut tx = db.begin();
    match tx.undo(TxId(1)) {
        Err(Error::Conflict { table, key }) => {
            assert_eq!((table.as_str(), key.0.as_slice()), ("t", &b"a"[..]))
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Nothing was staged by the refused undo.
    assert_eq!(tx.commit().expect("commit"), None);
    // Undoing the latest transaction works.
    let mut tx = db.begin();
    tx.undo(TxId(3)).expect("undo");
    tx.commit().expect("commit");
    assert_eq!(
        db.snapshot().get("t", "b").expect("get"),
        Some(b"1".to_vec())
    );
}

#[test]
fn change_feed_delivers_every_commit_in_order_and_resumes() {
    let (_dir, db) = run("a=1; b=2");
    let mut feed = db.changes_since(TxId(0));
    let first: Vec<u64> = feed.by_ref().map(|r| r.expect("record").txid.0).collect();
    assert_eq!(first, vec![1, 2]);
    assert_eq!(feed.position(), TxId(2));
    assert!(
        feed.wait_next(Duration::from_millis(20))
            .expect("wait")
            .is_none()
    );
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for i in 0..5 {
                std::thread::sleep(Duration::from_millis(5));
                let mut tx = db.begin();
                tx.set_meta("i", i.to_string()).expect("meta");
                tx.put("t", "k", format!("{i}")).expect("put");
                tx.commit().expect("commit");
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let record = feed
            .wait_next(Duration::from_secs(10))
            .expect("wait")
            .expect("a commit within 10 s");
        seen.push((record.txid.0, record.meta["i"].clone()));
    }
    writer.join().expect("writer");
    assert_eq!(
        seen,
        (0..5)
            .map(|i| (3 + i as u64, i.to_string()))
            .collect::<Vec<_>>()
    );
    // Resuming from a saved position continues where it left off.
    let mut resumed = db.changes_since(TxId(5));
    assert_eq!(
        resumed.try_next().expect("next").map(|r| r.txid),
        Some(TxId(6))
    );
}

#[test]
fn backup_is_consistent_while_writers_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(
        dir.path(),
        Config {
            durability: Durability::Buffered,
            segment_roll_bytes: 4096,
            ..Config::default()
        },
    )
    .expect("open");
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for i in 0u64..400 {
                let mut tx = db.begin();
                tx.put("t", (i % 10).to_be_bytes(), i.to_le_bytes())
                    .expect("put");
                tx.put("log", i.to_be_bytes(), [1]).expect("put");
                tx.commit().expect("commit");
            }
        })
    };
    let dest = tempfile::tempdir().expect("tempdir");
    let mut copies = Vec::new();
    for n in 0..5 {
        std::thread::sleep(Duration::from_millis(3));
        let path = dest.path().join(format!("copy{n}"));
        let txid = db.backup(&path).expect("backup");
        copies.push((path, txid));
    }
    writer.join().expect("writer");
    for (path, txid) in copies {
        let copy = Db::open(&path).expect("open copy");
        assert_eq!(copy.latest_txid(), txid);
        copy.verify().expect("copy verifies");
        assert_eq!(copy.snapshot().count("log").expect("count"), txid.0);
        let original = db.as_of(txid).expect("view");
        for k in 0u64..10 {
            assert_eq!(
                copy.snapshot().get("t", k.to_be_bytes()).expect("get"),
                original.get("t", k.to_be_bytes()).expect("get")
            );
        }
    }
    let full = dest.path().join("nonempty");
    std::fs::create_dir_all(&full).expect("mkdir");
    std::fs::write(full.join("x"), "x").expect("write");
    assert!(db.backup(&full).is_err());
}
