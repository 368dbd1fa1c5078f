//! I/O faults through the storage seam: failed writes, failed fsyncs, a
//! full disk, and post-crash images that keep only fsynced bytes.

use std::io;
use std::path::Path;
use std::sync::Arc;

use timecask::testing::FaultyStorage;
use timecask::{Config, Db, Durability, Error, TxId};

fn open(dir: &Path, storage: &FaultyStorage, durability: Durability) -> Db {
    Db::open_with(
        dir,
        Config {
            durability,
            segment_roll_bytes: 4096,
            storage: Arc::new(storage.clone()),
            ..Config::default()
        },
    )
    .expect("open")
}

fn commit_one(db: &Db, i: u64) -> timecask::Result<Option<TxId>> {
    let mut tx = db.begin();
    tx.put("t", i.to_be_bytes(), vec![i as u8; 100])?;
    tx.commit()
}

#[track_caller]
fn assert_has(db: &Db, upto: u64) {
    assert_eq!(db.latest_txid(), TxId(upto));
    let view = db.snapshot();
    for i in 1..=upto {
        assert_eq!(
            view.get("t", i.to_be_bytes()).expect("get"),
            Some(vec![i as u8; 100]),
            "tx {i}"
        );
    }
}

#[test]
fn failed_write_fails_the_commit_and_loses_nothing() {
    for kind in [io::ErrorKind::StorageFull, io::ErrorKind::Other] {
        for partial in [0, 1, 50] {
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = FaultyStorage::default();
            let db = open(dir.path(), &storage, Durability::Immediate);
            for i in 1..=5 {
                commit_one(&db, i).expect("commit");
            }
            storage.arm(|p| {
                p.fail_write_at = Some(1);
                p.partial_write_bytes = partial;
                p.error = Some(kind);
            });
            let err = commit_one(&db, 6).expect_err("write fails");
            assert!(matches!(err, Error::Io { .. }), "{err}");
            // Reads keep working and see nothing of the failed commit.
            assert_has(&db, 5);
            // The partial write was cut off: the next commit lands cleanly.
            assert_eq!(commit_one(&db, 6).expect("retry"), Some(TxId(6)));
            drop(db);
            assert_has(
                &open(dir.path(), &FaultyStorage::default(), Durability::Immediate),
                6,
            );
        }
    }
}

#[test]
fn a_purge_whose_write_fails_purges_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = open(dir.path(), &storage, Durability::Immediate);
    for i in 1..=5 {
        commit_one(&db, i).expect("commit");
    }
    storage.arm(|p| p.fail_write_at = Some(1));
    let mut tx = db.begin();
    tx.purge_history(TxId(4)).expect("purge");
    assert!(matches!(tx.commit(), Err(Error::Io { .. })));
    // History before tx 4 is still there, in memory and after reopening.
    let old = db.as_of(TxId(2)).expect("tx 2 is still readable");
    assert_eq!(
        old.get("t", 2u64.to_be_bytes()).expect("get"),
        Some(vec![2; 100])
    );
    drop(old);
    // The retry purges for real.
    let mut tx = db.begin();
    tx.purge_history(TxId(4)).expect("purge");
    tx.commit().expect("commit");
    assert!(matches!(
        db.as_of(TxId(2)),
        Err(Error::HistoryPurged { .. })
    ));
    drop(db);
    let db = open(dir.path(), &FaultyStorage::default(), Durability::Immediate);
    assert!(matches!(
        db.as_of(TxId(2)),
        Err(Error::HistoryPurged { .. })
    ));
    assert_eq!(db.latest_txid(), TxId(6));
    assert_eq!(
        db.snapshot().get("t", 5u64.to_be_bytes()).expect("get"),
        Some(vec![5; 100])
    );
}

