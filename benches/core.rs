//! Core engine benchmarks: commit throughput, point reads (latest and as of
//! a past txid), history scans, and the open time and index memory of a
//! 1,000,000-version database.
//!
//! Run with `cargo bench --bench core`. Everything is seeded, so two runs
//! do the same work. The index memory report is printed to stderr before
//! the read benchmarks start.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use timecask::{Config, Db, Durability, HistoryQuery, TxId};

// ---------------------------------------------------------------------------
// Counting allocator: bytes currently allocated (as requested from the
// allocator, not counting malloc's own per-chunk overhead) and the peak.

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn add(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn sub(n: usize) {
    CURRENT.fetch_sub(n, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are
// updated on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        sub(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size);
            sub(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

// ---------------------------------------------------------------------------
// Workload parameters.

const TABLE: &str = "user";
const N_KEYS: u64 = 10_000;
const VALUE_LEN: usize = 60;
const N_VERSIONS: u64 = 1_000_000;
const PUTS_PER_TX: u64 = 1_000;
const HISTORY_LEN: usize = 100;

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

fn config(durability: Durability) -> Config {
    Config {
        durability,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// 1. Commits.

fn bench_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    // The last one is the baseline for preallocated segment space: every
    // frame appends, so every fsync also commits a size change.
    let default = Config::default().segment_preallocate_bytes;
    for (name, durability, preallocate) in [
        ("buffered_single_put", Durability::Buffered, default),
        ("immediate_single_put", Durability::Immediate, default),
        ("immediate_single_put_no_prealloc", Durability::Immediate, 0),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            segment_preallocate_bytes: preallocate,
            ..config(durability)
        };
        let db = Db::open_with(dir.path(), config).expect("open");
        // Preload every key so the measured puts are updates.
        let mut tx = db.begin();
        for k in 0..N_KEYS {
            tx.put(TABLE, key(k), value(k, 0)).expect("put");
        }
        tx.set_durability(Durability::Buffered);
        tx.commit().expect("commit");
        let mut rng = Rng::new(0xc0ff_ee00 ^ durability as u64);
        let mut counter = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                counter += 1;
                let k = rng.below(N_KEYS);
                let mut tx = db.begin();
                tx.put(TABLE, key(k), value(k, counter)).expect("put");
                let txid = tx.commit().expect("commit");
                assert!(txid.is_some(), "a changed value records a version");
                black_box(txid)
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// 2. The 1M-version database, built once per process.

struct Big {
    /// Kept so the directory lives as long as the database.
    _dir: tempfile::TempDir,
    db: Db,
    latest: u64,
    /// Keys whose chain holds exactly `HISTORY_LEN` versions.
    history_keys: Vec<u64>,
}

static BIG: OnceLock<Big> = OnceLock::new();

fn big() -> &'static Big {
    BIG.get_or_init(build_big)
}

/// Writes `N_VERSIONS` versions: `N_VERSIONS / PUTS_PER_TX` transactions,
/// each updating `PUTS_PER_TX` distinct keys drawn at random (partial
/// Fisher-Yates), so each key gets ~100 versions. Returns the number of
/// versions written per key.
fn write_big(path: &Path) -> Vec<usize> {
    let db = Db::open_with(path, config(Durability::Buffered)).expect("open");
    let mut rng = Rng::new(0x5eed_0001);
    let mut keys: Vec<u64> = (0..N_KEYS).collect();
    let mut counts = vec![0usize; N_KEYS as usize];
    for t in 0..N_VERSIONS / PUTS_PER_TX {
        let mut tx = db.begin();
        for i in 0..PUTS_PER_TX as usize {
            let j = i + rng.below(N_KEYS - i as u64) as usize;
            keys.swap(i, j);
            let k = keys[i];
            tx.put(TABLE, key(k), value(k, t)).expect("put");
            counts[k as usize] += 1;
        }
        tx.commit()
            .expect("commit")
            .expect("a transaction that changes keys");
    }
    db.flush().expect("flush");
    counts
}

fn build_big() -> Big {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let counts = write_big(dir.path());
    let n_keys = counts.iter().filter(|c| **c > 0).count() as u64;
    let disk: u64 = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum();
    eprintln!(
        "built {N_VERSIONS} versions over {n_keys} keys in {:.2?} ({:.1} MiB on disk)",
        started.elapsed(),
        disk as f64 / (1024.0 * 1024.0)
    );

    // 3. Index memory: bytes that stay allocated after `Db::open` of the
    // finished database (the page cache is warm: the log was just written).
    let before = CURRENT.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let started = Instant::now();
    let db = Db::open_with(dir.path(), config(Durability::Buffered)).expect("reopen");
    let first_open = started.elapsed();
    let retained = CURRENT.load(Ordering::SeqCst) - before;
    let peak = PEAK.load(Ordering::SeqCst) - before;
    let stats = db.stats();
    assert_eq!(stats.n_versions, N_VERSIONS, "every put recorded a version");
    assert_eq!(stats.latest_txid, TxId(N_VERSIONS / PUTS_PER_TX));
    let n = stats.n_versions as f64;
    let key_bytes = n_keys as usize * 8;
    eprintln!(
        "index bytes/version = {:.2} ({retained} bytes retained after open, {} versions, {n_keys} keys; peak during open {:.2} bytes/version)",
        retained as f64 / n,
        stats.n_versions,
        peak as f64 / n,
    );
    eprintln!(
        "index bytes/version excluding one copy of each key = {:.2} (budget 32)",
        (retained - key_bytes) as f64 / n
    );

    // Open time: the first open above plus a few more (warm page cache).
    drop(db);
    let mut times = vec![first_open];
    for _ in 0..4 {
        let started = Instant::now();
        let db = Db::open_with(dir.path(), config(Durability::Buffered)).expect("reopen");
        times.push(started.elapsed());
        drop(db);
    }
    let db = Db::open_with(dir.path(), config(Durability::Buffered)).expect("reopen");
    times.sort();
    eprintln!(
        "open of the 1M-version database (page cache warm): first {first_open:.2?}, min {:.2?}, median {:.2?}, max {:.2?} over {} opens",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );

    let history_keys: Vec<u64> = (0..N_KEYS)
        .filter(|k| counts[*k as usize] == HISTORY_LEN)
        .collect();
    assert!(
        !history_keys.is_empty(),
        "some key has {HISTORY_LEN} versions"
    );
    let latest = db.latest_txid().0;
    Big {
        _dir: dir,
        db,
        latest,
        history_keys,
    }
}

fn bench_read(c: &mut Criterion) {
    let big = big();
    let db = &big.db;

    // Spot checks, outside timing: the view sees what was written.
    let k = big.history_keys[0];
    let history = db
        .snapshot()
        .history(TABLE, key(k), HistoryQuery::all())
        .expect("history");
    assert_eq!(history.len(), HISTORY_LEN);
    for (i, v) in history.iter().enumerate() {
        let expect = db.as_of(v.txid).expect("as_of").get(TABLE, key(k));
        assert_eq!(expect.expect("get").as_ref(), v.value.as_ref());
        assert_eq!(v.end_txid, history.get(i + 1).map(|n| n.txid));
    }

    let mut group = c.benchmark_group("read");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));

    let mut rng = Rng::new(0xa5a5_0002);
    group.bench_function("as_of_point", |b| {
        b.iter(|| {
            let t = 1 + rng.below(big.latest);
            let k = rng.below(N_KEYS);
            let view = db.as_of(TxId(t)).expect("as_of");
            black_box(view.get(TABLE, key(k)).expect("get"))
        })
    });

    let mut rng = Rng::new(0xa5a5_0003);
    group.bench_function("latest_point", |b| {
        b.iter(|| {
            let k = rng.below(N_KEYS);
            black_box(db.snapshot().get(TABLE, key(k)).expect("get"))
        })
    });

    let mut rng = Rng::new(0xa5a5_0004);
    group.throughput(Throughput::Elements(HISTORY_LEN as u64));
    group.bench_function("history_one_key", |b| {
        b.iter_batched(
            || big.history_keys[rng.below(big.history_keys.len() as u64) as usize],
            |k| {
                let versions = db
                    .snapshot()
                    .history(TABLE, key(k), HistoryQuery::all())
                    .expect("history");
                debug_assert_eq!(versions.len(), HISTORY_LEN);
                black_box(versions)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_commit, bench_read);
criterion_main!(benches);
