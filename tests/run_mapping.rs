//! History runs read through a memory map (`FileStorage::map_read_only`):
//! every answer equals the one a storage that does not map gives (reads
//! through `read_exact_at`), and a byte changed on disk under a live map
//! is `Corrupt` on the reads that use it, never other data; once the byte
//! is put back the same handle answers right again (nothing kept the
//! damage).

mod run_support;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use run_support::{commit_rounds, config, first_difference, observe, run_files};
use timecask::storage::{FileStorage, Storage, StorageFile};
use timecask::{Db, Error};

/// The file system without maps: every run block is read with `pread`.
#[derive(Debug)]
struct Unmapped;

impl Storage for Unmapped {
    fn open(&self, path: &Path, create_new: bool) -> std::io::Result<Arc<dyn StorageFile>> {
        FileStorage.open(path, create_new)
    }
    fn open_read_only(&self, path: &Path) -> std::io::Result<Arc<dyn StorageFile>> {
        FileStorage.open_read_only(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        FileStorage.sync_dir(dir)
    }
}

/// A closed database with three runs and a short log tail.
fn database() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    for (start, n) in [(0, 24), (24, 6), (30, 1)] {
        commit_rounds(&db, start, n);
        db.seal().expect("seal");
    }
    commit_rounds(&db, 40, 3);
    drop(db);
    assert!(!run_files(dir.path()).is_empty(), "runs");
    dir
}

#[test]
fn reads_through_the_map_equal_reads_through_pread() {
    let dir = database();
    let mapped = Db::open_with(dir.path(), config(None)).expect("open");
    let want = observe(&mapped).expect("observe");
    drop(mapped);
    let unmapped = Db::open_with(dir.path(), config(Some(Arc::new(Unmapped)))).expect("open");
    let got = observe(&unmapped).expect("observe");
    assert_eq!(got, want, "{}", first_difference(&got, &want));
    unmapped.verify().expect("verify");
}

#[test]
fn a_byte_changed_under_a_live_map_is_corrupt_never_other_data() {
    let dir = database();
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    let want = observe(&db).expect("observe");
    let (_, path) = run_files(dir.path()).into_iter().next().expect("a run");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open run");
    let len = file.metadata().expect("metadata").len();
    let (mut detected, mut flips) = (0, 0);
    for offset in (16..len).step_by(23) {
        let mut byte = [0];
        FileExt::read_exact_at(&file, &mut byte, offset).expect("read");
        FileExt::write_all_at(&file, &[byte[0] ^ 0x10], offset).expect("flip");
        flips += 1;
        match observe(&db) {
            Ok(got) => assert_eq!(
                got,
                want,
                "flip at {offset}: {}",
                first_difference(&got, &want)
            ),
            Err(e) => {
                assert!(matches!(e, Error::Corrupt { .. }), "flip at {offset}: {e}");
                detected += 1;
            }
        }
        FileExt::write_all_at(&file, &byte, offset).expect("restore");
        let got = observe(&db).expect("observe after the byte is back");
        assert_eq!(got, want, "after restoring {offset}");
    }
    // Most of a run is version blocks, which point reads check each time.
    assert!(
        detected * 2 > flips,
        "only {detected} of {flips} flips seen by reads through the map"
    );
}

/// A value larger than the buffers a thread keeps (1 MiB) reads back
/// through the map, twice (the buffers freed after the first read), and
/// small reads after it stay right.
#[test]
fn a_large_value_reads_back_through_the_map_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    let mut tx = db.begin();
    tx.put("alpha", b"big", &big).expect("put");
    tx.put("alpha", b"small", b"s").expect("put");
    let t = tx.commit().expect("commit").expect("txid");
    commit_rounds(&db, 0, 3);
    db.compact().expect("compact");
    drop(db);
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    for _ in 0..2 {
        let view = db.as_of(t).expect("view");
        assert_eq!(view.get("alpha", b"big").expect("get"), Some(big.clone()));
        assert_eq!(
            view.get("alpha", b"small").expect("get"),
            Some(b"s".to_vec())
        );
    }
    db.verify().expect("verify");
}