#[test]
fn failed_write_whose_cleanup_fails_refuses_writes_until_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = open(dir.path(), &storage, Durability::Immediate);
    commit_one(&db, 1).expect("commit");
    storage.arm(|p| {
        p.fail_write_at = Some(1);
        p.partial_write_bytes = 30;
        p.fail_set_len_at = Some(1);
    });
    assert!(matches!(commit_one(&db, 2), Err(Error::Io { .. })));
    assert!(matches!(commit_one(&db, 2), Err(Error::Poisoned { .. })));
    assert_has(&db, 1);
    drop(db);
    // Reopening cuts the partial frame as a torn tail.
    let db = open(dir.path(), &FaultyStorage::default(), Durability::Immediate);
    assert_has(&db, 1);
    assert_eq!(commit_one(&db, 2).expect("commit"), Some(TxId(2)));
}

#[test]
fn failed_fsync_poisons_writes_but_not_reads() {
    for kind in [io::ErrorKind::StorageFull, io::ErrorKind::Other] {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FaultyStorage::default();
        let db = open(dir.path(), &storage, Durability::Immediate);
        for i in 1..=3 {
            commit_one(&db, i).expect("commit");
        }
        storage.arm(|p| {
            p.fail_sync_at = Some(1);
            p.error = Some(kind);
        });
        assert!(matches!(commit_one(&db, 4), Err(Error::Io { .. })));
        // No retry-and-pretend: every later write is refused.
        assert!(matches!(commit_one(&db, 4), Err(Error::Poisoned { .. })));
        assert!(matches!(db.flush(), Err(Error::Poisoned { .. })));
        // The unacknowledged commit 4 never became visible; reads work.
        assert_has(&db, 3);
        let image = tempfile::tempdir().expect("tempdir");
        storage.crash_image(dir.path(), image.path(), &[0x5A; 20]);
        drop(db);
        // After a power cut only fsynced data is left: commits 1..=3.
        assert_has(
            &open(
                image.path(),
                &FaultyStorage::default(),
                Durability::Immediate,
            ),
            3,
        );
        // Reopening the real directory recovers and accepts writes again.
        let db = open(dir.path(), &FaultyStorage::default(), Durability::Immediate);
        assert!(db.latest_txid() >= TxId(3));
        let next = db.latest_txid().0 + 1;
        assert_eq!(commit_one(&db, next).expect("commit"), Some(TxId(next)));
    }
}

#[test]
fn failed_fsync_at_segment_roll_fails_the_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = open(dir.path(), &storage, Durability::Buffered);
    // Buffered commits do not fsync, so the first fsync is the roll's.
    storage.arm(|p| p.fail_sync_at = Some(1));
    let mut failed_at = None;
    for i in 1..=100 {
        if commit_one(&db, i).is_err() {
            failed_at = Some(i);
            break;
        }
    }
    let failed_at = failed_at.expect("a roll happened within 100 commits");
    assert!(matches!(
        commit_one(&db, failed_at),
        Err(Error::Poisoned { .. })
    ));
    assert_has(&db, failed_at - 1);
}

#[test]
fn crash_images_keep_every_acknowledged_immediate_commit() {
    // Take an image after every commit: the image keeps exactly the
    // fsynced prefix plus a garbage tail, and must open with every
    // acknowledged commit.
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = open(dir.path(), &storage, Durability::Immediate);
    for i in 1..=60u64 {
        commit_one(&db, i).expect("commit");
        let image = tempfile::tempdir().expect("tempdir");
        let garbage: Vec<u8> = (0..(i * 37 % 200)).map(|b| (b * 31 + i) as u8).collect();
        storage.crash_image(dir.path(), image.path(), &garbage);
        let recovered = open(
            image.path(),
            &FaultyStorage::default(),
            Durability::Immediate,
        );
        assert_has(&recovered, i);
    }
}

#[test]
fn crash_images_after_buffered_commits_keep_what_was_flushed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = open(dir.path(), &storage, Durability::Buffered);
    let mut flushed = 0;
    for i in 1..=80u64 {
        commit_one(&db, i).expect("commit");
        if i % 9 == 0 {
            db.flush().expect("flush");
            flushed = i;
        }
        let image = tempfile::tempdir().expect("tempdir");
        storage.crash_image(dir.path(), image.path(), &[0xEE; 13]);
        let recovered = open(
            image.path(),
            &FaultyStorage::default(),
            Durability::Buffered,
        );
        let latest = recovered.latest_txid().0;
        assert!(
            latest >= flushed,
            "flushed commit {flushed} lost (image has {latest})"
        );
        assert_has(&recovered, latest);
    }
}

