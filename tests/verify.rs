//! `Db::verify`: passes on healthy databases, names file and offset of
//! damage made on disk while the database is open.

mod common;
use common::segments;

use std::fs;
use std::path::Path;

use timecask::{Config, Db, Durability, Error, TxId};

fn filled(dir: &Path) -> Db {
    let db = Db::open_with(
        dir,
        Config {
            durability: Durability::Buffered,
            segment_roll_bytes: 4096,
            ..Config::default()
        },
    )
    .expect("open");
    for i in 0u64..120 {
        let mut tx = db.begin();
        tx.set_meta("i", i.to_string()).expect("meta");
        tx.put("t", (i % 13).to_be_bytes(), vec![i as u8; 40])
            .expect("put");
        if i % 7 == 6 {
            tx.delete("t", ((i + 2) % 13).to_be_bytes())
                .expect("delete");
        }
        tx.commit().expect("commit");
    }
    db
}

#[test]
fn verify_passes_on_a_healthy_database_and_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = filled(dir.path());
    let report = db.verify().expect("verify");
    assert_eq!(report.txid, TxId(120));
    assert_eq!(report.n_frames, 120);
    assert_eq!(report.n_versions, db.stats().n_versions);
    assert_eq!(report.n_segments, segments(dir.path()).len());
    drop(db);
    let empty = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        Db::open(empty.path())
            .expect("open")
            .verify()
            .expect("verify")
            .n_frames,
        0
    );
}

#[test]
fn verify_runs_while_writers_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = filled(dir.path());
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for i in 0u64..300 {
                let mut tx = db.begin();
                tx.put("w", i.to_be_bytes(), [1u8; 100]).expect("put");
                tx.commit().expect("commit");
            }
        })
    };
    for _ in 0..10 {
        let report = db.verify().expect("verify under load");
        assert!(report.txid >= TxId(120));
    }
    writer.join().expect("writer");
    assert_eq!(db.verify().expect("verify").txid, TxId(420));
}

#[test]
fn verify_names_file_and_offset_of_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = filled(dir.path());
    let segs = segments(dir.path());
    let target = &segs[1];
    let mut bytes = fs::read(target).expect("read");
    let at = 32 + 8 + 20; // inside the first frame's payload
    bytes[at] ^= 0x40;
    fs::write(target, &bytes).expect("write");
    match db.verify() {
        Err(Error::Corrupt { path, offset, .. }) => {
            assert_eq!(&path, target);
            assert_eq!(
                offset, 32,
                "the damaged frame starts right after the header"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Reads of other data keep working.
    assert!(db.snapshot().get("t", 1u64.to_be_bytes()).is_ok());
}
