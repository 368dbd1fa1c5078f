//! Crashes and faults while compaction seals history into runs and merges
//! runs (issue 12): crash images at every seam call of a compaction, a
//! failed write, fsync, rename or removal at every point of one, and
//! SIGKILL of a process that compacts as it commits.
//!
//! The answers compared are everything a reader sees (`run_support::observe`:
//! latest values, counts, `as_of` reads, histories, tx records, the log).
//! Environment: `TIMECASK_RUN_CRASH_SEEDS` (random crash modes per state,
//! default 2), `TIMECASK_CRASH_ROUNDS` (SIGKILL rounds, default 20).

mod run_support;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use run_support::{
    Scenario, build_scenario, config, copy_dir, first_difference, observe, run_files, unlisted_runs,
};
use timecask::testing::{CrashMode, DirState, FaultyStorage};
use timecask::{Config, Db, Error, HistoryQuery, TxId};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Opens `image` with `open`, checks it against `want`, and (writer only)
/// compacts it again and checks again.
fn check_image(image: &Path, writer: bool, want: &[String]) -> Result<(), String> {
    check_image_any(image, writer, &[want.to_vec()])
}

/// [`check_image`] for a compaction that commits a retention trim: the
/// image must answer like the database before the compaction or after it
/// (`wants[0]`, `wants[1]`), commit times aside; after a second compaction
/// like the one after it.
fn check_image_any(image: &Path, writer: bool, wants: &[Vec<String>]) -> Result<(), String> {
    // A trim committed at different times: compare without commit times.
    let normalize = wants.len() > 1;
    let opened = std::panic::catch_unwind(|| {
        if writer {
            Db::open_with(image, config(None))
        } else {
            Db::open_read_only(image)
        }
    });
    let db = match opened {
        Err(_) => return Err("open panicked".into()),
        Ok(Err(e)) => return Err(format!("open failed: {e}")),
        Ok(Ok(db)) => db,
    };
    let check_some = |db: &Db, what: &str, wants: &[Vec<String>]| -> Result<(), String> {
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| observe(db)))
            .map_err(|_| format!("{what}: reads panicked"))?
            .map_err(|e| format!("{what}: read failed: {e}"))?;
        let fits = if !normalize {
            got == wants[0]
        } else {
            let got = run_support::without_times(&got);
            wants.iter().any(|w| run_support::without_times(w) == got)
        };
        if !fits {
            let last = &wants[wants.len() - 1];
            let (got, last) = if !normalize {
                (got, last.clone())
            } else {
                (
                    run_support::without_times(&got),
                    run_support::without_times(last),
                )
            };
            return Err(format!(
                "{what}: answers differ: {}",
                first_difference(&got, &last)
            ));
        }
        db.verify().map_err(|e| format!("{what}: verify: {e}"))?;
        Ok(())
    };
    let last = &wants[wants.len() - 1..];
    let check = |db: &Db, what: &str| {
        if what == "after open" {
            check_some(db, what, wants)
        } else {
            check_some(db, what, last)
        }
    };
    check(&db, "after open")?;
    if writer {
        let unlisted = unlisted_runs(image);
        if !unlisted.is_empty() {
            return Err(format!("unlisted runs after a writer open: {unlisted:?}"));
        }
        let stale = run_support::stale_segments(image);
        if !stale.is_empty() {
            return Err(format!(
                "segments below the manifest's first after a writer open: {stale:?}"
            ));
        }
        if image.join("MANIFEST.tmp").exists() {
            return Err("MANIFEST.tmp after a writer open".into());
        }
        db.compact()
            .map_err(|e| format!("second compaction: {e}"))?;
        check(&db, "after a second compaction")?;
        drop(db);
        let db = Db::open_with(image, config(None)).map_err(|e| format!("reopen: {e}"))?;
        check(&db, "after the second compaction and a reopen")?;
        let unlisted = unlisted_runs(image);
        if !unlisted.is_empty() {
            return Err(format!(
                "unlisted runs after the second compaction: {unlisted:?}"
            ));
        }
    }
    Ok(())
}

#[test]
fn crash_images_at_every_seam_call_of_a_sealing_and_merging_compaction() {
    for scenario in [
        Scenario::MergeWithDrops,
        Scenario::MergeForCount,
        Scenario::AddRun,
        Scenario::SealMerges,
        Scenario::Retention,
    ] {
        crash_images_of_a_compaction(scenario);
    }
}