// ---------------------------------------------------------------------------
// Crash images in every mode, at every point the engine touches the disk.
//
// A scenario runs with `FaultyStorage::capture_before_every_call`, so there is
// a crash state just before every creating open, write, truncation, fsync,
// rename and removal: inside commits, rolls, checkpoints and compactions.
// Every state is written as an image under every `CrashMode` with durable and
// live directory entries; each distinct image is opened read-only and as a
// writer and must (1) open, (2) hold every commit acknowledged as durable
// before the crash point, (3) answer like the model for every txid it has,
// (4) verify clean. Nothing panics.

/// One step of a crash scenario.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Commit `key = [value; len]`.
    Put { key: u8, value: u8, len: usize },
    /// Commit a delete of `key`.
    Delete(u8),
    /// `Db::flush`.
    Flush,
    /// `Db::checkpoint`.
    Checkpoint,
    /// `Db::purge_history(TxId(n))`.
    Purge(u64),
    /// `Db::erase("t", [key])`.
    Erase(u8),
    /// `Db::compact`.
    Compact,
}

/// What each txid did (index `txid - 1`).
#[derive(Clone, Debug)]
enum Committed {
    Write(u8, Option<Vec<u8>>),
    Purge(u64),
    Erase(u8),
}

const CRASH_KEYS: u8 = 6;

/// The reference model of a scenario's commits.
#[derive(Default)]
struct CrashModel {
    txs: Vec<Committed>,
}

