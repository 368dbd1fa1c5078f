//! cargo +nightly fuzz run decode_values (from the repository root). The harness is
//! `timecask::fuzz_harness::decode_values`; its seed corpus is replayed by
//! `tests/fuzz_corpus.rs` under plain `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    timecask::fuzz_harness::decode_values(data);
});