fn crash_images_of_a_compaction(scenario: Scenario) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = Db::open_with(dir.path(), config(Some(Arc::new(storage.clone())))).expect("open");
    build_scenario(&db, scenario);
    let runs_before = run_files(dir.path()).len();
    let want = observe(&db).expect("observe");
    storage.capture_before_every_call(true);
    let report = run_support::operation(&db, scenario).expect("compact or seal");
    let after = observe(&db).expect("observe");
    let wants = if matches!(scenario, Scenario::Retention) {
        assert_ne!(after, want, "the compaction trimmed");
        vec![want.clone(), after]
    } else {
        assert_eq!(after, want, "compaction changed answers");
        vec![want.clone()]
    };
    drop(db);
    let runs_after = run_files(dir.path()).len();
    match scenario {
        Scenario::MergeWithDrops => {
            assert!(runs_before >= 1, "earlier compactions made runs");
            assert!(
                report.versions_dropped > 0,
                "the merge dropped versions: {report:?}"
            );
            assert_eq!(runs_after, 1, "the runs were merged");
        }
        Scenario::MergeForCount => {
            assert_eq!(runs_before, 3, "the seals kept their runs apart");
            assert_eq!(runs_after, 1, "the compaction merged every run");
        }
        Scenario::AddRun => {
            assert_eq!((runs_before, runs_after), (1, 2), "a run added beside");
        }
        Scenario::SealMerges => {
            assert_eq!((runs_before, runs_after), (1, 1), "merged by size");
        }
        Scenario::Retention => {
            assert!(
                report.versions_dropped > 0,
                "the trim dropped versions: {report:?}"
            );
            assert_eq!(runs_after, 1, "merged");
        }
    }
    let mut states = storage.take_captures();
    states.push(storage.capture());
    assert!(states.len() > 15, "only {} seam calls", states.len());

    let modes = CrashMode::all(env_u64("TIMECASK_RUN_CRASH_SEEDS", 2));
    let mut seen = HashSet::new();
    let mut failures: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for state in &states {
        for mode in &modes {
            for dir_state in [DirState::Durable, DirState::Live] {
                let files = state.image(dir.path(), mode, dir_state);
                if !seen.insert(files) {
                    continue;
                }
                for writer in [false, true] {
                    let image = tempfile::tempdir().expect("tempdir");
                    state.write_image(dir.path(), image.path(), mode, dir_state);
                    if let Err(what) = check_image_any(image.path(), writer, &wants) {
                        let mode = format!("{mode:?}");
                        let mode = mode.split([' ', '{']).next().unwrap_or_default();
                        let what = what.replace(&*image.path().to_string_lossy(), "<image>");
                        let opener = if writer { "writer" } else { "read-only" };
                        let key = format!("{mode} / {dir_state:?} / {opener}: {what}");
                        failures.entry(key).or_insert((0, state.calls())).0 += 1;
                    }
                }
            }
        }
    }
    eprintln!(
        "{scenario:?}: {} crash states, {} distinct images",
        states.len(),
        seen.len()
    );
    assert!(seen.len() > states.len(), "modes made no difference");
    let report: Vec<String> = failures
        .iter()
        .map(|(k, (n, at))| format!("  {n:4} x {k} (first before seam call {})", at + 1))
        .collect();
    assert!(
        failures.is_empty(),
        "{scenario:?}: {} crash images failed:\n{}",
        failures.values().map(|(n, _)| n).sum::<usize>(),
        report.join("\n")
    );
}

// ---------------------------------------------------------------------------
// A failed write, fsync, rename or removal at every point of a compaction.

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A failed write that first wrote this many bytes (ENOSPC).
    Write(usize),
    Sync,
    SetLen,
    Rename,
    Remove,
}

#[test]
fn a_fault_at_every_write_fsync_rename_and_remove_of_a_compaction_with_runs_loses_nothing() {
    for scenario in [
        Scenario::MergeWithDrops,
        Scenario::MergeForCount,
        Scenario::AddRun,
        Scenario::SealMerges,
    ] {
        faults_in_a_compaction(scenario);
    }
}

