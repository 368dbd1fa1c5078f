//! Every single-fault kind of the `open_dir_mutations` fuzz target, aimed at
//! every segment and every other file of small real databases (without a
//! checkpoint, with one halfway, with one at the end). The harness checks
//! the general properties (no panic, answers equal the model, typed
//! refusals, no silent loss after one destructive fault, a refused writer
//! changes nothing); each case here also says which outcome it must have.
//! All failures are collected and reported together.

use timecask::fuzz_harness::{
    DIR_MUTATION_SPECIAL_FILES, DirMutation, DirMutationKind, DirOpenOutcome, check_dir_mutations,
    dir_template_segments,
};

/// What a case must do (beyond the harness's checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Both opens succeed with every acknowledged txid.
    Whole,
    /// The writer open refuses with a typed error (the read-only open may
    /// too); nothing is repaired.
    Refused,
    /// A typed refusal or every acknowledged txid: never silently fewer.
    RefusedOrWhole,
}

/// One single-fault case.
struct Case {
    name: String,
    mutation: DirMutation,
    expect: Expect,
}

/// Offsets are fractions of the file's length (`offset * len / 65536`).
const FRACTION_MID: u16 = 0x8000;
const FRACTION_LAST: u16 = 0xFFFF;

fn mutation(kind: DirMutationKind, target: u8, offset: u16, arg: u8) -> DirMutation {
    DirMutation {
        kind,
        target,
        offset,
        arg,
    }
}

/// The cases for a database with `n` segments; `checkpointed` is whether
/// a checkpoint covers frames (open then reads no frame it covers, so a
/// changed byte inside one is found when it is read, not at open).
fn cases(n: usize, checkpointed: bool) -> Vec<Case> {
    use DirMutationKind::*;
    let mut out = Vec::new();
    let mut case = |name: String, mutation: DirMutation, expect: Expect| {
        out.push(Case {
            name,
            mutation,
            expect,
        })
    };
    for s in 0..n {
        let t = s as u8;
        let newest = s + 1 == n;
        let seg = format!("segment {}/{n}", s + 1);
        // Faults that destroy acknowledged bytes: a typed refusal.
        let destroying = [
            ("deleted", mutation(Delete, t, 0, 0)),
            ("truncated to 0", mutation(Truncate, t, 0, 0)),
            (
                "truncated inside the header",
                mutation(Truncate, t, 0x0100, 0),
            ),
            (
                "truncated in the middle",
                mutation(Truncate, t, FRACTION_MID, 0),
            ),
            (
                "truncated by its last byte",
                mutation(Truncate, t, FRACTION_LAST, 0),
            ),
            ("header zeroed", mutation(ZeroFill, t, 0, 31)),
            (
                "64 bytes zeroed in the middle",
                mutation(ZeroFill, t, FRACTION_MID, 63),
            ),
            ("last byte zeroed", mutation(ZeroFill, t, FRACTION_LAST, 0)),
            ("bit flip in the magic", mutation(FlipBits, t, 0, 0x01)),
            (
                "bit flip in the middle",
                mutation(FlipBits, t, FRACTION_MID, 0x10),
            ),
            (
                "bit flip in the last byte",
                mutation(FlipBits, t, FRACTION_LAST, 0x80),
            ),
            // Segment number n + 1: the newest moves up, others leave a gap.
            (
                "renamed one past the newest",
                mutation(Rename, t, 0, n as u8),
            ),
        ];
        for (what, m) in destroying {
            let inside_frames = matches!(m.kind, ZeroFill | FlipBits) && m.offset != 0;
            let expect = if checkpointed && inside_frames {
                Expect::RefusedOrWhole
            } else {
                Expect::Refused
            };
            case(format!("{seg} {what}"), m, expect);
        }
        if n > 1 {
            let next = ((s + 1) % n) as u8;
            case(
                format!("{seg} swapped with segment {}", next + 1),
                mutation(Swap, t, 0, next),
                Expect::Refused,
            );
        }
        case(
            format!("{seg} duplicated as segment {}", n + 1),
            mutation(Duplicate, t, 0, n as u8),
            Expect::RefusedOrWhole,
        );
        // Tails: torn tails of the newest segment are cut; after a sealed
        // segment they are damage.
        let tail = if newest {
            Expect::Whole
        } else {
            Expect::RefusedOrWhole
        };
        for (what, m) in [
            ("8 zero bytes appended", mutation(AppendZeros, t, 0, 7)),
            ("200 zero bytes appended", mutation(AppendZeros, t, 0, 199)),
            (
                "20 garbage bytes appended",
                mutation(AppendGarbage, t, 0, 19),
            ),
        ] {
            case(format!("{seg} {what}"), m, tail);
        }
    }
    for (i, file) in DIR_MUTATION_SPECIAL_FILES.iter().enumerate() {
        let t = 0x80 | i as u8;
        // The witness may make a damaged COMMIT a refusal; the checkpoint
        // and the lock never hold data.
        let expect = if *file == "COMMIT" {
            Expect::RefusedOrWhole
        } else {
            Expect::Whole
        };
        for (what, m) in [
            ("deleted", mutation(Delete, t, 0, 0)),
            (
                "truncated in the middle",
                mutation(Truncate, t, FRACTION_MID, 0),
            ),
            (
                "bit flip in the middle",
                mutation(FlipBits, t, FRACTION_MID, 0x04),
            ),
            ("zeroed", mutation(ZeroFill, t, 0, 255)),
            (
                "20 garbage bytes appended",
                mutation(AppendGarbage, t, 0, 19),
            ),
        ] {
            case(format!("{file} {what}"), m, expect);
        }
        // Renamed into the log as segment n + 1: a file open cannot show it
        // wrote. An empty one (LOCK) is a prefix of a header, so a writer
        // may repair it. Anything else is refused, or, when the witness
        // shows every acknowledged commit lies before it (what a power cut
        // during a roll leaves), set aside as `.unrecognised` with its
        // bytes kept and the log whole.
        let expect = Expect::RefusedOrWhole;
        case(
            format!("{file} renamed to segment {}", n + 1),
            mutation(Rename, t, 0, n as u8),
            expect,
        );
    }
    out
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(not a string)");
    text.lines().next().unwrap_or_default().to_string()
}

