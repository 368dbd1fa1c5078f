//! Criterion benches for issue 8: each workload item, per engine, on the
//! same seeded workload as the one-command run (`src/main.rs`).
//!
//! Groups (one function per engine: `timecask`, `sqlite`, `sled`, `redb`,
//! `lmdb`, `fjall`):
//! `as_of_point`, `latest_point`, `history_20`, `history_hot`,
//! `scan_as_of`, `open_warm`, `open_cold`, `open_checkpoint_warm`
//! (timecask only), `commit_buffered`, `commit_off` (SQLite only),
//! `commit_durable`. Commits run last, on the finished database.
//!
//! ```text
//! cargo bench --manifest-path bench-compare/Cargo.toml                      # everything
//! cargo bench --manifest-path bench-compare/Cargo.toml -- as_of_point       # one item
//! cargo bench --manifest-path bench-compare/Cargo.toml -- '/timecask$'      # one engine
//! BENCH_COMPARE_QUICK=1 cargo bench --manifest-path bench-compare/Cargo.toml  # a tenth of the data
//! ```
//!
//! An engine's database is built (the issue's sizes unless
//! `BENCH_COMPARE_QUICK` is set) the first time one of its benches passes
//! the filter, so filtering to one engine builds only that one. Reads run
//! with the page cache warm; `open_cold` evicts the database's files from
//! the page cache before each open.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use timecask_bench_compare::{
    Commit, Engine, Fjall, Lmdb, Params, Redb, Sled, Sqlite, Timecask, Updater, Workload, cache,
};

struct Fixture<E> {
    _root: tempfile::TempDir,
    dir: PathBuf,
    e: Option<E>,
}

impl<E: Engine> Fixture<E> {
    fn build(w: &Workload) -> Fixture<E> {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("db");
        std::fs::create_dir_all(&dir).expect("create dir");
        let mut e = E::create(&dir);
        let started = std::time::Instant::now();
        w.build(&mut e, true);
        w.check(&e);
        eprintln!(
            "{}: built and checked in {:.1?}",
            E::NAME,
            started.elapsed()
        );
        Fixture {
            _root: root,
            dir,
            e: Some(e),
        }
    }

    fn e(&mut self) -> &mut E {
        if self.e.is_none() {
            self.e = Some(E::open(&self.dir));
        }
        self.e.as_mut().expect("open")
    }

    fn close(&mut self) {
        if let Some(mut e) = self.e.take() {
            e.sync();
        }
    }
}

fn engine<E: Engine>(c: &mut Criterion, w: &Workload, id: &str) {
    // Built by the first bench that passes the filter.
    let mut fx: Option<Fixture<E>> = None;
    macro_rules! fx {
        () => {
            fx.get_or_insert_with(|| Fixture::build(w))
        };
    }

    let mut g = c.benchmark_group("as_of_point");
    g.throughput(Throughput::Elements(1));
    g.bench_function(id, |b| {
        let e = fx!().e();
        let mut i = 0;
        b.iter(|| {
            let (k, t) = w.as_of_queries[i % w.as_of_queries.len()];
            i += 1;
            black_box(e.as_of(k, t))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("latest_point");
    g.throughput(Throughput::Elements(1));
    g.bench_function(id, |b| {
        let e = fx!().e();
        let mut i = 0;
        b.iter(|| {
            let k = w.latest_queries[i % w.latest_queries.len()];
            i += 1;
            black_box(e.latest(k))
        })
    });
    g.finish();

    let mean_len = w
        .history_ids
        .iter()
        .map(|k| w.history_len(*k))
        .sum::<usize>()
        / w.history_ids.len();
    let mut g = c.benchmark_group("history_20");
    g.throughput(Throughput::Elements(mean_len as u64));
    g.bench_function(id, |b| {
        let e = fx!().e();
        let mut i = 0;
        b.iter(|| {
            let k = w.history_ids[i % w.history_ids.len()];
            i += 1;
            black_box(E::history_len(&e.history(k)))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("history_hot");
    g.sample_size(10);
    g.throughput(Throughput::Elements(w.p.h + 1));
    g.bench_function(id, |b| {
        let e = fx!().e();
        b.iter(|| black_box(E::history_len(&e.history(w.p.hot_id()))))
    });
    g.finish();

    let mut g = c.benchmark_group("scan_as_of");
    g.sample_size(10);
    g.throughput(Throughput::Elements(w.p.k + 1));
    g.bench_function(id, |b| {
        let e = fx!().e();
        let mut i = 0;
        b.iter(|| {
            let t = w.scan_txids[i % w.scan_txids.len()];
            i += 1;
            black_box(e.scan_as_of(t).len())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("open_warm");
    g.sample_size(10);
    g.bench_function(id, |b| {
        let f = fx!();
        f.close();
        b.iter_batched(
            || (),
            |()| {
                let e = E::open(&f.dir);
                black_box(e.latest(1));
                e
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("open_cold");
    g.sample_size(10);
    g.bench_function(id, |b| {
        let f = fx!();
        f.close();
        let files = E::files(&f.dir);
        b.iter_batched(
            || cache::evict(&files),
            |()| {
                let e = E::open(&f.dir);
                black_box(e.latest(1));
                e
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    // A checkpoint, where the engine has one (timecask), for the next
    // group; commits later replay only what follows it.
    let has_checkpoint = fx.as_mut().is_some_and(|f| {
        let has = f.e().checkpoint();
        f.close();
        has
    });
    {
        if has_checkpoint {
            let mut g = c.benchmark_group("open_checkpoint_warm");
            g.sample_size(10);
            g.bench_function(id, |b| {
                let f = fx!();
                f.close();
                b.iter_batched(
                    || (),
                    |()| {
                        let e = E::open(&f.dir);
                        assert!(e.opened_from_checkpoint());
                        black_box(e.latest(1));
                        e
                    },
                    BatchSize::PerIteration,
                )
            });
            g.finish();
        }
    }

    let mut updater = Updater::new(w, 0xc0_33_17);
    let mut commits = vec![("commit_buffered", Commit::Buffered)];
    if E::HAS_OFF {
        commits.push(("commit_off", Commit::Off));
    }
    commits.push(("commit_durable", Commit::Durable));
    for (group, commit) in commits {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(1));
        if commit == Commit::Durable {
            g.sample_size(10);
        }
        g.bench_function(id, |b| {
            let e = fx!().e();
            b.iter(|| {
                let (txid, k, row) = updater.next_update();
                e.update(txid, k, &row, commit);
            })
        });
        g.finish();
    }
}

fn main() {
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let w = Workload::new(Params::from_env());
    engine::<Timecask>(&mut c, &w, "timecask");
    engine::<Sqlite>(&mut c, &w, "sqlite");
    engine::<Sled>(&mut c, &w, "sled");
    engine::<Redb>(&mut c, &w, "redb");
    engine::<Lmdb>(&mut c, &w, "lmdb");
    engine::<Fjall>(&mut c, &w, "fjall");
    c.final_summary();
}