fn faults_in_a_compaction(scenario: Scenario) {
    // One template database; every attempt compacts a fresh copy of it.
    let template = tempfile::tempdir().expect("tempdir");
    let want = {
        let db = Db::open_with(template.path(), config(None)).expect("open");
        build_scenario(&db, scenario);
        observe(&db).expect("observe")
    };
    // What a compaction without faults leaves.
    let clean = {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(template.path(), dir.path());
        let db = Db::open_with(dir.path(), config(None)).expect("open");
        run_support::operation(&db, scenario).expect("compact or seal");
        file_names(dir.path())
    };
    let problems = std::cell::RefCell::new(Vec::new());
    for kind in [
        Kind::Write(0),
        Kind::Write(100),
        Kind::Sync,
        Kind::SetLen,
        Kind::Rename,
        Kind::Remove,
    ] {
        let mut failures = 0;
        let mut absorbed = 0;
        let mut succeeded = false;
        for n in 1..400u64 {
            let dir = tempfile::tempdir().expect("tempdir");
            copy_dir(template.path(), dir.path());
            let storage = FaultyStorage::default();
            let db =
                Db::open_with(dir.path(), config(Some(Arc::new(storage.clone())))).expect("open");
            storage.arm(|p| {
                p.error = Some(std::io::ErrorKind::Other);
                match kind {
                    Kind::Write(partial) => {
                        p.error = Some(std::io::ErrorKind::StorageFull);
                        p.partial_write_bytes = partial;
                        p.fail_write_at = Some(n);
                    }
                    Kind::SetLen => p.fail_set_len_at = Some(n),
                    Kind::Sync => p.fail_sync_at = Some(n),
                    Kind::Rename => p.fail_rename_at = Some(n),
                    Kind::Remove => p.fail_remove_at = Some(n),
                }
            });
            let result = run_support::operation(&db, scenario);
            // A compaction that succeeds and leaves the files a clean one
            // leaves made no call of this kind numbered n: the sweep is done.
            let clean_files = ok_and_clean(&result, dir.path(), &clean);
            let problem = |what: String| {
                problems
                    .borrow_mut()
                    .push(format!("{scenario:?} {kind:?} #{n}: {what}"))
            };
            let ok = result.is_ok();
            if let Err(e) = &result {
                failures += 1;
                if !matches!(e, Error::Io { .. }) {
                    problem(format!("compaction failed with a non-I/O error: {e}"));
                }
            }
            if dir.path().join("MANIFEST.tmp").exists() {
                problem("MANIFEST.tmp left by the compaction".into());
            }
            // Reads keep working and answer the same, poisoned or not.
            let same = |db: &Db, want: &[String], what: &str| match observe(db) {
                Ok(got) if got == want => {}
                Ok(got) => problem(format!(
                    "{what}: answers differ: {}",
                    first_difference(&got, want)
                )),
                Err(e) => problem(format!("{what}: read failed: {e}")),
            };
            same(&db, &want, "live");
            if let Err(e) = db.verify() {
                problem(format!("live verify: {e}"));
            }
            // A writer that is not poisoned commits on and compacts again;
            // the reopened database must then answer like the live one.
            let mut want_now = want.clone();
            storage.arm(|_| {});
            let mut tx = db.begin();
            tx.put("alpha", b"after", b"the fault").expect("put");
            match tx.commit() {
                Err(Error::Poisoned { .. }) => {}
                Err(e) => problem(format!("commit after the compaction: {e}")),
                Ok(_) => {
                    run_support::commit_rounds(&db, 200, 3);
                    match observe(&db) {
                        Ok(got) => want_now = got,
                        Err(e) => problem(format!("live read after commits: {e}")),
                    }
                    if let Err(e) = db.compact() {
                        problem(format!("a second live compaction failed: {e}"));
                    }
                    same(
                        &db,
                        &want_now,
                        "live, after commits and a second compaction",
                    );
                    if let Err(e) = db.verify() {
                        problem(format!("live verify after a second compaction: {e}"));
                    }
                }
            }
            drop(db);
            let db = match Db::open_with(dir.path(), config(None)) {
                Ok(db) => db,
                Err(e) => {
                    problem(format!("reopen failed: {e}"));
                    continue;
                }
            };
            same(&db, &want_now, "after reopen");
            if let Err(e) = db.verify() {
                problem(format!("verify after reopen: {e}"));
            }
            let unlisted = unlisted_runs(dir.path());
            if !unlisted.is_empty() {
                problem(format!("unlisted runs after reopen: {unlisted:?}"));
            }
            if dir.path().join("MANIFEST.tmp").exists() {
                problem("MANIFEST.tmp after reopen".into());
            }
            let stale = run_support::stale_segments(dir.path());
            if !stale.is_empty() {
                problem(format!(
                    "segments below the manifest's first after reopen: {stale:?}"
                ));
            }
            if clean_files {
                succeeded = true;
                break;
            }
            if ok {
                // The fault hit a call whose failure the compaction absorbs
                // (a deletion after the install): count it as checked.
                absorbed += 1;
            }
        }
        assert!(
            succeeded,
            "{scenario:?} {kind:?}: no compaction got through"
        );
        assert!(
            failures + absorbed > 0 || matches!(kind, Kind::SetLen),
            "{scenario:?} {kind:?}: no fault hit the compaction"
        );
        eprintln!(
            "{scenario:?} {kind:?}: {failures} failed compactions, {absorbed} absorbed faults"
        );
    }
    let problems = problems.into_inner();
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn ok_and_clean<T>(result: &timecask::Result<T>, dir: &Path, clean: &[String]) -> bool {
    result.is_ok() && file_names(dir) == clean
}

// ---------------------------------------------------------------------------
// SIGKILL while sealing.

const CHILD_ENV: &str = "TIMECASK_RUN_CRASH_CHILD";
const SIG_KEYS: u64 = 13;

fn sig_config() -> Config {
    config(None)
}

fn sig_value(i: u64) -> Vec<u8> {
    let mut v = format!("{i}:").into_bytes();
    v.resize(30 + (i * 7 % 200) as usize, b'a' + (i % 26) as u8);
    v
}

/// One change: `(table, key, value)`.
type SigChange = (&'static str, Vec<u8>, Option<Vec<u8>>);
/// A key's versions: `(txid, value)`.
type Chain = Vec<(u64, Option<Vec<u8>>)>;

/// What transaction `i` writes.
fn sig_changes(i: u64) -> Vec<SigChange> {
    let mut changes = vec![
        (
            "kv",
            (i % SIG_KEYS).to_be_bytes().to_vec(),
            Some(sig_value(i)),
        ),
        (
            "seq",
            i.to_be_bytes().to_vec(),
            Some(i.to_le_bytes().to_vec()),
        ),
    ];
    if i.is_multiple_of(5) {
        changes.push(("kv", ((i + 4) % SIG_KEYS).to_be_bytes().to_vec(), None));
    }
    changes
}

/// With purges: txid `p` is a purge of the history before `p - 13` iff
/// `p - 1` is a positive multiple of 24 (a child that finds one pending
/// when it starts does it first). Every other txid is `sig_changes(txid)`.
fn is_purge(txid: u64, purges: bool) -> bool {
    purges && txid > 1 && (txid - 1).is_multiple_of(24)
}

/// Child side: commit forever, compact every few commits, print each
/// acknowledged txid.
#[test]
fn run_crash_child_entry() {
    let Some(spec) = std::env::var_os(CHILD_ENV) else {
        return; // Only does something when re-executed by the parent.
    };
    let spec = spec.into_string().expect("utf-8 spec");
    let (mode, dir) = spec.split_once(':').expect("mode:dir");
    let purges = mode == "purge";
    let db = Db::open_with(dir, sig_config()).expect("child open");
    let mut stdout = std::io::stdout().lock();
    loop {
        let i = db.latest_txid().0 + 1;
        if is_purge(i, purges) {
            let txid = db.purge_history(TxId(i - 13)).expect("purge");
            assert_eq!(txid, Some(TxId(i)), "purge txid");
        } else {
            let mut tx = db.begin();
            tx.set_meta("i", i.to_string()).expect("meta");
            for (table, key, value) in sig_changes(i) {
                match value {
                    Some(v) => tx.put(table, key, v).expect("put"),
                    None => {
                        tx.delete(table, key).expect("delete");
                    }
                }
            }
            let txid = tx.commit().expect("commit").expect("changed");
            assert_eq!(txid, TxId(i), "child txids follow i");
        }
        writeln!(stdout, "{i}").expect("stdout");
        stdout.flush().expect("flush");
        // A seal (the background sealer's job) or, every other time, a
        // compaction (every run merged into one).
        if i.is_multiple_of(8) {
            db.compact().expect("compact");
            writeln!(stdout, "compacted").expect("stdout");
        } else if i.is_multiple_of(4) {
            db.seal().expect("seal");
            writeln!(stdout, "compacted").expect("stdout");
        }
    }
}

fn check_after_kill(dir: &Path, acknowledged: u64, purges: bool) {
    let db = Db::open_with(dir, sig_config()).expect("reopen after SIGKILL");
    let latest = db.latest_txid().0;
    assert!(
        latest >= acknowledged,
        "acknowledged txid {acknowledged} lost: latest is {latest}"
    );
    let unlisted = unlisted_runs(dir);
    assert!(
        unlisted.is_empty(),
        "unlisted runs after open: {unlisted:?}"
    );
    let horizon = (1..=latest)
        .filter(|t| is_purge(*t, purges))
        .map(|t| t - 13)
        .max()
        .unwrap_or(0);
    let mut model: BTreeMap<Vec<u8>, Chain> = BTreeMap::new();
    let mut data_txs = 0;
    for i in 1..=latest {
        let mut want = if is_purge(i, purges) {
            Vec::new()
        } else {
            data_txs += 1;
            sig_changes(i)
        };
        // A delete of a dead key is no change.
        want.retain(|(t, k, v)| {
            *t != "kv"
                || v.is_some()
                || model
                    .get(k)
                    .and_then(|h| h.last())
                    .is_some_and(|(_, v)| v.is_some())
        });
        for (t, k, v) in &want {
            if *t == "kv" {
                model.entry(k.clone()).or_default().push((i, v.clone()));
            }
        }
        let record = match db.transaction(TxId(i)) {
            Err(timecask::Error::HistoryPurged { .. }) if i < horizon => continue,
            Ok(_) if i < horizon => panic!("tx {i} readable below the horizon {horizon}"),
            r => r.expect("transaction"),
        };
        if !is_purge(i, purges) {
            assert_eq!(record.meta["i"], i.to_string(), "tx {i} metadata");
        }
        let mut got: Vec<_> = record
            .changes
            .iter()
            .filter(|c| c.table == "kv" || c.table == "seq")
            .map(|c| (c.table.as_str(), c.key.clone(), c.value.clone()))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "tx {i} changes");
    }
    let view = db.snapshot();
    assert_eq!(view.count("seq").expect("count"), data_txs);
    for (k, chain) in &model {
        let history: Chain = view
            .history("kv", k, HistoryQuery::all())
            .expect("history")
            .into_iter()
            .map(|v| (v.txid.0, v.value))
            .collect();
        // Below the horizon only the version valid at it may be left.
        let first_kept = chain
            .iter()
            .rposition(|(t, _)| *t <= horizon.max(1))
            .unwrap_or(0);
        let want: Chain = chain[first_kept..].to_vec();
        let strict: Chain = chain
            .iter()
            .filter(|(t, _)| *t >= horizon)
            .cloned()
            .collect();
        assert!(
            history == want || history == strict,
            "history of {k:?} (horizon {horizon}): {history:?}, model {chain:?}"
        );
        assert_eq!(
            view.get("kv", k).expect("get"),
            chain.last().and_then(|(_, v)| v.clone())
        );
    }
    for at in (horizon.max(1)..=latest).step_by(7) {
        let old = db.as_of(TxId(at)).expect("as_of");
        for (k, chain) in &model {
            let want = chain
                .iter()
                .rev()
                .find(|(t, _)| *t <= at)
                .and_then(|(_, v)| v.clone());
            assert_eq!(old.get("kv", k).expect("get"), want, "{k:?} as of {at}");
        }
    }
    db.verify().expect("verify");
}

#[test]
fn sigkill_while_sealing_loses_no_acknowledged_commit() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    sigkill_rounds(false);
}

