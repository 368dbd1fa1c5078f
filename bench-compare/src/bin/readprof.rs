//! Diagnostic only, for a profiler (`perf record`): random as-of reads or
//! histories on a database the scale bench kept (`scale --keep --dir D`;
//! its `timecask` directory, table `user`, 8-byte big-endian keys).
//!
//! `readprof DIR KEYS LAST_TXID N [asof|history|cold|cold-history]`: warm
//! modes read for N seconds on one handle (warm the files first, e.g. with
//! `cat DIR/* > /dev/null`); cold modes do N reads, each on a fresh handle
//! after evicting the files from the page cache. Prints the median of five
//! opens and the p50/p90 of the reads. Not part of any reported table.
use std::time::{Duration, Instant};
use timecask::{Db, HistoryQuery, TxId};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let dir = &a[1];
    let keys: u64 = a[2].parse().unwrap();
    let last: u64 = a[3].parse().unwrap();
    let secs: u64 = a[4].parse().unwrap();
    let history = a.get(5).is_some_and(|s| s.contains("history"));
    let cold = a.get(5).is_some_and(|s| s.starts_with("cold"));
    // N is seconds when warm, reads when cold.
    let mut opens = Vec::new();
    for _ in 0..5 {
        let s = Instant::now();
        drop(Db::open(dir).unwrap());
        opens.push(s.elapsed().as_micros());
    }
    opens.sort();
    eprintln!("open p50 {} µs", opens[2]);
    let mut db = Db::open(dir).unwrap();
    let files = timecask_bench_compare::cache::files_under(std::path::Path::new(dir));
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let start = Instant::now();
    let mut n = 0u64;
    let mut lat = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        let k = next() % keys;
        let key = k.to_be_bytes();
        if cold {
            drop(db);
            db = Db::open(dir).unwrap();
            timecask_bench_compare::cache::evict(&files);
            if n >= secs {
                break;
            }
        }
        let s = Instant::now();
        if history {
            let h = db
                .snapshot()
                .history("user", &key[..], HistoryQuery::all())
                .unwrap();
            std::hint::black_box(h);
        } else {
            let t = 1 + next() % last;
            let v = db.as_of(TxId(t)).unwrap().get("user", &key[..]).unwrap();
            std::hint::black_box(v);
        }
        lat.push(s.elapsed().as_nanos() as u64);
        n += 1;
    }
    lat.sort();
    eprintln!(
        "{n} ops, p50 {} ns, p90 {} ns",
        lat[lat.len() / 2],
        lat[lat.len() * 9 / 10]
    );
}