impl CrashModel {
    /// The purge horizon of a database holding txids `1..=latest`.
    fn horizon(&self, latest: u64) -> u64 {
        self.txs[..latest as usize]
            .iter()
            .filter_map(|c| match c {
                Committed::Purge(h) => Some(*h),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// `key` as of `at` in a database holding txids `1..=latest`.
    fn get(&self, key: u8, at: u64, latest: u64) -> Option<Vec<u8>> {
        let (written, value) =
            self.txs[..at as usize]
                .iter()
                .enumerate()
                .rev()
                .find_map(|(i, c)| match c {
                    Committed::Write(k, v) if *k == key => Some((i as u64 + 1, v.clone())),
                    _ => None,
                })?;
        let erased = self.txs[..latest as usize]
            .iter()
            .enumerate()
            .any(|(i, c)| matches!(c, Committed::Erase(k) if *k == key && i as u64 + 1 >= written));
        if erased { None } else { value }
    }

    /// Whether `key`'s change at `txid` is erased in a database holding
    /// `1..=latest`.
    fn erased_at(&self, key: u8, txid: u64, latest: u64) -> bool {
        self.txs[txid as usize..latest as usize]
            .iter()
            .any(|c| matches!(c, Committed::Erase(k) if *k == key))
    }
}

/// A scenario's crash states and what was acknowledged when.
struct CrashRun {
    model: CrashModel,
    /// `(calls, txid)`: once `calls` seam calls were made, every txid up to
    /// `txid` had been acknowledged as durable.
    acks: Vec<(u64, u64)>,
    states: Vec<timecask::testing::CrashState>,
    dir: tempfile::TempDir,
}

impl CrashRun {
    fn required(&self, state: &timecask::testing::CrashState) -> u64 {
        self.acks
            .iter()
            .filter(|(calls, _)| *calls <= state.calls())
            .map(|(_, txid)| *txid)
            .max()
            .unwrap_or(0)
    }
}

fn crash_config(storage: &FaultyStorage, durability: Durability) -> Config {
    Config {
        durability,
        segment_roll_bytes: 4096,
        storage: Arc::new(storage.clone()),
        ..Config::default()
    }
}

#[track_caller]
fn run_crash_scenario(durability: Durability, steps: &[Step]) -> CrashRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = Db::open_with(dir.path(), crash_config(&storage, durability)).expect("open");
    storage.capture_before_every_call(true);
    let mut model = CrashModel::default();
    let mut acks = Vec::new();
    let immediate = durability == Durability::Immediate;
    for step in steps {
        let txid = match *step {
            Step::Put { key, value, len } => {
                let mut tx = db.begin();
                tx.put("t", [key], vec![value; len]).expect("put");
                let txid = tx.commit().expect("commit").expect("a change");
                model
                    .txs
                    .push(Committed::Write(key, Some(vec![value; len])));
                immediate.then_some(txid)
            }
            Step::Delete(key) => {
                let mut tx = db.begin();
                tx.delete("t", [key]).expect("delete");
                let txid = tx.commit().expect("commit");
                if txid.is_some() {
                    model.txs.push(Committed::Write(key, None));
                }
                txid.filter(|_| immediate)
            }
            Step::Flush => {
                db.flush().expect("flush");
                Some(db.latest_txid())
            }
            Step::Checkpoint => {
                db.checkpoint().expect("checkpoint");
                None
            }
            Step::Purge(before) => {
                let txid = db.purge_history(TxId(before)).expect("purge");
                if txid.is_some() {
                    model.txs.push(Committed::Purge(before));
                }
                txid
            }
            Step::Erase(key) => {
                let txid = db.erase("t", [key]).expect("erase");
                model.txs.push(Committed::Erase(key));
                Some(txid)
            }
            Step::Compact => {
                db.compact().expect("compact");
                None
            }
        };
        assert_eq!(db.latest_txid().0, model.txs.len() as u64, "{step:?}");
        if let Some(txid) = txid {
            acks.push((storage.calls(), txid.0));
        }
    }
    drop(db);
    let mut states = storage.take_captures();
    states.push(storage.capture());
    CrashRun {
        model,
        acks,
        states,
        dir,
    }
}

/// Opens a database directory one way (read-only or as the writer).
type Opener = fn(&Path) -> timecask::Result<Db>;

/// Opens an image with `open` and checks it; `Err` says what was wrong.
fn check_crash_image(
    image: &Path,
    open: Opener,
    model: &CrashModel,
    required: u64,
) -> Result<(), String> {
    let db = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| open(image))) {
        Err(_) => return Err("open panicked".into()),
        Ok(Err(e)) => return Err(format!("open failed: {e}")),
        Ok(Ok(db)) => db,
    };
    let latest = db.latest_txid().0;
    if latest < required {
        return Err(format!(
            "acknowledged txids lost: has {latest}, acknowledged {required}"
        ));
    }
    if latest > model.txs.len() as u64 {
        return Err(format!("has txid {latest}, never committed"));
    }
    let horizon = model.horizon(latest);
    for at in 1..=latest {
        match db.as_of(TxId(at)) {
            Err(Error::HistoryPurged { .. }) if at < horizon => {}
            Err(e) => return Err(format!("as_of({at}): {e}")),
            Ok(view) => {
                for key in 0..CRASH_KEYS {
                    let got = view.get("t", [key]).map_err(|e| format!("get: {e}"))?;
                    if got != model.get(key, at, latest) {
                        return Err(format!("key {key} as of {at} differs from the model"));
                    }
                }
            }
        }
    }
    let log = db.log(..).map_err(|e| format!("log: {e}"))?;
    for record in log {
        let record = record.map_err(|e| format!("log record: {e}"))?;
        let txid = record.txid.0;
        let user: Vec<_> = record.changes.iter().filter(|c| c.table == "t").collect();
        match &model.txs[txid as usize - 1] {
            Committed::Write(key, value) => {
                let erased = model.erased_at(*key, txid, latest);
                let fits = match user.as_slice() {
                    [] => erased,
                    [c] => c.key == [*key] && c.value == *value,
                    _ => false,
                };
                if !fits {
                    return Err(format!("log record of txid {txid} differs from the model"));
                }
            }
            Committed::Purge(_) | Committed::Erase(_) if user.is_empty() => {}
            _ => return Err(format!("log record of txid {txid} has user changes")),
        }
    }
    db.verify().map_err(|e| format!("verify: {e}"))?;
    Ok(())
}

