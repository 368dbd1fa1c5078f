//! Damage to history runs and to `MANIFEST` (issue 12): bit flips in every
//! byte, truncations, a deleted run, a run swapped for another. Every
//! outcome is `Error::Corrupt` (or `UnsupportedFormat` for an intact
//! version field above the newest) at open, on a read or from `verify()`, or exactly
//! the right answers; never other data, never a panic.
//!
//! Flips: one bit per byte (bit `(offset + k) % 8` for `k` in
//! `0..TIMECASK_RUN_FLIP_BITS`, default 1; 8 flips every bit) of every byte
//! of `MANIFEST` and of each run's header and footer, every
//! `TIMECASK_RUN_FLIP_STRIDE / 3`th byte of its sections and every
//! `TIMECASK_RUN_FLIP_STRIDE`th byte of its blocks (default 12; 1 or 2 for
//! every byte).

mod run_support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use run_support::{build, commit_rounds, config, copy_dir, first_difference, observe, run_files};
use timecask::{Db, Error};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A closed database with its history in runs and a short log tail, and
/// the answers it gives. `merged`: built by `run_support::build` (a purge
/// and an erasure), then compacted: one run, a merge that dropped versions
/// (a compaction merges everything). Otherwise three seals without drops:
/// three runs.
struct Pristine {
    dir: tempfile::TempDir,
    want: Vec<String>,
}

fn pristine(merged: bool) -> Pristine {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    if merged {
        build(&db);
        db.compact().expect("compact");
    } else {
        // Each later run much smaller than the ones before: sealing's
        // size-tiered merge keeps them apart.
        for (start, n) in [(0, 24), (24, 6), (30, 1)] {
            commit_rounds(&db, start, n);
            db.seal().expect("seal");
        }
    }
    commit_rounds(&db, 40, 3);
    let want = observe(&db).expect("observe");
    db.verify().expect("verify");
    drop(db);
    let runs = run_files(dir.path()).len();
    assert_eq!(runs, if merged { 1 } else { 3 }, "runs");
    Pristine { dir, want }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    AtOpen,
    AtRead,
    AtVerify,
    /// Right answers and a clean `verify()`.
    Undetected,
}

fn acceptable(e: &Error) -> bool {
    matches!(e, Error::Corrupt { .. } | Error::UnsupportedFormat { .. })
}

/// Opens `dir` one way, reads everything, verifies.
fn outcome(dir: &Path, writer: bool, want: &[String]) -> Result<Outcome, String> {
    let run = || -> Result<Outcome, String> {
        let opened = if writer {
            Db::open_with(dir, config(None))
        } else {
            Db::open_read_only(dir)
        };
        let db = match opened {
            Ok(db) => db,
            Err(e) if acceptable(&e) => return Ok(Outcome::AtOpen),
            Err(e) => return Err(format!("open: {e:?}")),
        };
        match observe(&db) {
            Ok(got) if got == want => {}
            Ok(got) => return Err(format!("wrong answers: {}", first_difference(&got, want))),
            Err(e) if acceptable(&e) => return Ok(Outcome::AtRead),
            Err(e) => return Err(format!("read: {e:?}")),
        }
        match db.verify() {
            Ok(_) => Ok(Outcome::Undetected),
            Err(e) if acceptable(&e) => Ok(Outcome::AtVerify),
            Err(e) => Err(format!("verify: {e:?}")),
        }
    };
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|_| Err("panicked".into()))
}

/// Rebuilds `trial` as a copy of `pristine` with `name` replaced by `bytes`
/// (`None`: removed).
fn stage(pristine: &Path, trial: &Path, name: &str, bytes: Option<&[u8]>) {
    for entry in std::fs::read_dir(trial).expect("read dir") {
        std::fs::remove_file(entry.expect("entry").path()).expect("remove");
    }
    copy_dir(pristine, trial);
    match bytes {
        Some(bytes) => std::fs::write(trial.join(name), bytes).expect("write"),
        None => std::fs::remove_file(trial.join(name)).expect("remove"),
    }
}

/// Tallies outcomes and failures of one sweep.
#[derive(Default)]
struct Tally {
    outcomes: std::collections::BTreeMap<(bool, Outcome), usize>,
    undetected: Vec<String>,
    failures: Vec<String>,
}

impl Tally {
    fn trial(&mut self, p: &Pristine, trial: &Path, name: &str, bytes: Option<&[u8]>, what: &str) {
        // Read-only first: a writer's open may delete files.
        stage(p.dir.path(), trial, name, bytes);
        for writer in [false, true] {
            let opener = if writer { "writer" } else { "read-only" };
            match outcome(trial, writer, &p.want) {
                Ok(o) => {
                    *self.outcomes.entry((writer, o)).or_default() += 1;
                    if o == Outcome::Undetected {
                        self.undetected.push(format!("{what} ({opener})"));
                    }
                }
                Err(e) => self.failures.push(format!("{what} ({opener}): {e}")),
            }
        }
    }

