//! Open file handles stay bounded as history grows (issue 12): with
//! history runs the background sealer turns sealed segments into a
//! bounded number of runs and closes them, so a database with thousands
//! of segments' worth of history holds a few dozen files open, not one
//! per segment. Its own test binary: it counts the process's descriptors.

#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use timecask::{Config, Db, Durability};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

#[test]
fn open_files_stay_bounded_while_history_grows_past_a_thousand_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = open_fds();
    let db = Db::open_with(
        dir.path(),
        Config {
            durability: Durability::Buffered,
            // 4 KiB segments: ~1,300 of them are written below.
            segment_roll_bytes: timecask::limits::SEGMENT_ROLL_SIZE_MIN,
            seal_log_bytes: Some(64 * 1024),
            ..Config::default()
        },
    )
    .expect("open");
    let mut most = 0;
    for round in 0..1_300u32 {
        let mut tx = db.begin();
        for k in 0..8u32 {
            tx.put("t", k.to_be_bytes(), [round as u8; 400])
                .expect("put");
        }
        tx.commit().expect("commit");
        most = most.max(open_fds() - before);
    }
    // The sealer runs behind the writer: wait until it has caught up.
    let deadline = Instant::now() + Duration::from_secs(60);
    let bound = 48;
    while open_fds() - before > bound && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let segments = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .ends_with(".tcseg")
        })
        .count();
    let held = open_fds() - before;
    assert!(
        held <= bound,
        "{held} files open after 1,300 segments of history \
         ({segments} segment files left, at most {most} open meanwhile)"
    );
    assert_eq!(db.stats().background_error, None);
    // Everything is still there.
    let view = db.snapshot();
    assert_eq!(
        view.get("t", 7u32.to_be_bytes()).expect("get"),
        Some(vec![(1_299 % 256) as u8; 400])
    );
    let history = view
        .history("t", 3u32.to_be_bytes(), timecask::HistoryQuery::all())
        .expect("history");
    assert_eq!(history.len(), 1_300);
}
