//! Corruption sweeps: flip a bit at (nearly) every offset of every segment
//! and truncate at every offset. With the commit witness (`COMMIT`) every
//! frame of a cleanly closed database was acknowledged as durable, so any
//! damage is refused: `Error::Corrupt` naming the damaged file, or
//! `Error::CommitsLost` for a cut. Without it (a database from before the
//! witness), damage to the tail of the newest segment may also be cut as a
//! torn write, recovering a valid prefix. Never a panic, never different
//! data.

mod common;
use common::segments;

use std::fs;
use std::path::{Path, PathBuf};

use timecask::{Config, Db, Durability, Error, TxRecord};

fn config() -> Config {
    Config {
        durability: Durability::Buffered,
        segment_roll_bytes: 4096,
        ..Config::default()
    }
}

/// A database of a few segments with metadata, deletes and several tables.
fn build(dir: &Path) -> Vec<TxRecord> {
    let db = Db::open_with(dir, config()).expect("open");
    for i in 0u64..90 {
        let mut tx = db.begin();
        tx.set_meta("by", format!("user{}", i % 3)).expect("meta");
        tx.put(
            ["a", "b"][(i % 2) as usize],
            (i % 9).to_be_bytes(),
            vec![i as u8; 10 + (i as usize % 70)],
        )
        .expect("put");
        if i % 5 == 4 {
            tx.delete("a", ((i + 1) % 9).to_be_bytes()).expect("delete");
        }
        tx.commit().expect("commit");
    }
    let log = db
        .log(..)
        .expect("log")
        .collect::<Result<Vec<_>, _>>()
        .expect("records");
    drop(db);
    assert!(segments(dir).len() >= 3, "the sweep needs several segments");
    log
}

/// Opens the damaged database and checks the outcome. Returns whether it
/// opened.
#[track_caller]
fn check_open(dir: &Path, original: &[TxRecord], damaged: &Path, newest: bool, what: &str) -> bool {
    match Db::open_with(dir, config()) {
        Ok(db) => {
            let got = db.log(..).expect("log").collect::<Result<Vec<_>, _>>();
            let got = match got {
                Ok(got) => got,
                Err(Error::Corrupt { .. }) => return true, // detected on read
                Err(e) => panic!("{what}: unexpected read error {e}"),
            };
            assert!(
                newest,
                "{what}: damage outside the newest segment was not detected"
            );
            assert!(
                got.len() < original.len() || got.len() == original.len(),
                "{what}"
            );
            assert_eq!(
                &got[..],
                &original[..got.len()],
                "{what}: recovered data differs"
            );
            // The recovered database accepts new commits.
            let mut tx = db.begin();
            tx.put("a", "after", "x").expect("put");
            tx.commit().expect("commit after recovery");
            true
        }
        Err(Error::Corrupt { path, .. }) => {
            assert_eq!(path, damaged, "{what}: the error names the damaged file");
            false
        }
        Err(Error::UnsupportedFormat { path, .. }) => {
            assert_eq!(path, damaged, "{what}");
            false
        }
        Err(Error::CommitsLost { path, .. }) => {
            assert_eq!(path, damaged, "{what}: the error names the cut file");
            false
        }
        Err(e) => panic!("{what}: expected Corrupt or a recovered prefix, got {e}"),
    }
}

#[test]
fn bit_flips_anywhere_are_detected_or_only_cut_the_newest_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = build(dir.path());
    let segs = segments(dir.path());
    let witness = fs::read(dir.path().join("COMMIT")).expect("witness");
    let mut opened = 0;
    let mut refused = 0;
    for (n, seg) in segs.iter().enumerate() {
        let newest = n == segs.len() - 1;
        let bytes = fs::read(seg).expect("read");
        // Without a witness only the newest segment's rules differ.
        let modes: &[bool] = if newest { &[true, false] } else { &[true] };
        for &with_witness in modes {
            if !with_witness {
                fs::remove_file(dir.path().join("COMMIT")).expect("remove witness");
            }
            for offset in (0..bytes.len()).step_by(3) {
                let mut damaged = bytes.clone();
                damaged[offset] ^= 1 << (offset % 8);
                fs::write(seg, &damaged).expect("write");
                let what = format!("flip at {}:{offset}, witness {with_witness}", seg.display());
                let newest_may_cut = newest && !with_witness;
                if check_open(dir.path(), &original, seg, newest_may_cut, &what) {
                    opened += 1;
                } else {
                    refused += 1;
                }
                // Undo anything the recovered open cut or appended.
                restore_all(dir.path(), &segs, seg, &bytes);
                fs::write(dir.path().join("COMMIT"), &witness).expect("restore witness");
            }
        }
    }
    assert!(
        refused > opened,
        "most flips hit acknowledged data: {refused} refused, {opened} opened"
    );
}

/// Removes segments created by a recovered open and restores `seg`.
fn restore_all(dir: &Path, original_segs: &[PathBuf], seg: &Path, bytes: &[u8]) {
    for s in segments(dir) {
        if !original_segs.contains(&s) {
            fs::remove_file(&s).expect("remove extra segment");
        }
    }
    fs::write(seg, bytes).expect("restore");
}

#[test]
fn truncation_at_every_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = build(dir.path());
    let segs = segments(dir.path());
    let witness_path = dir.path().join("COMMIT");
    let witness = fs::read(&witness_path).expect("witness");
    let snapshot: Vec<Vec<u8>> = segs.iter().map(|s| fs::read(s).expect("read")).collect();
    for (n, seg) in segs.iter().enumerate() {
        let newest = n == segs.len() - 1;
        let bytes = &snapshot[n];
        let modes: &[bool] = if newest { &[true, false] } else { &[true] };
        for &with_witness in modes {
            for cut in 0..bytes.len() {
                if !with_witness {
                    fs::remove_file(&witness_path).expect("remove witness");
                }
                fs::write(seg, &bytes[..cut]).expect("truncate");
                let what = format!("cut {} at {cut}, witness {with_witness}", seg.display());
                let opened = check_open(dir.path(), &original, seg, newest, &what);
                match (newest, with_witness) {
                    (true, false) => assert!(opened, "{what}: a cut newest segment is a torn tail"),
                    (true, true) => assert!(!opened, "{what}: acknowledged commits were cut"),
                    (false, _) => assert!(!opened, "{what}: a cut older segment is damage"),
                }
                for (s, b) in segs.iter().zip(&snapshot) {
                    fs::write(s, b).expect("restore");
                }
                restore_all(dir.path(), &segs, seg, bytes);
                fs::write(&witness_path, &witness).expect("restore witness");
            }
        }
    }
}
