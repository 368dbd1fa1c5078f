//! Measurements of runs (no timing asserts). `runs` is crate-private, so
//! this is a unit test rather than a criterion bench; by default it runs a
//! tiny workload to keep the code path tested. For the real numbers:
//!
//! ```text
//! TIMECASK_RUNS_MEASURE=1 cargo test --release --lib runs::measure -- --nocapture
//! ```
//!
//! Workload: 10,000 keys × 50 versions (500,000 versions), 60-byte
//! JSON-like values whose fields change a little between versions, 100
//! versions per transaction with small metadata, fixed seed; built once
//! with zstd (level 3) and once without, 32 KiB blocks, on the real file
//! system (`TIMECASK_RUNS_BLOCK_KIB` changes the block target). Reads hit
//! the OS page cache: "cold" means our block cache is empty, so every read is a `pread`, a CRC check and a decompression).
//!
//! Measured 2026-12-02 on the shared 2-core machine (other builds running),
//! release build, default 32 KiB blocks:
//!
//! | | zstd 3 | none |
//! |---|---:|---:|
//! | file bytes / version | 15.2 | 96.1 |
//! | build, versions/s | 1.7 M | 2.3–3.2 M |
//! | summary bytes / version | 0.19 | 0.19 |
//! | `get_at` warm p50 / p99 | 2.5 / 5 µs | 2.4 / 4.5 µs |
//! | `get_at` cold p50 / p99 | 33–37 / 73 µs | 5.6 / 9 µs |
//! | 50-version `history` warm p50 | 13.6 µs | 13.3 µs |
//! | 50-version `history` cold p50 | 47–50 µs | 16–17 µs |
//!
//! 16 KiB blocks: 15.4 B/version, cold `get_at` 29 µs, summary 0.36
//! B/version; 8 KiB: 16.6 B/version, cold 20 µs, summary 0.69 B/version.
//! Before restart points (one linear decode per block) warm `get_at` was
//! 21 µs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::testutil::{meta_of, meta_ref, time_of, tx_records};
use super::{
    BlockCache, Compression, Direction, Run, RunConfig, RunRange, RunWriter, TxEntry, VersionEntry,
};
use crate::storage::FileStorage;
use crate::types::{Op, TableId, TxId};

const VALUE_LEN: usize = 60;
const VERSIONS_PER_TX: usize = 100;

/// SplitMix64: a fixed-seed generator good enough for workloads.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn key(k: u64) -> Vec<u8> {
    format!("user:{k:06}").into_bytes()
}

/// A small record whose fields drift between versions.
fn value(k: u64, version: u64, rng: &mut Rng) -> Vec<u8> {
    let mut v = format!(
        "{{\"id\":{k},\"age\":{},\"score\":{},\"v\":{version},\"tag\":\"",
        20 + version / 10,
        k * 7 + version * 3 + rng.below(5),
    )
    .into_bytes();
    v.resize(VALUE_LEN - 2, b'a' + (k % 26) as u8);
    v.extend_from_slice(b"\"}");
    v
}

fn workload(n_keys: u64, n_rounds: u64) -> (Vec<VersionEntry>, Vec<TxEntry>) {
    let mut rng = Rng(42);
    let mut versions = Vec::with_capacity((n_keys * n_rounds) as usize);
    let mut txid = 0;
    let mut metas = Vec::new();
    for round in 0..n_rounds {
        let mut order: Vec<u64> = (0..n_keys).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for (i, &k) in order.iter().enumerate() {
            if i % VERSIONS_PER_TX == 0 {
                txid += 1;
                metas.push(meta_of(&format!("u{}", txid % 10)));
            }
            versions.push(VersionEntry {
                table: TableId(0),
                key: key(k),
                txid: TxId(txid),
                op: if round == 0 { Op::Insert } else { Op::Update },
                commit_time: time_of(txid),
                meta: meta_ref(&metas[(txid - 1) as usize]),
                value: Some(value(k, round, &mut rng)),
            });
        }
    }
    versions.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let txs = tx_records(&versions, 1, txid, |t| metas[(t - 1) as usize].clone());
    (versions, txs)
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    format!("p50 {:.2} µs, p99 {:.2} µs", at(0.5), at(0.99))
}