#[test]
fn sigkill_while_sealing_and_merging_purged_history_loses_no_acknowledged_commit() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    sigkill_rounds(true);
}

fn sigkill_rounds(purges: bool) {
    let rounds = env_u64("TIMECASK_CRASH_ROUNDS", 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let stderr_path = logs.path().join("child-stderr.log");
    let exe = std::env::current_exe().expect("test binary path");
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ rounds;
    let mut acknowledged = 0;
    let mut compactions = 0;
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "run_crash_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD_ENV,
                format!(
                    "{}:{}",
                    if purges { "purge" } else { "plain" },
                    dir.path().display()
                ),
            )
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).expect("child stderr file"))
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let (sender, receiver) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == "compacted" {
                    let _ = sender.send(None);
                } else if let Ok(txid) = line.parse::<u64>() {
                    let _ = sender.send(Some(txid));
                }
            }
        });
        let first = loop {
            match receiver.recv_timeout(Duration::from_secs(60)) {
                Ok(Some(txid)) => break txid,
                Ok(None) => compactions += 1,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    panic!("round {round}: the child committed nothing ({e}); stderr:\n{stderr}")
                }
            }
        };
        acknowledged = acknowledged.max(first);
        std::thread::sleep(Duration::from_micros(2_000 + seed % 100_000));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap child");
        reader.join().expect("reader thread");
        for m in receiver.try_iter() {
            match m {
                Some(txid) => acknowledged = acknowledged.max(txid),
                None => compactions += 1,
            }
        }
        check_after_kill(dir.path(), acknowledged, purges);
    }
    eprintln!("{rounds} rounds, {acknowledged} txids acknowledged, {compactions} compactions");
    assert!(compactions > 0, "the children never compacted");
    assert!(!run_files(dir.path()).is_empty(), "history is in runs");
}

