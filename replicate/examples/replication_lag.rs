//! Replication lag and restore throughput against SeaweedFS (BENCHMARKS.md,
//! "Replication (issue 14)"). Needs `weed` (TIMECASK_WEED or PATH):
//!
//! ```text
//! TIMECASK_WEED=/path/to/weed cargo run --release --example replication_lag
//! ```
//!
//! Lag: a writer commits (Immediate durability) every 10 ms; for each
//! commit, the time from `commit()` returning (durable) until a reader
//! polling the bucket's object manifest every 2 ms sees a restorable
//! range covering it. Restore: a database of about 64 MB (values of
//! 4 KiB, sealed into runs) restored at its latest txid.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timecask::{Config, Db, TxId};
use timecask_replicate::{Replicator, ReplicatorConfig, restorable, restore};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn lag(weed: &common::Weed, tail_interval: Duration, n_commits: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let db = Db::open_with(
        &src,
        Config {
            segment_roll_bytes: 1 << 20,
            ..Config::default()
        },
    )
    .expect("open");
    let prefix = format!("lag-{}", tail_interval.as_millis());
    let config = ReplicatorConfig {
        tail_interval,
        ..ReplicatorConfig::default()
    };
    let running = Replicator::open(&src, weed.remote(&prefix), config)
        .expect("replicator")
        .spawn();
    let durable: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let seen: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
        let remote = weed.remote(&prefix);
        std::thread::spawn(move || {
            let mut covered = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(ranges) = restorable(&remote) {
                    let top = ranges.last().map_or(0, |r| r.1);
                    let now = Instant::now();
                    let mut seen = seen.lock().expect("lock");
                    for t in covered + 1..=top {
                        seen.insert(t, now);
                    }
                    covered = covered.max(top);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    for i in 0..n_commits {
        let t = common::commit_step(&db, i);
        durable.lock().expect("lock").insert(t.0, Instant::now());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(running.wait_shipped(n_commits, Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    watcher.join().expect("watcher");
    running.stop().expect("stop");
    let (durable, seen) = (durable.lock().expect("lock"), seen.lock().expect("lock"));
    let mut lags: Vec<Duration> = durable
        .iter()
        .filter_map(|(t, at)| seen.get(t).map(|s| s.saturating_duration_since(*at)))
        .collect();
    lags.sort_unstable();
    println!(
        "tail_interval {:>5} ms: {} commits, lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        tail_interval.as_millis(),
        lags.len(),
        percentile(&lags, 0.5).as_secs_f64() * 1e3,
        percentile(&lags, 0.99).as_secs_f64() * 1e3,
        lags.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn restore_throughput(weed: &common::Weed) {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let config = Config {
        seal_log_bytes: Some(16 << 20),
        durability: timecask::Durability::Buffered,
        ..Config::default()
    };
    let db = Db::open_with(&src, config).expect("open");
    let mut value: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut last = TxId(0);
    for i in 0..16_000u32 {
        value[..4].copy_from_slice(&i.to_le_bytes());
        let mut tx = db.begin();
        tx.put("t", format!("k{:06}", i % 4000).as_bytes(), &value)
            .expect("put");
        last = tx.commit().expect("commit").expect("change");
    }
    db.flush().expect("flush");
    let mut replicator =
        Replicator::open(&src, weed.remote("restore"), ReplicatorConfig::default())
            .expect("replicator");
    let started = Instant::now();
    let shipped = replicator.sync().expect("sync");
    let ship_secs = started.elapsed().as_secs_f64();
    replicator.release().expect("release");
    let out = dir.path().join("restored");
    let started = Instant::now();
    let report = restore(&weed.remote("restore"), last, &out).expect("restore");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "initial ship: {} objects, {:.1} MB in {:.2} s ({:.0} MB/s)",
        shipped.objects,
        shipped.bytes as f64 / 1e6,
        ship_secs,
        shipped.bytes as f64 / 1e6 / ship_secs
    );
    println!(
        "restore at txid {}: {} objects, {:.1} MB in {:.2} s ({:.0} MB/s, checksums and the read-only open included)",
        report.txid,
        report.objects,
        report.bytes as f64 / 1e6,
        secs,
        report.bytes as f64 / 1e6 / secs
    );
}

fn main() {
    let Some(weed) = common::Weed::start() else {
        eprintln!("no weed: set TIMECASK_WEED");
        std::process::exit(1);
    };
    for ms in [1000, 100] {
        lag(&weed, Duration::from_millis(ms), 500);
    }
    restore_throughput(&weed);
}
