//! Concurrency benchmarks: group commit and reads under a write load.
//!
//! - `group_commit/immediate/{1,2,4,8}`: N threads each commit single-put
//!   transactions (`Durability::Immediate`, 60-byte values) to their own
//!   keys, so nothing conflicts. Throughput is total commits/s across all
//!   threads; concurrent Immediate commits share one fsync, so it should
//!   grow with N.
//! - `reads_no_writer/{1,2,3,4}`: R threads do random latest-snapshot point
//!   reads over a 10,000-key table; throughput is total reads/s.
//! - `reads_under_write_load/{1,2,3,4}_readers`: the same reads while a
//!   background thread commits Buffered single puts over the same keys
//!   without pause. The writer's commits/s during the timed sections is
//!   printed to stderr after each of these.
//! - `views/{1,2}`: T threads each take and drop a latest snapshot
//!   (`db.snapshot()`, no read): the cost of pinning and releasing a view;
//!   time per operation is wall time / operations of all threads.
//! - `reads_no_writer_long_chains/{1,2,3,4}`: the baseline again after the
//!   writer has run, when each key has a few hundred versions, to separate
//!   the cost of longer version chains from that of the concurrent writer.
//!
//! Each benchmark keeps a pool of worker threads that wait on a barrier;
//! one criterion batch of `iters` operations is split evenly between them
//! and timed by wall clock from releasing the workers to the last one
//! finishing. After each benchmark the CPU time the whole process used
//! during the timed batches is printed to stderr as "CPUs busy": below the
//! number of runnable threads (capped by the cores) means they did not all
//! get a core, e.g. because something else was running on the machine.
//!
//! Run with `cargo bench --bench concurrency`. Everything is seeded, so two
//! runs do the same work (up to thread interleaving).

use std::any::Any;
use std::cell::Cell;
use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use timecask::{Config, Db, Durability};

// ---------------------------------------------------------------------------
// Workload parameters.

const TABLE: &str = "user";
const N_KEYS: u64 = 10_000;
const VALUE_LEN: usize = 60;
/// Keys owned by each committer in `group_commit`; committer `t` writes
/// keys `t * KEYS_PER_COMMITTER ..` only, so commits never conflict.
const KEYS_PER_COMMITTER: u64 = 1_000;

/// splitmix64: a tiny seeded PRNG.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn key(k: u64) -> [u8; 8] {
    k.to_be_bytes()
}

/// A 60-byte value unique to `(k, version)`, so every put really changes
/// the value and records a version.
fn value(k: u64, version: u64) -> Vec<u8> {
    let mut v = format!("{{\"id\":{k},\"v\":{version},\"name\":\"user-{k:08}\",\"pad\":\"");
    while v.len() < VALUE_LEN - 2 {
        v.push('x');
    }
    v.push_str("\"}");
    v.truncate(VALUE_LEN);
    v.into_bytes()
}

fn open(dir: &tempfile::TempDir, durability: Durability) -> Db {
    let config = Config {
        durability,
        ..Default::default()
    };
    Db::open_with(dir.path(), config).expect("open")
}

/// Writes version 0 of every key in `keys` in one Buffered transaction and
/// fsyncs it, so the measured puts are updates.
fn preload(db: &Db, keys: std::ops::Range<u64>) {
    let mut tx = db.begin();
    for k in keys {
        tx.put(TABLE, key(k), value(k, 0)).expect("put");
    }
    tx.set_durability(Durability::Buffered);
    tx.commit()
        .expect("commit")
        .expect("a transaction that writes keys");
    db.flush().expect("flush");
}

// ---------------------------------------------------------------------------
// A pool of worker threads released together by a barrier.

/// Passed as the job size to make the workers exit.
const STOP: u64 = u64::MAX;

struct Pool {
    start: Arc<Barrier>,
    done: Arc<Barrier>,
    iters: Arc<AtomicU64>,
    /// The first panic of a worker, re-raised on the benchmark thread (the
    /// worker still reaches the `done` barrier, so nothing hangs).
    panic: Arc<Mutex<Option<Box<dyn Any + Send>>>>,
    handles: Vec<JoinHandle<()>>,
    /// Wall time of every batch so far, and CPU time of the whole process
    /// (every thread) meanwhile, if `/proc` tells.
    wall: Cell<Duration>,
    cpu: Cell<Option<Duration>>,
}

