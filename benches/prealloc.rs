//! Durable single-committer commits with and without preallocated segment
//! space (`Config::segment_preallocate_bytes`), paired: the two databases
//! take turns commit by commit (the order swapped every round), so a
//! machine shared with other builds slows both alike and the ratio holds
//! where criterion's back-to-back runs of seconds each do not.
//!
//! ```sh
//! cargo bench --bench prealloc            # 2,000 commits each
//! cargo bench --bench prealloc -- 5000    # more
//! ```
//!
//! Databases are built under `TIMECASK_BENCH_DIR` (default: the system
//! temporary directory), which should be on the disk being measured.

use std::time::Instant;

use timecask::{Config, Db, Durability};

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let base = std::env::var_os("TIMECASK_BENCH_DIR")
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let setups = [
        (
            "preallocated (default)",
            Config::default().segment_preallocate_bytes,
        ),
        ("appending (0)", 0),
    ];
    let dirs: Vec<_> = setups
        .iter()
        .map(|_| tempfile::tempdir_in(&base).expect("tempdir"))
        .collect();
    let dbs: Vec<Db> = setups
        .iter()
        .zip(&dirs)
        .map(|((_, preallocate), dir)| {
            let config = Config {
                durability: Durability::Immediate,
                segment_preallocate_bytes: *preallocate,
                ..Config::default()
            };
            Db::open_with(dir.path(), config).expect("open")
        })
        .collect();
    let mut micros = vec![Vec::with_capacity(n); dbs.len()];
    for i in 0..n {
        for k in 0..dbs.len() {
            let j = (i + k) % dbs.len();
            let started = Instant::now();
            let mut tx = dbs[j].begin();
            tx.put("t", ((i * 7919) % 1000).to_be_bytes(), vec![i as u8; 100])
                .expect("put");
            tx.commit().expect("commit");
            micros[j].push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    println!("{n} durable single-put commits each, taking turns");
    for ((name, _), mut v) in setups.iter().zip(micros) {
        v.sort_by(f64::total_cmp);
        let at = |q: usize| v[(v.len() * q / 100).min(v.len() - 1)];
        println!(
            "{name:24} p50 {:6.0} µs  p90 {:6.0} µs  p99 {:6.0} µs",
            at(50),
            at(90),
            at(99)
        );
    }
}
