//! Shared by `run_crashes.rs` and `run_corruption.rs`: a database whose
//! history is in runs, and everything a reader can see of it as plain
//! lines, for exact comparison.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use timecask::storage::Storage;
use timecask::{Config, Db, Durability, Error, HistoryQuery, TxId};

pub const TABLES: [&str; 3] = ["alpha", "beta", "gamma"];
pub const KEYS: u32 = 7;

pub fn config(storage: Option<Arc<dyn Storage>>) -> Config {
    let mut config = Config {
        durability: Durability::Immediate,
        segment_roll_bytes: timecask::limits::SEGMENT_ROLL_SIZE_MIN,
        run_block_bytes: 64,
        // Tiny index pages: every run's index has several.
        run_index_page_entries: 2,
        history_runs: true,
        // The SIGKILL test forks children from this process: until it execs,
        // a child holds copies of every descriptor, the `LOCK` of a database
        // another test just closed among them.
        lock_timeout: std::time::Duration::from_secs(10),
        ..Config::default()
    };
    if let Some(storage) = storage {
        config.storage = storage;
    }
    config
}

pub fn key(k: u32) -> Vec<u8> {
    format!("key{k:02}").into_bytes()
}

fn value(table: usize, k: u32, i: u32) -> Vec<u8> {
    let mut v = format!("{}-{k}-{i}:", TABLES[table]).into_bytes();
    v.resize(
        20 + ((k * 37 + i * 11) % 160) as usize,
        b'a' + (i % 26) as u8,
    );
    v
}

/// `rounds` transactions of puts, updates and deletes over every table,
/// metadata on some; returns the txids.
pub fn commit_rounds(db: &Db, start: u32, rounds: u32) -> Vec<TxId> {
    let mut txids = Vec::new();
    for i in start..start + rounds {
        let mut tx = db.begin();
        for (t, table) in TABLES.iter().enumerate() {
            for k in 0..KEYS {
                let pick = (k * 5 + i * 7 + t as u32 * 2) % 9;
                if pick == 0 {
                    tx.delete(table, key(k)).expect("delete");
                } else if pick < 3 {
                    tx.put(table, key(k), value(t, k, i)).expect("put");
                }
            }
        }
        if i % 4 == 0 {
            tx.set_meta("round", i.to_string()).expect("meta");
        }
        if let Some(txid) = tx.commit().expect("commit") {
            txids.push(txid);
        }
    }
    txids
}

/// Builds the database: commits, a seal (a run), more commits, a
/// compaction, more commits, a purge, an erasure, more commits. The next
/// `compact()` seals the new segments and has to merge with the older run
/// (the purge and the erasure drop versions in it).
pub fn build(db: &Db) {
    commit_rounds(db, 0, 14);
    db.seal().expect("first seal");
    commit_rounds(db, 14, 8);
    db.compact().expect("compaction");
    commit_rounds(db, 22, 6);
    db.purge_history(TxId(9)).expect("purge");
    db.erase("beta", key(3)).expect("erase");
    commit_rounds(db, 28, 6);
    db.flush().expect("flush");
}

/// The scenarios the next [`operation`] runs in.
#[derive(Clone, Copy, Debug)]
pub enum Scenario {
    /// [`build`]: a compaction merges every run, dropping purged and
    /// erased versions.
    MergeWithDrops,
    /// Three seals without drops, each run far smaller than the one
    /// before (size-tiered: three runs): a compaction merges them all into
    /// one.
    MergeForCount,
    /// One seal without drops, then a few commits: the next seal adds a
    /// far smaller run beside it (the background sealer's job).
    AddRun,
    /// One seal without drops, then as many commits again: the next seal
    /// merges the new run with it by size.
    SealMerges,
    /// `gamma` keeps its last 2 versions: the next compaction first
    /// commits a retention trim (a txid of its own), then seals and merges.
    Retention,
}

/// What a scenario tests: a seal for [`Scenario::AddRun`] and
/// [`Scenario::SealMerges`], else a compaction.
pub fn operation(db: &Db, scenario: Scenario) -> Result<timecask::CompactReport, Error> {
    match scenario {
        Scenario::AddRun | Scenario::SealMerges => db.seal(),
        _ => db.compact(),
    }
}

