//! The one-command comparison: builds each engine's database with the same
//! workload, measures every item of issue 8 and prints one markdown table.
//!
//! ```text
//! cargo run --release --manifest-path bench-compare/Cargo.toml            # the issue's sizes
//! cargo run --release --manifest-path bench-compare/Cargo.toml -- --quick # a tenth
//! ```
//!
//! Options: `--quick` (or `BENCH_COMPARE_QUICK=1`), `--engines
//! timecask,sqlite,sled,redb,lmdb,fjall` (the default: all six), `--dir PATH` (where the databases are built;
//! default the system temporary directory), `--out FILE` (also write the
//! report there), `--keep` (keep the databases). Progress goes to stderr,
//! the report to stdout.
//!
//! Order: every engine builds its database (the `U` buffered update
//! commits are timed there); then each measurement runs in rounds, the
//! engines taking turns within a round, so that load from other work on the
//! machine falls on all of them alike; the table shows the median round.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use timecask_bench_compare::alloc::{self, Counting};
use timecask_bench_compare::cache;
use timecask_bench_compare::{
    Commit, Engine, Fjall, Lmdb, Params, Redb, Row, Sled, Sqlite, Timecask, Workload,
};

#[global_allocator]
static ALLOC: Counting = Counting;

// ---------------------------------------------------------------------------
// One engine behind a uniform, object-safe face.

/// What one cold open showed.
#[derive(Clone, Copy, Default)]
struct Open {
    time: Duration,
    /// Rust heap retained by the open handle after open + first read.
    heap: i64,
    /// Heap outside Rust's allocator (SQLite), same moment.
    foreign: Option<i64>,
    /// Share of the files' pages in the page cache just before the open.
    resident_before: f64,
    from_checkpoint: bool,
}

trait Runner {
    fn name(&self) -> &'static str;
    /// Builds; returns (load time, buffered commits/s over the U updates).
    fn build(&mut self, w: &Workload) -> (Duration, f64);
    fn notes(&self) -> Vec<String>;
    fn resident(&self) -> f64;
    fn disk(&self) -> (u64, u64);
    fn as_of(&self, w: &Workload) -> Vec<u64>;
    fn latest(&self, w: &Workload) -> Vec<u64>;
    fn history(&self, w: &Workload) -> Vec<u64>;
    fn hot_history(&self, w: &Workload) -> Vec<u64>;
    fn scan(&self, w: &Workload) -> Vec<u64>;
    fn close(&mut self);
    /// Evicts the files from the page cache, opens, reads one row; closes.
    fn open_cold(&mut self) -> Open;
    /// Opens and reads one row with the page cache warm; closes.
    fn open_warm(&mut self) -> Duration;
    /// Opens, writes a checkpoint if the engine has one, closes.
    fn checkpoint(&mut self) -> bool;
    fn reopen(&mut self);
    /// Commits `updates` (txids from `first`); returns commits/s.
    fn commits(&mut self, first: u64, updates: &[(u64, Row)], commit: Commit) -> f64;
}

struct Bench<E: Engine> {
    dir: PathBuf,
    e: Option<E>,
}

impl<E: Engine> Bench<E> {
    fn new(root: &Path) -> Bench<E> {
        let slug = E::NAME
            .split_whitespace()
            .next()
            .unwrap_or(E::NAME)
            .to_lowercase();
        let dir = root.join(slug);
        std::fs::create_dir_all(&dir).expect("create dir");
        Bench { dir, e: None }
    }

    fn e(&self) -> &E {
        self.e.as_ref().expect("open")
    }
}

/// Per-operation nanoseconds of `f` on each query, after running it
/// untimed on the first `warm` queries.
fn time_each<Q, T>(queries: &[Q], warm: usize, mut f: impl FnMut(&Q) -> T) -> Vec<u64> {
    for q in queries.iter().take(warm) {
        black_box(f(q));
    }
    let mut ns = Vec::with_capacity(queries.len());
    for q in queries {
        let started = Instant::now();
        let out = f(q);
        ns.push(started.elapsed().as_nanos() as u64);
        black_box(out);
    }
    ns
}