fn show(outcome: &DirOpenOutcome) -> String {
    match outcome {
        DirOpenOutcome::Refused(e) => {
            let e = e.split(" at offset").next().unwrap_or(e);
            let e = e.rsplit('/').next().unwrap_or(e);
            format!("refused ({e})")
        }
        DirOpenOutcome::Opened { latest } => format!("opened with {latest}"),
    }
}

#[track_caller]
fn sweep(variant: u8, label: &str) {
    let n = dir_template_segments(variant);
    let mut failures = Vec::new();
    let mut table = Vec::new();
    for case in cases(n, variant != 0) {
        let mut input = vec![variant];
        input.extend_from_slice(&case.mutation.encode());
        let checked = std::panic::catch_unwind(|| check_dir_mutations(&input))
            .unwrap_or_else(|panic| Err(format!("PANIC: {}", panic_message(&*panic))));
        let outcome = match checked {
            Err(what) => {
                failures.push(format!("{}: {what}", case.name));
                table.push(format!("  {:50} FAILED: {what}", case.name));
                continue;
            }
            Ok(outcome) => outcome,
        };
        let whole = |o: &DirOpenOutcome| {
            o == &DirOpenOutcome::Opened {
                latest: outcome.acknowledged,
            }
        };
        let refused = |o: &DirOpenOutcome| matches!(o, DirOpenOutcome::Refused(_));
        // A mutation of a file that is not there, or that writes the bytes
        // already there, changes nothing.
        let expect = if outcome.changed {
            case.expect
        } else {
            Expect::Whole
        };
        let ok = match expect {
            Expect::Whole => whole(&outcome.read_only) && whole(&outcome.writer),
            Expect::Refused => refused(&outcome.writer),
            Expect::RefusedOrWhole => [&outcome.read_only, &outcome.writer]
                .iter()
                .all(|o| refused(o) || whole(o)),
        };
        let line = format!(
            "  {:50} read-only {}; writer {}",
            case.name,
            show(&outcome.read_only),
            show(&outcome.writer)
        );
        if !ok {
            failures.push(format!("{} (want {expect:?}):{line}", case.name));
        }
        table.push(format!("{}{line}", if ok { "" } else { "WRONG" }));
    }
    println!("{label} ({n} segments):\n{}", table.join("\n"));
    assert!(
        failures.is_empty(),
        "{label}: {} of {} single-fault cases failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

#[test]
fn every_single_fault_on_every_file_without_a_checkpoint() {
    sweep(0, "no checkpoint");
}

#[test]
fn every_single_fault_on_every_file_with_a_checkpoint_halfway() {
    sweep(1, "checkpoint halfway");
}

#[test]
fn every_single_fault_on_every_file_with_a_checkpoint_at_the_end() {
    sweep(2, "checkpoint at the end");
}
