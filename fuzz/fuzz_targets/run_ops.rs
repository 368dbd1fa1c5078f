//! cargo +nightly fuzz run run_ops (from the repository root). The harness is
//! `timecask::fuzz_harness::run_ops`; its seed corpus is replayed by
//! `tests/fuzz_corpus.rs` under plain `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    timecask::fuzz_harness::run_ops(data);
});