pub fn build_scenario(db: &Db, scenario: Scenario) {
    match scenario {
        Scenario::MergeWithDrops => build(db),
        Scenario::Retention => {
            commit_rounds(db, 0, 8);
            let mut tx = db.begin();
            tx.set_retention(
                "gamma",
                timecask::RetentionPolicy {
                    keep_last: Some(2),
                    keep_for: None,
                },
            )
            .expect("retention");
            tx.commit().expect("commit");
            db.compact().expect("compaction");
            commit_rounds(db, 8, 10);
            db.flush().expect("flush");
        }
        Scenario::MergeForCount => {
            for (start, n) in [(0, 12), (12, 4), (16, 1)] {
                commit_rounds(db, start, n);
                db.seal().expect("seal");
            }
            commit_rounds(db, 30, 7);
            db.flush().expect("flush");
        }
        Scenario::AddRun | Scenario::SealMerges => {
            commit_rounds(db, 0, 6);
            db.seal().expect("seal");
            let after = if matches!(scenario, Scenario::AddRun) {
                1
            } else {
                7
            };
            commit_rounds(db, 30, after);
            db.flush().expect("flush");
        }
    }
}

/// A value, readable (the values are ASCII).
fn show(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn show_opt(v: &Option<Vec<u8>>) -> String {
    v.as_deref().map_or_else(|| "-".to_owned(), show)
}

/// A table's history before its retention horizon is gone: a line saying
/// so instead of the error.
fn table_purged(
    out: &mut Vec<String>,
    what: &str,
    r: timecask::Result<()>,
) -> timecask::Result<()> {
    match r {
        Err(Error::HistoryPurged { requested, horizon }) => {
            out.push(format!("{what} purged {requested:?} {horizon:?}"));
            Ok(())
        }
        r => r,
    }
}

/// Everything a reader sees, as lines. Errors other than an expected
/// `HistoryPurged` are returned.
pub fn observe(db: &Db) -> timecask::Result<Vec<String>> {
    let mut out = Vec::new();
    let latest = db.latest_txid();
    out.push(format!("latest {latest:?}"));
    let view = db.snapshot();
    out.push(format!("tables {:?}", view.tables()));
    for table in TABLES {
        out.push(format!("count {table} {}", view.count(table)?));
        for kv in view.iter(table)? {
            let (k, v) = kv?;
            out.push(format!("latest {table} {} = {}", show(&k), show(&v)));
        }
        for k in 0..KEYS + 1 {
            for v in view.history(table, key(k), HistoryQuery::all())? {
                out.push(format!(
                    "history {table} {k} {:?} {:?} {:?} {} {:?} {:?}",
                    v.txid,
                    v.end_txid,
                    v.op,
                    show_opt(&v.value),
                    v.commit_time,
                    v.meta
                ));
            }
        }
    }
    drop(view);
    for at in (1..=latest.0).step_by(3).chain([latest.0]) {
        match db.as_of(TxId(at)) {
            Err(Error::HistoryPurged { requested, horizon }) => {
                out.push(format!("as_of {at} purged {requested:?} {horizon:?}"));
            }
            Err(e) => return Err(e),
            Ok(view) => {
                for table in TABLES {
                    let r = (|| {
                        out.push(format!("as_of {at} count {table} {}", view.count(table)?));
                        for kv in view.iter(table)? {
                            let (k, v) = kv?;
                            out.push(format!("as_of {at} {table} {} = {}", show(&k), show(&v)));
                        }
                        for k in [0, 3, 5] {
                            out.push(format!(
                                "as_of {at} get {table} {k} {:?}",
                                view.get_version(table, key(k))?
                                    .map(|v| (v.txid, v.end_txid, v.op))
                            ));
                        }
                        Ok(())
                    })();
                    table_purged(&mut out, &format!("as_of {at} {table}"), r)?;
                }
            }
        }
    }
    for t in 1..=latest.0 {
        let r = match db.transaction(TxId(t)) {
            Err(Error::HistoryPurged { requested, horizon }) => {
                out.push(format!("tx {t} purged {requested:?} {horizon:?}"));
                continue;
            }
            r => r?,
        };
        out.push(format!(
            "tx {t} {:?} {:?} {:?}",
            r.txid, r.commit_time, r.meta
        ));
        for c in r.changes {
            out.push(format!(
                "tx {t} change {} {} {:?} {}",
                c.table,
                show(&c.key),
                c.op,
                show_opt(&c.value)
            ));
        }
    }
    // Time travel by commit time, at every 5th txid.
    for t in (1..=latest.0).step_by(5) {
        let Ok(r) = db.transaction(TxId(t)) else {
            continue;
        };
        match db.as_of_time(r.commit_time) {
            Ok(view) => out.push(format!("as_of_time {t} -> {:?}", view.txid())),
            Err(Error::HistoryPurged { .. }) => out.push(format!("as_of_time {t} purged")),
            Err(e) => return Err(e),
        }
    }
    // Diffs across the runs and the tail, newest-first iteration, a range.
    let horizon = (1..=latest.0)
        .find(|t| db.as_of(TxId(*t)).is_ok())
        .unwrap_or(latest.0);
    for (from, to) in [(horizon, latest.0), (horizon, (horizon + latest.0) / 2)] {
        for table in TABLES {
            let r = db.diff(table, TxId(from), TxId(to)).map(|diff| {
                for d in diff {
                    out.push(format!(
                        "diff {table} {from}..{to} {} {} -> {}",
                        show(&d.key),
                        show_opt(&d.before),
                        show_opt(&d.after)
                    ));
                }
            });
            table_purged(&mut out, &format!("diff {table} {from}..{to}"), r)?;
        }
    }
    let view = db.as_of(TxId((horizon + latest.0) / 2))?;
    for table in TABLES {
        let r = (|| {
            for kv in view.iter(table)?.rev() {
                out.push(format!("rev {table} {}", show(&kv?.0)));
            }
            for kv in view.range(table, key(2)..key(5))? {
                out.push(format!("range {table} {}", show(&kv?.0)));
            }
            Ok(())
        })();
        table_purged(&mut out, &format!("rev/range {table}"), r)?;
    }
    drop(view);
    let mut feed = db.changes_since(TxId(horizon));
    while let Some(r) = feed.try_next()? {
        out.push(format!("feed {:?} {}", r.txid, r.changes.len()));
    }
    let mut n = 0;
    for r in db.log(..)? {
        let r = r?;
        n += 1;
        out.push(format!("log {:?} {} changes", r.txid, r.changes.len()));
    }
    out.push(format!("log records {n}"));
    Ok(out)
}

/// `lines` without commit times (`Timestamp(..)` becomes `Timestamp(_)`)
/// and without `as_of_time` reads: for comparing databases in which one
/// transaction (a retention trim) was committed at different times.
pub fn without_times(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| !l.starts_with("as_of_time"))
        .map(|l| {
            let mut out = String::new();
            let mut rest = l.as_str();
            while let Some(at) = rest.find("Timestamp(") {
                out.push_str(&rest[..at]);
                out.push_str("Timestamp(_)");
                rest = &rest[at..];
                rest = &rest[rest.find(')').map_or(rest.len(), |e| e + 1)..];
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// The first line where `got` and `want` differ, for messages.
pub fn first_difference(got: &[String], want: &[String]) -> String {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            return format!("line {i}: got {g:?}, want {w:?}");
        }
    }
    format!("lengths differ: got {}, want {}", got.len(), want.len())
}

/// Run file numbers `MANIFEST` lists (parsed per FORMAT.md "MANIFEST").
pub fn manifest_runs(dir: &Path) -> Option<BTreeSet<u64>> {
    let bytes = std::fs::read(dir.join("MANIFEST")).ok()?;
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    // Version 2 has `drops_applied` (8 bytes) before the tables.
    let mut o = if u32_at(8) >= 2 { 76 } else { 68 };
    let tables = u32_at(o);
    o += 4;
    for _ in 0..tables {
        let name_len = u32_at(o + 4);
        o += 8 + name_len + 16;
        let has_policy = bytes[o];
        o += 1 + if has_policy == 1 { 12 } else { 0 };
    }
    let runs = u32_at(o);
    o += 4;
    Some((0..runs).map(|r| u64_at(o + r * 32)).collect())
}

/// Segment files numbered below the manifest's `log_first_segment`.
pub fn stale_segments(dir: &Path) -> Vec<String> {
    let Ok(bytes) = std::fs::read(dir.join("MANIFEST")) else {
        return Vec::new();
    };
    let first = u32::from_le_bytes(bytes[40..44].try_into().unwrap()) as u64;
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            let number: u64 = name.strip_suffix(".tcseg")?.parse().ok()?;
            (number < first).then_some(name)
        })
        .collect()
}

/// `.tcrun` files in `dir`, by number.
pub fn run_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut runs: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            let number = name.strip_suffix(".tcrun")?.parse().ok()?;
            Some((number, p))
        })
        .collect();
    runs.sort();
    runs
}

/// Run files the manifest does not list.
pub fn unlisted_runs(dir: &Path) -> Vec<PathBuf> {
    let listed = manifest_runs(dir).unwrap_or_default();
    run_files(dir)
        .into_iter()
        .filter(|(n, _)| !listed.contains(n))
        .map(|(_, p)| p)
        .collect()
}

/// Copies every regular file of `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}