impl Pool {
    /// One thread per element of `workers`; each is called with the number
    /// of operations it must do in the current batch.
    fn new<W: FnMut(u64) + Send + 'static>(workers: Vec<W>) -> Pool {
        let n = workers.len();
        let start = Arc::new(Barrier::new(n + 1));
        let done = Arc::new(Barrier::new(n + 1));
        let iters = Arc::new(AtomicU64::new(0));
        let panic = Arc::new(Mutex::new(None));
        let handles = workers
            .into_iter()
            .enumerate()
            .map(|(i, mut work)| {
                let (start, done) = (Arc::clone(&start), Arc::clone(&done));
                let (iters, panic) = (Arc::clone(&iters), Arc::clone(&panic));
                std::thread::spawn(move || {
                    loop {
                        start.wait();
                        let total = iters.load(Ordering::Acquire);
                        if total == STOP {
                            return;
                        }
                        let share = total / n as u64 + u64::from((i as u64) < total % n as u64);
                        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| work(share))) {
                            let mut first = panic.lock().unwrap_or_else(|e| e.into_inner());
                            first.get_or_insert(payload);
                        }
                        done.wait();
                    }
                })
            })
            .collect();
        Pool {
            start,
            done,
            iters,
            panic,
            handles,
            wall: Cell::new(Duration::ZERO),
            cpu: Cell::new(Some(Duration::ZERO)),
        }
    }

    /// Runs one batch of `iters` operations split over the workers; returns
    /// the wall time from releasing them to the last one finishing.
    fn run(&self, iters: u64) -> Duration {
        assert!(iters < STOP);
        self.iters.store(iters, Ordering::Release);
        let cpu_before = process_cpu();
        let started = Instant::now();
        self.start.wait();
        self.done.wait();
        let elapsed = started.elapsed();
        let cpu_after = process_cpu();
        self.wall.set(self.wall.get() + elapsed);
        let cpu = match (self.cpu.get(), cpu_before, cpu_after) {
            (Some(sum), Some(before), Some(after)) => after.checked_sub(before).map(|d| sum + d),
            _ => None,
        };
        self.cpu.set(cpu);
        let payload = self.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(payload) = payload {
            resume_unwind(payload);
        }
        elapsed
    }
}

impl Pool {
    /// Prints how many CPUs the process kept busy while batches ran: on a
    /// shared machine, fewer than the worker threads could use means they
    /// did not all get a core.
    fn report_cpu(&self, name: &str) {
        let wall = self.wall.get();
        if let (Some(cpu), false) = (self.cpu.get(), wall.is_zero()) {
            eprintln!(
                "{name}: {:.2} CPUs busy (whole process) over {wall:.2?} of timed batches",
                cpu.as_secs_f64() / wall.as_secs_f64()
            );
        }
    }
}