    #[track_caller]
    fn finish(self, sweep: &str) {
        eprintln!(
            "{sweep}: outcomes (writer?, outcome) -> n: {:?}",
            self.outcomes
        );
        if !self.undetected.is_empty() {
            eprintln!(
                "{sweep}: {} damaged images gave right answers and verified clean, e.g. {:?}",
                self.undetected.len(),
                &self.undetected[..self.undetected.len().min(10)]
            );
        }
        assert!(
            self.failures.is_empty(),
            "{sweep}: {} failures, first ones:\n{}",
            self.failures.len(),
            self.failures[..self.failures.len().min(30)].join("\n")
        );
    }
}

/// Flips bits of `name`: every byte of `MANIFEST` and of a run's header and
/// footer, every `stride / 3`th byte of a run's sections (indexes, bloom)
/// and every `stride`th byte of its blocks (the offset moves with the bit,
/// so several bits per byte cover different bytes).
fn flip_sweep(p: &Pristine, name: &str, tally: &mut Tally) {
    let bits = env_u64("TIMECASK_RUN_FLIP_BITS", 1).clamp(1, 8) as usize;
    let stride = env_u64("TIMECASK_RUN_FLIP_STRIDE", 12).max(1) as usize;
    let trial = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(p.dir.path().join(name)).expect("read");
    // Blocks: from the header to the version index (footer offset 72).
    let blocks = if name.ends_with(".tcrun") {
        let f = bytes.len() - 144;
        let index = u64::from_le_bytes(bytes[f + 72..f + 80].try_into().expect("8 bytes")) as usize;
        16..index
    } else {
        0..0
    };
    // The sections (indexes, bloom): every `stride / 3`th byte.
    let sections = blocks.end..bytes.len().saturating_sub(144);
    let section_stride = (stride / 3).max(1);
    for pos in 0..bytes.len() {
        for k in 0..bits {
            if blocks.contains(&pos) && (pos + k) % stride != 0
                || sections.contains(&pos) && (pos + k) % section_stride != 0
            {
                continue;
            }
            let bit = (pos + k) % 8;
            let mut damaged = bytes.clone();
            damaged[pos] ^= 1 << bit;
            tally.trial(
                p,
                trial.path(),
                name,
                Some(&damaged),
                &format!("{name} byte {pos} bit {bit}"),
            );
        }
    }
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn bit_flips_in_every_run_file_are_corrupt_or_harmless() {
    for merged in [true, false] {
        let p = pristine(merged);
        let mut tally = Tally::default();
        for (_, path) in run_files(p.dir.path()) {
            flip_sweep(&p, &name_of(&path), &mut tally);
        }
        tally.finish(&format!("run flips (merged {merged})"));
    }
}

#[test]
fn bit_flips_in_the_manifest_are_corrupt_or_harmless() {
    let p = pristine(true);
    let mut tally = Tally::default();
    flip_sweep(&p, "MANIFEST", &mut tally);
    // Every manifest byte is under its CRC: no flip goes unnoticed at open.
    assert!(
        tally.outcomes.keys().all(|(_, o)| *o == Outcome::AtOpen),
        "{:?}",
        tally.outcomes
    );
    tally.finish("manifest flips");
}

#[test]
fn a_truncated_run_file_is_corrupt() {
    let p = pristine(false);
    let trial = tempfile::tempdir().expect("tempdir");
    let mut tally = Tally::default();
    for (_, path) in run_files(p.dir.path()) {
        let name = name_of(&path);
        let bytes = std::fs::read(&path).expect("read");
        let step = (bytes.len() / 150).max(1);
        let cuts = (0..bytes.len())
            .step_by(step)
            .chain(bytes.len().saturating_sub(160)..bytes.len());
        for cut in cuts {
            tally.trial(
                &p,
                trial.path(),
                &name,
                Some(&bytes[..cut]),
                &format!("{name} cut at {cut}"),
            );
        }
    }
    assert!(
        tally.undetected.is_empty(),
        "a truncated run went unnoticed: {:?}",
        tally.undetected
    );
    tally.finish("truncations");
}

#[test]
fn a_deleted_listed_run_is_an_error_naming_it() {
    let p = pristine(false);
    let trial = tempfile::tempdir().expect("tempdir");
    for (_, path) in run_files(p.dir.path()) {
        let name = name_of(&path);
        for writer in [false, true] {
            stage(p.dir.path(), trial.path(), &name, None);
            let opened = if writer {
                Db::open_with(trial.path(), config(None))
            } else {
                Db::open_read_only(trial.path())
            };
            match opened {
                Ok(_) => panic!("{name} deleted, writer {writer}: opened"),
                Err(e) => {
                    assert!(
                        e.to_string().contains(&name),
                        "{name} deleted, writer {writer}: {e} does not name it"
                    );
                    assert!(
                        matches!(e, Error::Corrupt { .. } | Error::Io { .. }),
                        "{name} deleted, writer {writer}: {e:?}"
                    );
                }
            }
        }
        // Nothing else was deleted by the failed writer open.
        let mut left: Vec<String> = std::fs::read_dir(trial.path())
            .expect("read dir")
            .map(|e| name_of(&e.expect("entry").path()))
            .collect();
        left.push(name.clone());
        left.sort();
        let mut all: Vec<String> = std::fs::read_dir(p.dir.path())
            .expect("read dir")
            .map(|e| name_of(&e.expect("entry").path()))
            .collect();
        all.sort();
        all.retain(|n| n != "LOCK" || left.contains(n));
        assert_eq!(left, all, "a failed open changed the directory");
    }
}

#[test]
fn a_run_replaced_by_another_run_of_the_database_is_corrupt() {
    let p = pristine(false);
    let trial = tempfile::tempdir().expect("tempdir");
    let runs: Vec<PathBuf> = run_files(p.dir.path())
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let mut tally = Tally::default();
    for a in &runs {
        for b in &runs {
            if a == b {
                continue;
            }
            let bytes = std::fs::read(a).expect("read");
            let (a, b) = (name_of(a), name_of(b));
            tally.trial(
                &p,
                trial.path(),
                &b,
                Some(&bytes),
                &format!("{b} replaced by {a}"),
            );
        }
    }
    assert!(
        tally.undetected.is_empty(),
        "a swapped run went unnoticed: {:?}",
        tally.undetected
    );
    tally.finish("swapped runs");
}

/// A version above the newest with its CRC intact is `UnsupportedFormat`,
/// in the manifest (3) and in a run's header and footer (3).
#[test]
fn a_newer_format_version_is_unsupported_format() {
    let p = pristine(false);
    let trial = tempfile::tempdir().expect("tempdir");
    let manifest = std::fs::read(p.dir.path().join("MANIFEST")).expect("read");
    let mut newer = manifest.clone();
    newer[8..12].copy_from_slice(&3u32.to_le_bytes());
    let n = newer.len();
    let crc = crc32fast::hash(&newer[..n - 4]);
    newer[n - 4..].copy_from_slice(&crc.to_le_bytes());
    let (_, run) = run_files(p.dir.path()).remove(0);
    let run_name = name_of(&run);
    let bytes = std::fs::read(&run).expect("read");
    let mut header = bytes.clone();
    header[8..12].copy_from_slice(&4u32.to_le_bytes());
    let crc = crc32fast::hash(&header[..12]);
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    let mut footer = bytes.clone();
    let f = footer.len() - 144;
    footer[f + 8..f + 12].copy_from_slice(&4u32.to_le_bytes());
    let crc = crc32fast::hash(&footer[f..f + 140]);
    footer[f + 140..].copy_from_slice(&crc.to_le_bytes());
    for (name, bytes, what, version) in [
        ("MANIFEST", &newer, "manifest", 3),
        (run_name.as_str(), &header, "run header", 4),
        (run_name.as_str(), &footer, "run footer", 4),
    ] {
        for writer in [false, true] {
            stage(p.dir.path(), trial.path(), name, Some(bytes));
            let opened = if writer {
                Db::open_with(trial.path(), config(None))
            } else {
                Db::open_read_only(trial.path())
            };
            assert!(
                matches!(opened, Err(Error::UnsupportedFormat { found, .. }) if found == version),
                "{what} version {version}, writer {writer}: {:?}",
                opened.map(|_| ())
            );
        }
    }
}

/// Opens `dir` both ways; each must fail with `Corrupt` (never open with
/// less history).
#[track_caller]
fn refuses(p: &Pristine, dir: &Path, what: &str) {
    for writer in [false, true] {
        match outcome(dir, writer, &p.want) {
            Ok(Outcome::AtOpen) => {}
            other => panic!("{what}, writer {writer}: {other:?}, want Corrupt at open"),
        }
    }
}

#[test]
fn a_deleted_or_stale_manifest_is_corrupt_never_a_shorter_history() {
    // A database whose MANIFEST is saved after its first compaction.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), config(None)).expect("open");
    commit_rounds(&db, 0, 10);
    db.compact().expect("compact");
    let first = std::fs::read(dir.path().join("MANIFEST")).expect("manifest");
    commit_rounds(&db, 10, 10);
    db.compact().expect("compact");
    commit_rounds(&db, 20, 2);
    let want = observe(&db).expect("observe");
    drop(db);
    let p = Pristine { dir, want };
    let trial = tempfile::tempdir().expect("tempdir");
    // Deleted: the runs are there, the log starts after segment 1.
    stage(p.dir.path(), trial.path(), "MANIFEST", None);
    refuses(&p, trial.path(), "MANIFEST deleted");
    // Stale: the first compaction's manifest, whose log segments the
    // second compaction deleted.
    stage(p.dir.path(), trial.path(), "MANIFEST", Some(&first));
    refuses(&p, trial.path(), "stale MANIFEST");
    // Empty.
    stage(p.dir.path(), trial.path(), "MANIFEST", Some(&[]));
    refuses(&p, trial.path(), "empty MANIFEST");
}