fn time_reads(run: &Run, n_keys: u64, last: u64, n: usize, history: bool) -> String {
    let mut rng = Rng(7);
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let k = key(rng.below(n_keys));
        let t = TxId(1 + rng.below(last));
        let start = Instant::now();
        if history {
            let h = run
                .history(
                    TableId(0),
                    &k,
                    TxId(0)..=TxId(u64::MAX),
                    usize::MAX,
                    Direction::Forward,
                )
                .expect("history");
            assert!(!h.is_empty());
        } else {
            let _ = run.get_at(TableId(0), &k, t).expect("get_at");
        }
        samples.push(start.elapsed());
    }
    percentiles(samples)
}

fn measure(dir: &Path, n_keys: u64, n_rounds: u64, compression: Compression) {
    let (versions, txs) = workload(n_keys, n_rounds);
    let path = dir.join(format!("{compression:?}.tcrun").replace([' ', '{', '}', ':'], ""));
    let block_kib = std::env::var("TIMECASK_RUNS_BLOCK_KIB")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(32);
    let config = RunConfig {
        compression,
        block_target_bytes: block_kib * 1024,
        ..RunConfig::default()
    };
    let range = RunRange {
        first_txid: TxId(1),
        last_txid: txs.last().expect("txs").txid,
        first_commit_time: txs[0].commit_time,
    };
    let start = Instant::now();
    let mut w = RunWriter::create(&FileStorage, &path, range, config).expect("create");
    for v in &versions {
        w.add_version(v).expect("add");
    }
    for tx in &txs {
        w.add_tx(tx).expect("add tx");
    }
    let summary = w.finish().expect("finish");
    let build = start.elapsed();
    let n = versions.len() as f64;
    let warm_cache = Arc::new(BlockCache::new(1 << 30));
    let run = Run::open(&FileStorage, &path, 1, warm_cache).expect("open");
    let cold = Run::open(&FileStorage, &path, 2, Arc::new(BlockCache::new(0))).expect("open");
    let start = Instant::now();
    run.verify().expect("verify");
    let verify = start.elapsed();
    let last = range.last_txid.0;
    // Warm the cache with one pass over every key.
    for k in 0..n_keys {
        let _ = run.get_at(TableId(0), &key(k), TxId(last)).expect("get");
    }
    let reads = 20_000.min(n_keys as usize * 10);
    eprintln!(
        "runs/{compression:?}, {block_kib} KiB blocks: {} versions, {} keys, {} txs; {} bytes = {:.1} B/version \
         ({} version blocks, {} tx blocks); build {:.0} ms = {:.0} versions/s; verify {:.0} ms; \
         summary {} bytes = {:.3} B/version\n  get_at warm {}\n  get_at cold {}\n  \
         history({n_rounds}) warm {}\n  history({n_rounds}) cold {}",
        summary.n_versions,
        summary.n_keys,
        summary.n_txs,
        summary.file_bytes,
        summary.file_bytes as f64 / n,
        summary.n_version_blocks,
        summary.n_tx_blocks,
        build.as_secs_f64() * 1e3,
        n / build.as_secs_f64(),
        verify.as_secs_f64() * 1e3,
        run.summary_bytes(),
        run.summary_bytes() as f64 / n,
        time_reads(&run, n_keys, last, reads, false),
        time_reads(&cold, n_keys, last, reads, false),
        time_reads(&run, n_keys, last, reads / 4, true),
        time_reads(&cold, n_keys, last, reads / 4, true),
    );
}

#[test]
fn measure_bytes_per_version_build_and_read_latency() {
    let full = std::env::var_os("TIMECASK_RUNS_MEASURE").is_some();
    let (n_keys, n_rounds) = if full { (10_000, 50) } else { (200, 5) };
    let dir = tempfile::tempdir().expect("tempdir");
    for compression in [Compression::Zstd { level: 3 }, Compression::None] {
        measure(dir.path(), n_keys, n_rounds, compression);
    }
}
