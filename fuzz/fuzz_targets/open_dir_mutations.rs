//! cargo +nightly fuzz run open_dir_mutations (from the repository root). The harness is
//! `timecask::fuzz_harness::open_dir_mutations`; its seed corpus is replayed by
//! `tests/fuzz_corpus.rs` under plain `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    timecask::fuzz_harness::open_dir_mutations(data);
});