impl<E: Engine> Runner for Bench<E> {
    fn name(&self) -> &'static str {
        E::NAME
    }

    fn build(&mut self, w: &Workload) -> (Duration, f64) {
        let mut e = E::create(&self.dir);
        let (load, updates) = w.build(&mut e, true);
        w.check(&e);
        self.e = Some(e);
        (load, w.p.u as f64 / updates.as_secs_f64())
    }

    fn notes(&self) -> Vec<String> {
        self.e().notes()
    }

    fn resident(&self) -> f64 {
        cache::resident_fraction(&E::files(&self.dir))
    }

    fn disk(&self) -> (u64, u64) {
        cache::disk_usage(&E::files(&self.dir))
    }

    fn as_of(&self, w: &Workload) -> Vec<u64> {
        let e = self.e();
        let warm = (w.as_of_queries.len() / 10).min(5_000);
        time_each(&w.as_of_queries, warm, |&(id, t)| e.as_of(id, t))
    }

    fn latest(&self, w: &Workload) -> Vec<u64> {
        let e = self.e();
        let warm = (w.latest_queries.len() / 10).min(5_000);
        time_each(&w.latest_queries, warm, |&id| e.latest(id))
    }

    fn history(&self, w: &Workload) -> Vec<u64> {
        let e = self.e();
        time_each(&w.history_ids, w.history_ids.len() / 10, |&id| {
            E::history_len(&e.history(id))
        })
    }

    fn hot_history(&self, w: &Workload) -> Vec<u64> {
        let e = self.e();
        let hot = vec![w.p.hot_id(); w.p.hot_history_reads];
        time_each(&hot, 1, |&id| E::history_len(&e.history(id)))
    }

    fn scan(&self, w: &Workload) -> Vec<u64> {
        let e = self.e();
        time_each(&w.scan_txids, 1, |&t| e.scan_as_of(t).len())
    }

    fn close(&mut self) {
        if let Some(mut e) = self.e.take() {
            e.sync();
        }
    }

    fn open_cold(&mut self) -> Open {
        self.close();
        let files = E::files(&self.dir);
        cache::evict(&files);
        let resident_before = cache::resident_fraction(&files);
        let heap = alloc::current();
        let foreign = E::foreign_heap_bytes();
        let started = Instant::now();
        let e = E::open(&self.dir);
        black_box(e.latest(1).expect("user 1"));
        let time = started.elapsed();
        let open = Open {
            time,
            heap: (alloc::current() - heap) as i64,
            foreign: E::foreign_heap_bytes()
                .zip(foreign)
                .map(|(after, before)| after as i64 - before as i64),
            resident_before,
            from_checkpoint: e.opened_from_checkpoint(),
        };
        drop(e);
        open
    }

    fn open_warm(&mut self) -> Duration {
        self.close();
        let started = Instant::now();
        let e = E::open(&self.dir);
        black_box(e.latest(1).expect("user 1"));
        let time = started.elapsed();
        drop(e);
        time
    }

    fn checkpoint(&mut self) -> bool {
        self.close();
        let mut e = E::open(&self.dir);
        let has = e.checkpoint();
        drop(e);
        has
    }

    fn reopen(&mut self) {
        if self.e.is_none() {
            self.e = Some(E::open(&self.dir));
        }
    }

    fn commits(&mut self, first: u64, updates: &[(u64, Row)], commit: Commit) -> f64 {
        let e = self.e.as_mut().expect("open");
        let started = Instant::now();
        for (i, (id, row)) in updates.iter().enumerate() {
            e.update(first + i as u64, *id, row, commit);
        }
        updates.len() as f64 / started.elapsed().as_secs_f64()
    }
}

// ---------------------------------------------------------------------------
// Results.

/// Per-operation latencies over all rounds, and each round's mean.
#[derive(Clone, Default)]
struct Latency {
    rounds: Vec<f64>,
    all: Vec<u64>,
}