/// A crash during compaction, then a crash during the compaction that
/// recovers from it: every image of the second crash still answers the
/// same. States of the first crash: every `TIMECASK_RUN_CRASH_STRIDE`th
/// (default 16, from the middle of the first stride), durable directory entries and only synced bytes (the
/// state furthest from the live one); second crash: every state, synced
/// only with durable entries and everything written with live entries.
#[test]
fn crash_images_of_a_compaction_after_a_crash_during_compaction() {
    let stride = env_u64("TIMECASK_RUN_CRASH_STRIDE", 16).max(1) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = Db::open_with(dir.path(), config(Some(Arc::new(storage.clone())))).expect("open");
    build_scenario(&db, Scenario::MergeWithDrops);
    let want = observe(&db).expect("observe");
    storage.capture_before_every_call(true);
    db.compact().expect("compact");
    drop(db);
    let states = storage.take_captures();
    let first_mode = CrashMode::SyncedOnly { garbage: vec![] };
    let second: [(CrashMode, DirState); 2] = [
        (CrashMode::SyncedOnly { garbage: vec![] }, DirState::Durable),
        (CrashMode::AllWritten, DirState::Live),
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    for (i, state) in states.iter().enumerate().skip(stride / 2).step_by(stride) {
        let image = tempfile::tempdir().expect("tempdir");
        state.write_image(dir.path(), image.path(), &first_mode, DirState::Durable);
        let storage = FaultyStorage::default();
        let db = match Db::open_with(image.path(), config(Some(Arc::new(storage.clone())))) {
            Ok(db) => db,
            Err(e) => {
                failures.push(format!("state {i}: open: {e}"));
                continue;
            }
        };
        storage.capture_before_every_call(true);
        if let Err(e) = db.compact() {
            failures.push(format!("state {i}: compaction: {e}"));
            continue;
        }
        drop(db);
        let inner = storage.take_captures();
        for (j, inner_state) in inner.iter().enumerate() {
            for (mode, dir_state) in &second {
                let again = tempfile::tempdir().expect("tempdir");
                inner_state.write_image(image.path(), again.path(), mode, *dir_state);
                checked += 1;
                if let Err(what) = check_image(again.path(), true, &want) {
                    failures.push(format!(
                        "state {i}, then {j} {mode:?} {dir_state:?}: {what}"
                    ));
                }
            }
        }
    }
    eprintln!("{checked} images after two crashes");
    assert!(checked > 50, "only {checked} images");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}

/// A reader opened before a compaction that merges and deletes its runs
/// and segments keeps answering the same (it reads the files it opened),
/// and verifies clean; a reader opened after it too.
#[test]
fn a_reader_open_across_a_merging_compaction_keeps_its_answers() {
    for scenario in [Scenario::MergeWithDrops, Scenario::MergeForCount] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open_with(dir.path(), config(None)).expect("open");
        build_scenario(&db, scenario);
        let want = observe(&db).expect("observe");
        let reader = Db::open_read_only(dir.path()).expect("reader");
        // Warm nothing: the reader has read no block yet.
        db.compact().expect("compact");
        let got = observe(&reader).expect("reader reads after the compaction");
        assert_eq!(got, want, "{scenario:?}: {}", first_difference(&got, &want));
        reader.verify().expect("reader verify");
        let late = Db::open_read_only(dir.path()).expect("late reader");
        assert_eq!(observe(&late).expect("late reader reads"), want);
        // The writer goes on; the first reader still reads.
        db.compact().expect("compact again");
        assert_eq!(observe(&reader).expect("reader reads"), want);
    }
}

