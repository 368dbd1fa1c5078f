//! Retention and open-time benchmarks: opening a database of 10M versions
//! (log replay; there is no index checkpoint yet), and purge + compaction
//! of a workload whose history is 90% purged (disk bytes before and after,
//! compaction throughput).
//!
//! Run with `cargo bench --bench retention`. `TIMECASK_BENCH_VERSIONS`
//! changes the 10M (e.g. to 1000000 for a quick run). The one-shot
//! measurements (build, purge, compaction) are printed to stderr; open
//! time is a criterion measurement.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use timecask::{Config, Db, Durability, TxId};

const N_KEYS: u64 = 100_000;
const PUTS_PER_TX: u64 = 1_000;
const VALUE_LEN: usize = 60;

fn n_versions() -> u64 {
    std::env::var("TIMECASK_BENCH_VERSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000)
}

fn config() -> Config {
    Config {
        durability: Durability::Buffered,
        // Measured explicitly: no checkpoint unless the bench writes one.
        checkpoint_on_close: false,
        ..Config::default()
    }
}

fn value(k: u64, version: u64) -> Vec<u8> {
    let mut v = format!("{{\"id\":{k},\"v\":{version},\"pad\":\"").into_bytes();
    v.resize(VALUE_LEN - 2, b'x');
    v.extend_from_slice(b"\"}");
    v
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum()
}

/// Writes `n` versions over `n_keys` keys, round-robin, `PUTS_PER_TX` per
/// transaction. Every put changes its key's value.
fn build(dir: &Path, n: u64, n_keys: u64) {
    let db = Db::open_with(dir, config()).expect("open");
    let start = Instant::now();
    let mut written = 0;
    while written < n {
        let mut tx = db.begin();
        for _ in 0..PUTS_PER_TX.min(n - written) {
            let k = written % n_keys;
            tx.put("user", k.to_be_bytes(), value(k, written / n_keys))
                .expect("put");
            written += 1;
        }
        tx.commit().expect("commit");
    }
    db.flush().expect("flush");
    eprintln!(
        "built {n} versions in {:.1} s ({:.0} versions/s), {:.1} MiB on disk",
        start.elapsed().as_secs_f64(),
        n as f64 / start.elapsed().as_secs_f64(),
        dir_bytes(dir) as f64 / (1 << 20) as f64
    );
}

fn bench_open(c: &mut Criterion) {
    let n = n_versions();
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), n, N_KEYS);
    let mut group = c.benchmark_group("open");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function(format!("replay_{n}_versions"), |b| {
        b.iter(|| {
            let db = Db::open_with(dir.path(), config()).expect("open");
            assert_eq!(db.stats().n_versions, n);
            assert!(!db.stats().opened_from_checkpoint);
        })
    });
    let report = Db::open_with(dir.path(), config())
        .expect("open")
        .checkpoint()
        .expect("checkpoint");
    eprintln!(
        "checkpoint of {n} versions: {:.1} MiB",
        report.bytes as f64 / (1 << 20) as f64
    );
    group.bench_function(format!("checkpoint_{n}_versions"), |b| {
        b.iter(|| {
            let db = Db::open_with(dir.path(), config()).expect("open");
            assert_eq!(db.stats().n_versions, n);
            assert!(db.stats().opened_from_checkpoint);
        })
    });
    group.finish();
}

/// One-shot: purge 90% of history, compact, report bytes and throughput.
fn bench_purge_and_compact(_c: &mut Criterion) {
    // 100 versions per key, so purging 90% of the txids drops 90% of them.
    let n = n_versions() / 10;
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), n, (n / 100).max(1));
    let db = Db::open_with(dir.path(), config()).expect("open");
    let before = dir_bytes(dir.path());
    // Keep the newest 10% of the history.
    let horizon = TxId(db.latest_txid().0 * 9 / 10);
    let start = Instant::now();
    db.purge_history(horizon).expect("purge");
    let purge_time = start.elapsed();
    let start = Instant::now();
    let report = db.compact().expect("compact");
    let compact_time = start.elapsed();
    let after = dir_bytes(dir.path());
    eprintln!(
        "purge before txid {horizon} of {}: {:.1} ms; versions {} -> {}",
        db.latest_txid(),
        purge_time.as_secs_f64() * 1e3,
        n,
        db.stats().n_versions
    );
    eprintln!(
        "compaction: {} segments rewritten, {} versions dropped, {:.1} MiB -> {:.1} MiB on disk ({:.1}%), \
         {:.2} s, {:.0} MB/s read",
        report.segments_rewritten,
        report.versions_dropped,
        before as f64 / (1 << 20) as f64,
        after as f64 / (1 << 20) as f64,
        100.0 * after as f64 / before as f64,
        compact_time.as_secs_f64(),
        report.bytes_before as f64 / 1e6 / compact_time.as_secs_f64()
    );
    db.verify().expect("verify after compaction");
}

criterion_group!(benches, bench_purge_and_compact, bench_open);
criterion_main!(benches);