impl Latency {
    fn push(&mut self, ns: Vec<u64>) {
        self.rounds
            .push(ns.iter().sum::<u64>() as f64 / ns.len() as f64);
        self.all.extend(ns);
    }

    /// The median round's mean.
    fn mean(&self) -> f64 {
        median(&self.rounds)
    }

    fn quantile(&self, q: f64) -> f64 {
        let mut v = self.all.clone();
        v.sort_unstable();
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)] as f64
    }

    fn spread(&self) -> String {
        let lo = self.rounds.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.rounds.iter().copied().fold(0.0, f64::max);
        format!("{}–{}", fmt_ns(lo), fmt_ns(hi))
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[derive(Default)]
struct Results {
    name: &'static str,
    load: Duration,
    buffered_build: f64,
    durable: Vec<f64>,
    buffered_tail: Vec<f64>,
    as_of: Latency,
    latest: Latency,
    history: Latency,
    hot_history: Latency,
    scan: Latency,
    resident_before_reads: f64,
    open_cold: Vec<Open>,
    open_warm: Vec<f64>,
    cp_open_cold: Vec<Open>,
    cp_open_warm: Vec<f64>,
    disk: (u64, u64),
    disk_with_checkpoint: Option<(u64, u64)>,
    notes: Vec<String>,
}

impl Results {
    fn cold(&self) -> f64 {
        median(
            &self
                .open_cold
                .iter()
                .map(|o| o.time.as_nanos() as f64)
                .collect::<Vec<_>>(),
        )
    }

    fn cp_cold(&self) -> Option<f64> {
        (!self.cp_open_cold.is_empty()).then(|| {
            median(
                &self
                    .cp_open_cold
                    .iter()
                    .map(|o| o.time.as_nanos() as f64)
                    .collect::<Vec<_>>(),
            )
        })
    }

    /// Memory retained after the first cold open (checkpoint-less).
    fn open_memory(&self) -> i64 {
        let o = self.open_cold[0];
        o.heap + o.foreign.unwrap_or(0)
    }

    /// Bytes on disk as a user with the default configuration has them
    /// (timecask: log plus checkpoint).
    fn disk_total(&self) -> u64 {
        self.disk_with_checkpoint.unwrap_or(self.disk).1
    }
}

// ---------------------------------------------------------------------------
// The report.

fn fmt_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M/s", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k/s", x / 1e3)
    } else {
        format!("{x:.0}/s")
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn fmt_bytes(b: f64) -> String {
    if b.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b.abs() >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

fn fmt_thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
    /// Not like for like: no ratio.
    None,
}

struct Line {
    item: String,
    better: Better,
    /// Per engine (timecask first): the number compared, and its text.
    cells: Vec<Option<(f64, String)>>,
}

/// A row's cell for engine `i`: the number compared, and its text.
type CellFn<'a> = dyn Fn(usize, &Results) -> Option<(f64, String)> + 'a;

/// timecask's standing against the best baseline of the row.
fn advantage(line: &Line, names: &[&str]) -> String {
    let Some(Some((tc, _))) = line.cells.first() else {
        return "—".into();
    };
    let baselines = line
        .cells
        .iter()
        .zip(names)
        .skip(1)
        .filter_map(|(c, n)| c.as_ref().map(|(v, _)| (*v, *n)));
    let best = match line.better {
        Better::Higher => baselines.max_by(|a, b| a.0.total_cmp(&b.0)),
        Better::Lower => baselines.min_by(|a, b| a.0.total_cmp(&b.0)),
        Better::None => None,
    };
    let Some((best, who)) = best else {
        return "—".into();
    };
    let who = who.split_whitespace().next().unwrap_or(who);
    let ratio = match line.better {
        Better::Higher => tc / best,
        _ => best / tc,
    };
    if ratio >= 1.0 {
        format!("**{ratio:.2}×** better than {who}")
    } else {
        format!("{ratio:.2}× ({:.1}× worse than {who})", 1.0 / ratio)
    }
}

fn ratio_vs(
    a: Option<&Results>,
    b: Option<&Results>,
    f: impl Fn(&Results) -> f64,
    higher_is_better: bool,
) -> Option<f64> {
    let (a, b) = (f(a?), f(b?));
    Some(if higher_is_better { a / b } else { b / a })
}

struct RunInfo {
    elapsed: Duration,
    load_start: String,
    load_end: String,
}

fn report(p: &Params, w: &Workload, results: &[Option<Results>], info: &RunInfo) -> String {
    use std::fmt::Write;
    // The order of `slots` in `main`.
    let names = [
        Timecask::NAME,
        Sqlite::NAME,
        Sled::NAME,
        Redb::NAME,
        Lmdb::NAME,
        Fjall::NAME,
    ];
    let n_versions = p.n_versions() as f64;
    let r = p.rounds;
    let mut lines: Vec<Line> = Vec::new();
    let mut add = |item: String, better: Better, f: &CellFn<'_>| {
        lines.push(Line {
            item,
            better,
            cells: (0..names.len())
                .map(|i| results[i].as_ref().and_then(|res| f(i, res)))
                .collect(),
        });
    };
    add(
        format!(
            "1a. durable commits/s: single-row update txs, fsync per commit, one committer ({} commits on the finished db, not {}; SQLite `synchronous=FULL`)",
            fmt_thousands(p.durable_commits),
            fmt_thousands(p.u)
        ),
        Better::Higher,
        &|_, r| {
            let v = median(&r.durable);
            Some((v, fmt_rate(v)))
        },
    );
    add(
        format!(
            "1b. buffered commits/s: the build's {} single-row update txs (SQLite `synchronous=NORMAL`, redb `Durability::None`, LMDB `NO_SYNC`, fjall no persist, sled no flush)",
            fmt_thousands(p.u)
        ),
        Better::Higher,
        &|_, r| Some((r.buffered_build, fmt_rate(r.buffered_build))),
    );
    add(
        format!(
            "1c. buffered commits/s: {} single-row update txs on the finished db (SQLite `synchronous=OFF`)",
            fmt_thousands(p.off_commits)
        ),
        Better::Higher,
        &|_, r| {
            let v = median(&r.buffered_tail);
            Some((v, fmt_rate(v)))
        },
    );
    add(
        "2. as-of point read at a random (key, txid): mean latency".into(),
        Better::Lower,
        &|_, r| Some((r.as_of.mean(), fmt_ns(r.as_of.mean()))),
    );
    let mean_len = w
        .history_ids
        .iter()
        .map(|id| w.history_len(*id))
        .sum::<usize>() as f64
        / w.history_ids.len() as f64;
    let per_round_versions: usize = w.history_ids.iter().map(|id| w.history_len(*id)).sum();
    add(
        format!(
            "3a. history of one key (~{mean_len:.0} versions, with commit times): mean latency"
        ),
        Better::Lower,
        &|_, r| Some((r.history.mean(), fmt_ns(r.history.mean()))),
    );
    add(
        "3b. history of one key (~20 versions): versions/s".into(),
        Better::Higher,
        &|_, r| {
            // Versions read in a round ÷ the round's time.
            let v =
                per_round_versions as f64 / (r.history.mean() * w.history_ids.len() as f64 / 1e9);
            Some((v, fmt_rate(v)))
        },
    );
    add(
        format!(
            "3c. history of the key with {} versions: latency",
            fmt_thousands(p.h + 1)
        ),
        Better::Lower,
        &|_, r| Some((r.hot_history.mean(), fmt_ns(r.hot_history.mean()))),
    );
    add(
        format!(
            "3d. history of the key with {} versions: versions/s",
            fmt_thousands(p.h + 1)
        ),
        Better::Higher,
        &|_, r| {
            let v = (p.h + 1) as f64 / (r.hot_history.mean() / 1e9);
            Some((v, fmt_rate(v)))
        },
    );
    add(
        format!(
            "4. whole-table as-of scan at a random txid ({} rows): rows/s (time per scan)",
            fmt_thousands(p.k + 1)
        ),
        Better::Higher,
        &|_, r| {
            let v = (p.k + 1) as f64 / (r.scan.mean() / 1e9);
            Some((v, format!("{} ({})", fmt_rate(v), fmt_ns(r.scan.mean()))))
        },
    );
    add(
        "5. latest point read: mean latency".into(),
        Better::Lower,
        &|_, r| Some((r.latest.mean(), fmt_ns(r.latest.mean()))),
    );
    add(
        "6a. open of the finished db + first read, cold (its files evicted from the page cache); timecask replays the whole log".into(),
        Better::Lower,
        &|_, r| {
            let v = r.cold();
            Some((v, fmt_ns(v)))
        },
    );
    add(
        "6b. open + first read, warm page cache; timecask replays the whole log".into(),
        Better::Lower,
        &|_, r| {
            let v = median(&r.open_warm);
            Some((v, fmt_ns(v)))
        },
    );
    add(
        "6c. open + first read with timecask's index checkpoint, cold / warm (others: same as 6a / 6b)".into(),
        Better::Lower,
        &|_, r| match r.cp_cold() {
            Some(cold) => {
                let warm = median(&r.cp_open_warm);
                Some((cold, format!("{} / {}", fmt_ns(cold), fmt_ns(warm))))
            }
            None => {
                let (cold, warm) = (r.cold(), median(&r.open_warm));
                Some((cold, format!("{} / {}", fmt_ns(cold), fmt_ns(warm))))
            }
        },
    );
    add(
        format!(
            "7a. bytes on disk per version (allocated size of all files ÷ {} versions; timecask: log + checkpoint)",
            fmt_thousands(p.n_versions())
        ),
        Better::Lower,
        &|i, r| {
            let total = r.disk_total() as f64 / n_versions;
            let text = match (i, r.disk_with_checkpoint) {
                (0, Some(_)) => format!(
                    "{total:.0} B ({:.0} log + {:.0} checkpoint)",
                    r.disk.1 as f64 / n_versions,
                    (r.disk_total() - r.disk.1) as f64 / n_versions
                ),
                _ => format!("{total:.0} B"),
            };
            Some((total, text))
        },
    );
    add(
        "7b. memory held after open + first read, per version (timecask: resident index; the others keep no index in memory, this is their cache)".into(),
        Better::None,
        &|_, r| {
            let bytes = r.open_memory() as f64;
            Some((bytes / n_versions, format!("{:.1} B ({})", bytes / n_versions, fmt_bytes(bytes))))
        },
    );

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Workload: K = {} users (mean value {:.0} bytes), U = {} single-row update transactions on random users, then one more user updated {} times (one key with {} versions): {} versions, latest txid {}. Seeds fixed; every engine gets the same data, the same queries in the same order, and its answers are checked against a model before timing.",
        fmt_thousands(p.k),
        w.mean_value_len(),
        fmt_thousands(p.u),
        fmt_thousands(p.h),
        fmt_thousands(p.h + 1),
        fmt_thousands(p.n_versions()),
        fmt_thousands(p.last_build_txid())
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Per round: {} as-of and {} latest point reads, {} histories of random keys, {} of the hot key, {} whole-table scans, one cold and one warm open; {} rounds, engines taking turns, the median round shown. Reads run with the page cache warm (the databases were just built; share of their file pages resident before the reads: {}). Machine: {} cores, load average {} at the start and {} at the end (other work was running on it); whole run {:.0?}.",
        fmt_thousands(p.point_reads as u64),
        fmt_thousands(p.point_reads as u64),
        fmt_thousands(p.history_reads as u64),
        p.hot_history_reads,
        p.scans,
        r,
        results
            .iter()
            .zip(names)
            .filter_map(|(r, n)| r.as_ref().map(|r| format!(
                "{} {:.0}%",
                n.split_whitespace().next().unwrap_or(n),
                r.resident_before_reads * 100.0
            )))
            .collect::<Vec<_>>()
            .join(", "),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        info.load_start,
        info.load_end,
        info.elapsed,
    );
    let _ = writeln!(out);
    let _ = write!(out, "| item |");
    for n in &names {
        let _ = write!(out, " {n} |");
    }
    let _ = writeln!(out, " timecask vs best baseline |");
    let _ = writeln!(out, "|---|{}---|", "---:|".repeat(names.len()));
    for line in &lines {
        let _ = write!(out, "| {} |", line.item);
        for c in &line.cells {
            let _ = write!(
                out,
                " {} |",
                c.as_ref().map_or("—".to_string(), |c| c.1.clone())
            );
        }
        let _ = writeln!(out, " {} |", advantage(line, &names));
    }

    // Targets.
    let tc = results[0].as_ref();
    let sq = results[1].as_ref();
    let rd = results[3].as_ref();
    let lm = results[4].as_ref();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Targets (issue 8; ratios from this run, > 1 means timecask is better):"
    );
    // `need`: the issue's target, `None` for a ratio shown without one.
    let mut target = |what: &str, got: Option<f64>, need: Option<f64>| {
        let _ = match (got, need) {
            (Some(g), Some(need)) => writeln!(
                out,
                "- {what}: {g:.2}× (target ≥ {need}×): {}",
                if g >= need { "met" } else { "**missed**" }
            ),
            (Some(g), None) => writeln!(out, "- {what}: {g:.2}× (no target)"),
            (None, _) => writeln!(out, "- {what}: not measured in this run"),
        };
    };
    target(
        "as-of point read vs SQLite",
        ratio_vs(tc, sq, |r| r.as_of.mean(), false),
        Some(20.0),
    );
    target(
        "as-of point read vs redb",
        ratio_vs(tc, rd, |r| r.as_of.mean(), false),
        Some(2.0),
    );
    // No issue target for LMDB: the ratio only, next to redb's.
    target(
        "as-of point read vs LMDB",
        ratio_vs(tc, lm, |r| r.as_of.mean(), false),
        None,
    );
    target(
        "history of one key (~20 versions) vs SQLite",
        ratio_vs(tc, sq, |r| r.history.mean(), false),
        Some(10.0),
    );
    target(
        &format!(
            "history of the {}-version key vs SQLite",
            fmt_thousands(p.h + 1)
        ),
        ratio_vs(tc, sq, |r| r.hot_history.mean(), false),
        Some(10.0),
    );
    target(
        "buffered commits vs SQLite NORMAL (1b)",
        ratio_vs(tc, sq, |r| r.buffered_build, true),
        Some(5.0),
    );
    target(
        "durable single-committer commits vs SQLite FULL (1a)",
        ratio_vs(tc, sq, |r| median(&r.durable), true),
        Some(1.0),
    );
    target(
        "bytes on disk per version, SQLite's ÷ timecask's (7a)",
        ratio_vs(tc, sq, |r| r.disk_total() as f64, false),
        Some(1.0),
    );

    // Details.
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Details (p50/p99 over all rounds; round means min–max):"
    );
    for r in results.iter().flatten() {
        let o = r.open_cold[0];
        let _ = writeln!(
            out,
            "- {}: load (txid 1, {} rows in one transaction) {:.1?}. as-of p50 {} p99 {} (rounds {}); latest p50 {} p99 {} (rounds {}); history p50 {} p99 {} (rounds {}); hot history rounds {}; scan rounds {}. Durable commits/s per round {}; buffered (finished db) per round {}. Disk: {} allocated, {} apparent{}. Page cache share before each cold open: {}. After the first cold open: {} Rust heap{}{}.",
            r.name,
            fmt_thousands(p.k + 1),
            r.load,
            fmt_ns(r.as_of.quantile(0.5)),
            fmt_ns(r.as_of.quantile(0.99)),
            r.as_of.spread(),
            fmt_ns(r.latest.quantile(0.5)),
            fmt_ns(r.latest.quantile(0.99)),
            r.latest.spread(),
            fmt_ns(r.history.quantile(0.5)),
            fmt_ns(r.history.quantile(0.99)),
            r.history.spread(),
            r.hot_history.spread(),
            r.scan.spread(),
            r.durable
                .iter()
                .map(|v| fmt_rate(*v))
                .collect::<Vec<_>>()
                .join(", "),
            r.buffered_tail
                .iter()
                .map(|v| fmt_rate(*v))
                .collect::<Vec<_>>()
                .join(", "),
            fmt_bytes(r.disk.1 as f64),
            fmt_bytes(r.disk.0 as f64),
            r.disk_with_checkpoint.map_or(String::new(), |d| format!(
                "; with the checkpoint {} allocated",
                fmt_bytes(d.1 as f64)
            )),
            r.open_cold
                .iter()
                .chain(&r.cp_open_cold)
                .map(|o| format!("{:.0}%", o.resident_before * 100.0))
                .collect::<Vec<_>>()
                .join(", "),
            fmt_bytes(o.heap as f64),
            o.foreign.map_or(String::new(), |b| format!(
                " + {} SQLite heap (`sqlite3_memory_used`)",
                fmt_bytes(b as f64)
            )),
            r.cp_open_cold.first().map_or(String::new(), |c| format!(
                "; after a cold open from the checkpoint ({}): {} Rust heap",
                if c.from_checkpoint {
                    "used"
                } else {
                    "NOT used"
                },
                fmt_bytes(c.heap as f64)
            )),
        );
        for n in &r.notes {
            let _ = writeln!(out, "  - {n}");
        }
    }
    out
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