/// A writer open that must clean up after a crash between the manifest
/// install and the deletions, whose removals fail: it opens (or fails with
/// `Io`), answers the same, and a later open finishes the cleanup.
#[test]
fn a_failed_removal_in_the_cleanup_at_open_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::default();
    let db = Db::open_with(dir.path(), config(Some(Arc::new(storage.clone())))).expect("open");
    build_scenario(&db, Scenario::MergeWithDrops);
    let want = observe(&db).expect("observe");
    storage.capture_before_every_call(true);
    db.compact().expect("compact");
    drop(db);
    // States with leftovers: a listed manifest plus unlisted runs or
    // covered segments, as a process crash leaves them.
    let mut with_leftovers = 0;
    for state in storage.take_captures() {
        let image = tempfile::tempdir().expect("tempdir");
        state.write_image(
            dir.path(),
            image.path(),
            &CrashMode::AllWritten,
            DirState::Live,
        );
        if unlisted_runs(image.path()).is_empty()
            && run_support::stale_segments(image.path()).is_empty()
        {
            continue;
        }
        with_leftovers += 1;
        for n in 1..4 {
            let faulty = FaultyStorage::default();
            faulty.arm(|p| p.fail_remove_at = Some(n));
            match Db::open_with(image.path(), config(Some(Arc::new(faulty.clone())))) {
                Ok(db) => {
                    let got = observe(&db).expect("observe");
                    assert_eq!(
                        got,
                        want,
                        "fail remove {n}: {}",
                        first_difference(&got, &want)
                    );
                    db.verify().expect("verify");
                }
                Err(Error::Io { .. }) => {}
                Err(e) => panic!("fail remove {n}: open: {e}"),
            }
        }
        let db = Db::open_with(image.path(), config(None)).expect("reopen");
        assert_eq!(observe(&db).expect("observe"), want);
        assert!(unlisted_runs(image.path()).is_empty());
        assert!(run_support::stale_segments(image.path()).is_empty());
        db.compact().expect("compact");
        assert_eq!(observe(&db).expect("observe"), want);
    }
    assert!(with_leftovers > 0, "no state had leftovers");
}