/// CPU time of every live thread of this process, from
/// `/proc/self/task/*/schedstat` (nanoseconds on a CPU); `None` where that
/// is unavailable.
fn process_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let task = task.ok()?;
        // A thread may exit between listing and reading; skip it.
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.iters.store(STOP, Ordering::Release);
        self.start.wait();
        for handle in self.handles.drain(..) {
            // A worker never panics outside `catch_unwind`.
            let _ = handle.join();
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Group commit.

fn bench_group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("group_commit");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for n in [1u64, 2, 4, 8] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir, Durability::Immediate);
        preload(&db, 0..n * KEYS_PER_COMMITTER);
        let workers: Vec<_> = (0..n)
            .map(|t| {
                let db = db.clone();
                let mut rng = Rng::new(0xc0ff_ee00 + t);
                let mut version = 0u64;
                move |count: u64| {
                    for _ in 0..count {
                        version += 1;
                        let k = t * KEYS_PER_COMMITTER + rng.below(KEYS_PER_COMMITTER);
                        let mut tx = db.begin();
                        tx.put(TABLE, key(k), value(k, version)).expect("put");
                        let result = tx.commit();
                        assert!(
                            matches!(result, Ok(Some(_))),
                            "an Immediate commit of a changed value returns Ok(Some(txid)), got {result:?}"
                        );
                        black_box(result.ok());
                    }
                }
            })
            .collect();
        let pool = Pool::new(workers);
        let before = db.latest_txid();
        group.bench_function(BenchmarkId::new("immediate", n), |b| {
            b.iter_custom(|iters| pool.run(iters))
        });
        pool.report_cpu(&format!("group_commit/immediate/{n}"));
        drop(pool);
        let commits = db.latest_txid().0 - before.0;
        if commits > 0 {
            eprintln!("group_commit/immediate/{n}: {commits} commits in all, warm-up included");
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// 2. Point reads, alone and under a write load.

/// A thread committing Buffered single puts until dropped.
struct Writer {
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(db: &Db, seed: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let handle = {
            let (db, stop, commits) = (db.clone(), Arc::clone(&stop), Arc::clone(&commits));
            std::thread::spawn(move || {
                let mut rng = Rng::new(seed);
                // Above every version `preload` and earlier writers used.
                let mut version = seed;
                while !stop.load(Ordering::Relaxed) {
                    version += 1;
                    let k = rng.below(N_KEYS);
                    let mut tx = db.begin();
                    tx.set_durability(Durability::Buffered);
                    tx.put(TABLE, key(k), value(k, version)).expect("put");
                    let result = tx.commit();
                    assert!(
                        matches!(result, Ok(Some(_))),
                        "a Buffered commit of a changed value returns Ok(Some(txid)), got {result:?}"
                    );
                    commits.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        Writer {
            stop,
            commits,
            handle: Some(handle),
        }
    }

    /// Commits so far; re-raises the writer's panic if it died.
    fn commits(&mut self) -> u64 {
        if self.handle.as_ref().is_some_and(JoinHandle::is_finished)
            && let Some(Err(payload)) = self.handle.take().map(JoinHandle::join)
        {
            resume_unwind(payload);
        }
        self.commits.load(Ordering::Relaxed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take()
            && let Err(payload) = handle.join()
            && !std::thread::panicking()
        {
            resume_unwind(payload);
        }
    }
}

fn readers(db: &Db, r: u64, seed: u64) -> Pool {
    let workers: Vec<_> = (0..r)
        .map(|i| {
            let db = db.clone();
            let mut rng = Rng::new(seed + i);
            move |count: u64| {
                for _ in 0..count {
                    let k = rng.below(N_KEYS);
                    let got = db.snapshot().get(TABLE, key(k)).expect("get");
                    assert!(
                        got.is_some(),
                        "every key was preloaded and is never deleted"
                    );
                    black_box(got);
                }
            }
        })
        .collect();
    Pool::new(workers)
}

fn view_takers(db: &Db, t: u64) -> Pool {
    let workers: Vec<_> = (0..t)
        .map(|_| {
            let db = db.clone();
            move |count: u64| {
                for _ in 0..count {
                    black_box(db.snapshot());
                }
            }
        })
        .collect();
    Pool::new(workers)
}

fn bench_views(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir, Durability::Buffered);
    preload(&db, 0..N_KEYS);
    let mut group = c.benchmark_group("views");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for t in 1u64..=2 {
        let pool = view_takers(&db, t);
        group.bench_function(BenchmarkId::from_parameter(t), |b| {
            b.iter_custom(|iters| pool.run(iters))
        });
        pool.report_cpu(&format!("views/{t}"));
    }
    group.finish();
}

fn bench_reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir, Durability::Buffered);
    preload(&db, 0..N_KEYS);

    // Baseline first, so it reads the freshly preloaded table.
    let mut group = c.benchmark_group("reads_no_writer");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for r in 1u64..=4 {
        let pool = readers(&db, r, 0xa5a5_0000 + 16 * r);
        group.bench_function(BenchmarkId::from_parameter(r), |b| {
            b.iter_custom(|iters| pool.run(iters))
        });
        pool.report_cpu(&format!("reads_no_writer/{r}"));
    }
    group.finish();

    let mut group = c.benchmark_group("reads_under_write_load");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for r in 1u64..=4 {
        let pool = readers(&db, r, 0xa5a5_0000 + 16 * r);
        let mut writer = Writer::start(&db, r << 40);
        // Commits and wall time of the writer inside the timed sections.
        let mut commits = 0u64;
        let mut timed = Duration::ZERO;
        group.bench_function(BenchmarkId::from_parameter(format!("{r}_readers")), |b| {
            b.iter_custom(|iters| {
                let before = writer.commits();
                let elapsed = pool.run(iters);
                commits += writer.commits() - before;
                timed += elapsed;
                elapsed
            })
        });
        let total = writer.commits();
        drop(writer);
        pool.report_cpu(&format!("reads_under_write_load/{r}_readers"));
        drop(pool);
        if timed > Duration::ZERO {
            eprintln!(
                "reads_under_write_load/{r}_readers: writer did {commits} commits in {:.2?} of timed reads = {:.0} commits/s ({total} commits in all, {:.0} versions per key now)",
                timed,
                commits as f64 / timed.as_secs_f64(),
                db.stats().n_versions as f64 / N_KEYS as f64,
            );
        }
    }
    group.finish();

    // Control: the baseline again, on the chains the writer has grown, to
    // tell the cost of longer chains from the cost of the writer itself.
    let mut group = c.benchmark_group("reads_no_writer_long_chains");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for r in 1u64..=4 {
        let pool = readers(&db, r, 0xa5a5_0000 + 16 * r);
        group.bench_function(BenchmarkId::from_parameter(r), |b| {
            b.iter_custom(|iters| pool.run(iters))
        });
        pool.report_cpu(&format!("reads_no_writer_long_chains/{r}"));
    }
    group.finish();
    let stats = db.stats();
    eprintln!(
        "reads database at the end: {} versions over {N_KEYS} keys, latest txid {}",
        stats.n_versions, stats.latest_txid
    );
}

criterion_group!(benches, bench_group_commit, bench_views, bench_reads);
criterion_main!(benches);