// ---------------------------------------------------------------------------

struct Args {
    quick: bool,
    engines: Vec<String>,
    dir: Option<PathBuf>,
    out: Option<PathBuf>,
    keep: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        quick: matches!(std::env::var("BENCH_COMPARE_QUICK"), Ok(v) if !v.is_empty() && v != "0"),
        engines: vec![
            "timecask".into(),
            "sqlite".into(),
            "sled".into(),
            "redb".into(),
            "lmdb".into(),
            "fjall".into(),
        ],
        dir: None,
        out: None,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.quick = true,
            "--keep" => args.keep = true,
            "--engines" => {
                args.engines = it
                    .next()
                    .expect("--engines needs a list")
                    .split(',')
                    .map(|s| s.trim().to_lowercase())
                    .collect()
            }
            "--dir" => args.dir = Some(it.next().expect("--dir needs a path").into()),
            "--out" => args.out = Some(it.next().expect("--out needs a path").into()),
            "-h" | "--help" => {
                eprintln!(
                    "usage: bench-compare [--quick] [--engines timecask,sqlite,sled,redb,lmdb,fjall] [--dir PATH] [--out FILE] [--keep]"
                );
                std::process::exit(0);
            }
            other => {
                eprintln!("unknown argument {other:?} (try --help)");
                std::process::exit(2);
            }
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let p = if args.quick {
        Params::quick()
    } else {
        Params::full()
    };
    let started = Instant::now();
    let load_start = loadavg();
    let root = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).expect("create --dir");
            tempfile::tempdir_in(d).expect("tempdir")
        }
        None => tempfile::tempdir().expect("tempdir"),
    };
    eprintln!("generating the workload ({p:?})");
    let w = Workload::new(p.clone());
    let want = |n: &str| args.engines.iter().any(|e| e == n);
    let mut slots: Vec<Option<Box<dyn Runner>>> = vec![
        want("timecask").then(|| Box::new(Bench::<Timecask>::new(root.path())) as Box<dyn Runner>),
        want("sqlite").then(|| Box::new(Bench::<Sqlite>::new(root.path())) as Box<dyn Runner>),
        want("sled").then(|| Box::new(Bench::<Sled>::new(root.path())) as Box<dyn Runner>),
        want("redb").then(|| Box::new(Bench::<Redb>::new(root.path())) as Box<dyn Runner>),
        want("lmdb").then(|| Box::new(Bench::<Lmdb>::new(root.path())) as Box<dyn Runner>),
        want("fjall").then(|| Box::new(Bench::<Fjall>::new(root.path())) as Box<dyn Runner>),
    ];
    let mut results: Vec<Option<Results>> = slots
        .iter()
        .map(|s| {
            s.as_ref().map(|s| Results {
                name: s.name(),
                ..Default::default()
            })
        })
        .collect();
    // Each present engine with its results.
    macro_rules! each {
        (|$b:ident, $r:ident| $body:expr) => {
            for (slot, res) in slots.iter_mut().zip(results.iter_mut()) {
                if let (Some($b), Some($r)) = (slot.as_mut(), res.as_mut()) {
                    $body;
                }
            }
        };
    }

    each!(|b, r| {
        eprintln!("[{}] build", b.name());
        let t = Instant::now();
        (r.load, r.buffered_build) = b.build(&w);
        eprintln!("[{}] built and checked in {:.1?}", b.name(), t.elapsed());
        r.notes = b.notes();
        r.resident_before_reads = b.resident();
    });

    for round in 0..p.rounds {
        eprintln!("reads, round {}/{}", round + 1, p.rounds);
        each!(|b, r| r.as_of.push(b.as_of(&w)));
        each!(|b, r| r.latest.push(b.latest(&w)));
        each!(|b, r| r.history.push(b.history(&w)));
        each!(|b, r| r.hot_history.push(b.hot_history(&w)));
        each!(|b, r| r.scan.push(b.scan(&w)));
    }

    each!(|b, r| {
        b.close();
        r.disk = b.disk();
    });
    for round in 0..p.rounds {
        eprintln!("opens, round {}/{}", round + 1, p.rounds);
        each!(|b, r| r.open_cold.push(b.open_cold()));
        each!(|b, r| r.open_warm.push(b.open_warm().as_nanos() as f64));
    }
    let mut has_checkpoint = vec![false; slots.len()];
    for (i, slot) in slots.iter_mut().enumerate() {
        if let Some(b) = slot.as_mut() {
            has_checkpoint[i] = b.checkpoint();
            if has_checkpoint[i] {
                results[i].as_mut().expect("present").disk_with_checkpoint = Some(b.disk());
            }
        }
    }
    for round in 0..p.rounds {
        eprintln!("opens from a checkpoint, round {}/{}", round + 1, p.rounds);
        for (i, (slot, res)) in slots.iter_mut().zip(results.iter_mut()).enumerate() {
            if let (Some(b), Some(r), true) = (slot.as_mut(), res.as_mut(), has_checkpoint[i]) {
                let o = b.open_cold();
                assert!(o.from_checkpoint, "{}: the checkpoint was used", b.name());
                r.cp_open_cold.push(o);
                r.cp_open_warm.push(b.open_warm().as_nanos() as f64);
            }
        }
    }

    each!(|b, _r| b.reopen());
    let first = p.last_build_txid() + 1;
    let (durable, tail) = w.tail_updates.split_at(p.durable_commits as usize);
    let d_chunk = durable.len().div_ceil(p.rounds);
    let t_chunk = tail.len().div_ceil(p.rounds);
    let mut next = first;
    for (round, chunk) in durable.chunks(d_chunk).enumerate() {
        eprintln!("durable commits, round {}/{}", round + 1, p.rounds);
        each!(|b, r| r.durable.push(b.commits(next, chunk, Commit::Durable)));
        next += chunk.len() as u64;
    }
    for (round, chunk) in tail.chunks(t_chunk).enumerate() {
        eprintln!(
            "buffered commits on the finished db, round {}/{}",
            round + 1,
            p.rounds
        );
        each!(|b, r| r.buffered_tail.push(b.commits(next, chunk, Commit::Off)));
        next += chunk.len() as u64;
    }
    each!(|b, _r| b.close());

    let info = RunInfo {
        elapsed: started.elapsed(),
        load_start,
        load_end: loadavg(),
    };
    let text = report(&p, &w, &results, &info);
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).expect("write --out");
    }
    if args.keep {
        let kept = root.keep();
        eprintln!("databases kept in {}", kept.display());
    }
}