/// FORMAT.md "Compaction" step 3: a compaction merges every run into one,
/// dropping what purges hide; a seal with nothing to drop adds its run
/// beside the old one (a small one, so the size tiers leave the old run
/// alone), and the next compaction merges them without dropping anything.
#[test]
fn a_compaction_merges_every_run_and_a_seal_adds_its_run_beside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    run_support::commit_rounds(&db, 0, 10);
    db.purge_history(TxId(5)).expect("purge");
    let first = db.compact().expect("compact");
    assert!(first.versions_dropped > 0, "{first:?}");
    let old_run = run_files(dir.path());
    assert_eq!(old_run.len(), 1);
    run_support::commit_rounds(&db, 10, 1);
    let sealed = db.seal().expect("seal");
    assert_eq!(sealed.versions_dropped, 0, "{sealed:?}");
    let runs = run_files(dir.path());
    assert_eq!(runs.len(), 2, "the seal rewrote the old run: {runs:?}");
    assert!(runs.contains(&old_run[0]), "the old run is kept as it is");
    assert_eq!(db.stats().history_runs, 2);
    let second = db.compact().expect("compact");
    assert_eq!(second.versions_dropped, 0, "{second:?}");
    assert_eq!(run_files(dir.path()).len(), 1, "the runs were merged");
    assert_eq!(db.stats().history_runs, 1);
    // A horizon that moves again drops more.
    db.purge_history(db.latest_txid()).expect("purge");
    let third = db.compact().expect("compact");
    assert!(third.versions_dropped > 0, "{third:?}");
    assert_eq!(run_files(dir.path()).len(), 1);
}