#[track_caller]
fn check_crash_run(name: &str, run: &CrashRun) {
    use std::collections::{BTreeMap, HashSet};
    use timecask::testing::{CrashMode, DirState};

    let modes = CrashMode::all(3);
    let openers: [(&str, Opener); 2] = [
        ("read-only", |p| Db::open_read_only(p)),
        ("writer", |p| Db::open(p)),
    ];
    let mut seen = HashSet::new();
    // (mode, dir, opener, what) -> (count, first crash point)
    let mut failures: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for state in &run.states {
        let required = run.required(state);
        for mode in &modes {
            for dir_state in [DirState::Durable, DirState::Live] {
                let files = state.image(run.dir.path(), mode, dir_state);
                if !seen.insert((files.clone(), required)) {
                    continue;
                }
                for (opener, open) in openers {
                    let image = tempfile::tempdir().expect("tempdir");
                    state.write_image(run.dir.path(), image.path(), mode, dir_state);
                    if let Err(what) = check_crash_image(image.path(), open, &run.model, required) {
                        let mode = format!("{mode:?}");
                        let mode = mode.split([' ', '{']).next().unwrap_or_default();
                        let what = what.replace(&*image.path().to_string_lossy(), "<image>");
                        let key =
                            format!("{mode} / {dir_state:?} / {opener}: {}", digits_as_n(&what));
                        failures.entry(key).or_insert((0, state.calls())).0 += 1;
                    }
                }
            }
        }
    }
    assert!(
        seen.len() > run.states.len(),
        "{name}: modes made no difference"
    );
    let report: Vec<String> = failures
        .iter()
        .map(|(k, (n, at))| format!("  {n:4} x {k} (first before seam call {})", at + 1))
        .collect();
    assert!(
        failures.is_empty(),
        "{name}: {} crash images of {} distinct failed:\n{}",
        failures.values().map(|(n, _)| n).sum::<usize>(),
        seen.len(),
        report.join("\n")
    );
}

/// `what` with every run of digits replaced by `N`, so failures group by kind.
fn digits_as_n(what: &str) -> String {
    let mut out = String::new();
    for c in what.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('N') {
            out.push('N');
        }
    }
    out
}

fn puts(keys: std::ops::Range<u64>) -> impl Iterator<Item = Step> {
    keys.map(|i| Step::Put {
        key: (i % u64::from(CRASH_KEYS)) as u8,
        value: i as u8,
        len: 300 + (i as usize * 53) % 600,
    })
}

#[test]
fn crash_images_in_every_mode_keep_every_acknowledged_immediate_commit() {
    let mut steps: Vec<Step> = puts(0..14).collect();
    steps.push(Step::Delete(3));
    steps.extend(puts(14..20));
    let run = run_crash_scenario(Durability::Immediate, &steps);
    check_crash_run("immediate commits and rolls", &run);
}

#[test]
fn crash_images_in_every_mode_keep_what_buffered_commits_flushed() {
    let mut steps = Vec::new();
    for i in 0..24 {
        steps.extend(puts(i..i + 1));
        if i % 5 == 4 {
            steps.push(Step::Flush);
        }
    }
    let run = run_crash_scenario(Durability::Buffered, &steps);
    check_crash_run("buffered commits, flushes and rolls", &run);
}

fn maintenance_steps() -> Vec<Step> {
    let mut steps: Vec<Step> = puts(0..10).collect();
    steps.push(Step::Checkpoint);
    steps.extend(puts(10..16));
    steps.push(Step::Purge(8));
    steps.push(Step::Erase(1));
    steps.extend(puts(16..19));
    steps.push(Step::Flush);
    steps.push(Step::Compact);
    steps.extend(puts(19..22));
    steps.push(Step::Checkpoint);
    steps.extend(puts(22..24));
    steps
}

#[test]
fn crash_images_in_every_mode_around_checkpoint_purge_erase_compaction_immediate() {
    let run = run_crash_scenario(Durability::Immediate, &maintenance_steps());
    check_crash_run("immediate maintenance", &run);
}

#[test]
fn crash_images_in_every_mode_around_checkpoint_purge_erase_compaction_buffered() {
    let run = run_crash_scenario(Durability::Buffered, &maintenance_steps());
    check_crash_run("buffered maintenance", &run);
}
