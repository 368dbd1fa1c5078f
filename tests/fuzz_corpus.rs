//! Replays the fuzz targets' seed corpora (`fuzz/corpus/<target>/`) through
//! the same harnesses, so `cargo test` on stable covers them.
//!
//! The published crate ships without `fuzz/` (cargo leaves out a folder
//! that is a package of its own), so there these tests have nothing to
//! replay and say so; in the repository the corpus must be there.

use std::path::Path;

use timecask::fuzz_harness;

#[track_caller]
fn replay(target: &str, harness: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    if !fuzz.exists() {
        eprintln!("{target}: no fuzz/ folder (a packaged crate): nothing to replay");
        return;
    }
    let dir = fuzz.join("corpus").join(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus directory exists")
        .map(|entry| entry.expect("entry").path())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "{target} has a seed corpus");
    // Every seed runs; the failing ones are named together.
    let failed: Vec<String> = paths
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("read corpus file");
            std::panic::catch_unwind(|| harness(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: {} of {} seeds failed: {failed:#?}",
        failed.len(),
        paths.len()
    );
}

#[test]
fn open_raw_segments_corpus() {
    replay("open_raw_segments", fuzz_harness::open_raw_segments);
}

#[test]
fn open_framed_payloads_corpus() {
    replay("open_framed_payloads", fuzz_harness::open_framed_payloads);
}

#[test]
fn run_ops_corpus() {
    replay("run_ops", fuzz_harness::run_ops);
}

#[test]
fn decode_values_corpus() {
    replay("decode_values", fuzz_harness::decode_values);
}

#[test]
fn open_dir_mutations_corpus() {
    replay("open_dir_mutations", fuzz_harness::open_dir_mutations);
}
