//! The scale bench (issue 12's acceptance measurement): for each size, a
//! timecask database with history runs is built (K keys × V versions of
//! 60-byte values), then resident memory after open, open time (warm and
//! cold), disk bytes per version, as-of point reads and key histories (warm
//! and cold) are measured; optionally the same data in redb side by side,
//! and the old all-in-memory index (`history_runs: false`) as a baseline.
//!
//! ```text
//! cargo run --release --manifest-path bench-compare/Cargo.toml --bin scale -- \
//!     [--sizes 1m,10m,200m] [--redb] [--dir PATH] [--keep] [--compact-every V] [--no-final-compact]
//! ```
//!
//! During the build the background sealer seals the log into runs and
//! merges them by size, as for any application (`--compact-every V` adds a
//! `Db::compact` every V versions); then one `Db::compact` merges every run
//! into one, unless `--no-final-compact` leaves the runs sealing made (the
//! clean close seals the tail). The report gives the runs left.
//!
//! Shapes: `1m` = 100,000 keys × 10 versions, `10m` = 200,000 keys × 50
//! versions (so a cold history of 50 versions exists), `200m` = 1,000,000
//! keys × 200 versions; `KxV` (e.g. `5000x20`) for anything else. Version
//! `r` of every key is written in round `r`; a transaction writes one
//! version of each of 10,000 consecutive keys, so the txid of version `r`
//! of key `k` is `r * ceil(K / 10000) + k / 10000 + 1`.
//!
//! Memory and open time are measured in a fresh child process (this binary
//! re-executed with the hidden `probe` subcommand) reading `VmRSS`/`VmHWM`
//! from `/proc/self/status` before and after the open. "Cold" means the
//! database's files were dropped from the page cache
//! (`fdatasync` + `posix_fadvise(DONTNEED)`, [`cache::evict`]) just before;
//! a cold read also runs on a freshly opened handle (so no block or value
//! cache of the engine holds anything from an earlier read), one read per
//! eviction.

use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use redb::TableDefinition;
use timecask::{Config, Db, Durability, HistoryQuery, RunCompression, TxId};
use timecask_bench_compare::engines::version_key;
use timecask_bench_compare::{
    Engine, OP_INSERT, OP_UPDATE, Redb, Rng, TABLE, alloc, cache, user_key,
};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// Keys written per transaction.
const BATCH: u64 = 10_000;
/// The redb engine's tables (as `engines/redb.rs` defines them).
const REDB_VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("versions");
const REDB_TRANSACTIONS: TableDefinition<u64, u64> = TableDefinition::new("transactions");

// ---------------------------------------------------------------------------
// Shapes and data.

#[derive(Clone, Copy, Debug)]
struct Shape {
    name: &'static str,
    keys: u64,
    versions: u64,
}

impl Shape {
    fn parse(s: &str) -> Shape {
        match s {
            "1m" => Shape {
                name: "1M",
                keys: 100_000,
                versions: 10,
            },
            "10m" => Shape {
                name: "10M",
                keys: 200_000,
                versions: 50,
            },
            "200m" => Shape {
                name: "200M",
                keys: 1_000_000,
                versions: 200,
            },
            other => {
                let (k, v) = other
                    .split_once('x')
                    .unwrap_or_else(|| panic!("size {other:?}: 1m, 10m, 200m or KxV"));
                Shape {
                    name: Box::leak(other.to_string().into_boxed_str()),
                    keys: k.parse().expect("K"),
                    versions: v.parse().expect("V"),
                }
            }
        }
    }

    fn n(&self) -> u64 {
        self.keys * self.versions
    }

    /// Transactions per round.
    fn chunks(&self) -> u64 {
        self.keys.div_ceil(BATCH)
    }

    fn txid(&self, key: u64, round: u64) -> u64 {
        round * self.chunks() + key / BATCH + 1
    }

    fn last_txid(&self) -> u64 {
        self.versions * self.chunks()
    }

    /// The round of key `key`'s version visible as of txid `t`.
    fn visible_round(&self, key: u64, t: u64) -> Option<u64> {
        let c = key / BATCH;
        (t > c).then(|| ((t - 1 - c) / self.chunks()).min(self.versions - 1))
    }
}

/// Version `round` of key `key`: 60 bytes, `key BE | round LE u32 |` 48
/// letters fixed per key, three of them changed per version.
fn value(key: u64, round: u64) -> [u8; 60] {
    let mut v = [0u8; 60];
    v[..8].copy_from_slice(&key.to_be_bytes());
    v[8..12].copy_from_slice(&(round as u32).to_le_bytes());
    let mut base = Rng::new(0x5ca1_e000_0000_0012 ^ key.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for chunk in v[12..].chunks_mut(8) {
        let bits = base.next_u64().to_le_bytes();
        for (b, r) in chunk.iter_mut().zip(bits) {
            *b = b'a' + r % 26;
        }
    }
    let mut r = Rng::new(
        0x5ca1_e000_0000_0034 ^ key.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ round.rotate_left(32),
    );
    let bits = r.next_u64();
    for i in 0..3 {
        let pos = 12 + ((bits >> (i * 16)) % 48) as usize;
        v[pos] = b'A' + ((bits >> (i * 16 + 8)) % 26) as u8;
    }
    v
}

/// The config every timecask handle of the bench uses: the defaults, with
/// buffered commits and `history_runs` as asked. `SCALE_BLOCK_CACHE_MIB`
/// (inherited by the probes) overrides `block_cache_bytes`, for diagnosis
/// only: the reported runs use the default.
fn tc_config(runs: bool) -> Config {
    let defaults = Config::default();
    let block_cache_bytes = std::env::var("SCALE_BLOCK_CACHE_MIB")
        .ok()
        .and_then(|m| m.parse::<usize>().ok())
        .map_or(defaults.block_cache_bytes, |m| m << 20);
    // Also for diagnosis: `SCALE_RUN_BLOCK_BYTES` (block size) and
    // `SCALE_RUN_COMPRESSION=none|lz4|zstd` (the blocks' codec).
    let run_block_bytes = std::env::var("SCALE_RUN_BLOCK_BYTES")
        .ok()
        .and_then(|b| b.parse::<usize>().ok())
        .unwrap_or(defaults.run_block_bytes);
    let run_compression = match std::env::var("SCALE_RUN_COMPRESSION").as_deref() {
        Ok("none") => RunCompression::None,
        Ok("lz4") => RunCompression::Lz4,
        Ok("zstd") => RunCompression::Zstd,
        _ => defaults.run_compression,
    };
    Config {
        durability: Durability::Buffered,
        history_runs: runs,
        block_cache_bytes,
        run_block_bytes,
        run_compression,
        ..defaults
    }
}

// ---------------------------------------------------------------------------
// Measuring.

/// (VmRSS, VmHWM) of this process, bytes.
fn rss() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// RssAnon of this process, bytes.
fn rss_anon() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64
}

#[derive(Clone, Debug, Default)]
struct Lat {
    ns: Vec<u64>,
}

impl Lat {
    fn push(&mut self, d: Duration) {
        self.ns.push(d.as_nanos() as u64);
    }
    fn sorted(&self) -> Vec<u64> {
        let mut v = self.ns.clone();
        v.sort_unstable();
        v
    }
    fn p50(&self) -> f64 {
        quantile(&self.sorted(), 0.5)
    }
    fn p99(&self) -> f64 {
        quantile(&self.sorted(), 0.99)
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns.is_nan() {
        "–".into()
    } else if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn fmt_bytes(b: f64) -> String {
    if b.is_nan() {
        "–".into()
    } else if b.abs() < 1024.0 * 1024.0 {
        format!("{:.0} KiB", b / 1024.0)
    } else if b.abs() < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    }
}

/// Reads every file once so that it is in the page cache.
fn warm_files(files: &[PathBuf]) {
    let mut buf = vec![0u8; 1 << 20];
    for f in files {
        if let Ok(mut file) = std::fs::File::open(f) {
            while matches!(file.read(&mut buf), Ok(n) if n > 0) {}
        }
    }
}

fn dir_bytes(dir: &Path) -> (u64, u64) {
    let files = cache::files_under(dir);
    let all = cache::disk_usage(&files).0;
    let runs: Vec<PathBuf> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "tcrun"))
        .cloned()
        .collect();
    (all, cache::disk_usage(&runs).0)
}

// ---------------------------------------------------------------------------
// The probe: a fresh process that opens a database and reports memory.

/// What one probe reported.
#[derive(Clone, Copy, Debug, Default)]
struct Probe {
    open_ns: f64,
    rss_before: u64,
    rss_after: u64,
    hwm_after: u64,
    heap: i64,
    /// VmRSS and RssAnon after the probe's reads, if it was asked to read
    /// (RssAnon leaves out file pages: timecask maps its run files, so the
    /// pages its reads touched count in VmRSS as RssFile, page cache that
    /// the kernel can drop).
    rss_reads: u64,
    anon_reads: u64,
    /// timecask's `Stats::opened_from_checkpoint`.
    from_checkpoint: bool,
}

/// `scale probe ENGINE DIR [READS KEYS LAST_TXID]`, ENGINE one of `tc`,
/// `tc-noruns`, `redb`.
fn probe_main(args: &[String]) {
    let engine = args[0].as_str();
    let dir = PathBuf::from(&args[1]);
    let reads: Option<(u64, u64, u64)> = (args.len() >= 5).then(|| {
        (
            args[2].parse().expect("reads"),
            args[3].parse().expect("keys"),
            args[4].parse().expect("last txid"),
        )
    });
    let (rss_before, _) = rss();
    let heap0 = alloc::current();
    let started = Instant::now();
    let mut out = Probe::default();
    let read_all = |get: &dyn Fn(u64, u64) -> bool| -> (u64, u64) {
        let Some((n, keys, last)) = reads else {
            return (0, 0);
        };
        let mut rng = Rng::new(0x5ca1_e000_0000_0099);
        for _ in 0..n {
            let k = rng.below(keys);
            let t = 1 + rng.below(last);
            black_box(get(k, t));
        }
        (rss().0, rss_anon())
    };
    match engine {
        "tc" | "tc-noruns" => {
            let db = Db::open_with(&dir, tc_config(engine == "tc")).expect("timecask open");
            let t = started.elapsed();
            let heap = alloc::current() - heap0;
            let (rss_after, hwm_after) = rss();
            out = Probe {
                open_ns: t.as_nanos() as f64,
                rss_before,
                rss_after,
                hwm_after,
                heap: heap as i64,
                from_checkpoint: db.stats().opened_from_checkpoint,
                ..out
            };
            (out.rss_reads, out.anon_reads) = read_all(&|k, t| {
                db.as_of(TxId(t))
                    .expect("as_of")
                    .get(TABLE, user_key(k))
                    .expect("get")
                    .is_some()
            });
            drop(db);
        }
        "redb" => {
            let db = Redb::open(&dir);
            let t = started.elapsed();
            let heap = alloc::current() - heap0;
            let (rss_after, hwm_after) = rss();
            out = Probe {
                open_ns: t.as_nanos() as f64,
                rss_before,
                rss_after,
                hwm_after,
                heap: heap as i64,
                ..out
            };
            (out.rss_reads, out.anon_reads) = read_all(&|k, t| db.as_of(k, t).is_some());
            drop(db);
        }
        other => panic!("probe engine {other:?}"),
    }
    println!(
        "PROBE {} {} {} {} {} {} {} {}",
        out.open_ns,
        out.rss_before,
        out.rss_after,
        out.hwm_after,
        out.heap,
        out.rss_reads,
        out.anon_reads,
        u8::from(out.from_checkpoint)
    );
}

fn run_probe(engine: &str, dir: &Path, cold: bool, reads: Option<(u64, u64, u64)>) -> Probe {
    if cold {
        cache::evict(&cache::files_under(dir));
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.arg("probe").arg(engine).arg(dir);
    if let Some((n, k, t)) = reads {
        cmd.arg(n.to_string()).arg(k.to_string()).arg(t.to_string());
    }
    let out = cmd.output().expect("spawn probe");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("PROBE "))
        .unwrap_or_else(|| {
            panic!(
                "probe {engine} {} failed: {}\n{}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let f: Vec<f64> = line[6..]
        .split(' ')
        .map(|x| x.parse().expect("probe number"))
        .collect();
    Probe {
        open_ns: f[0],
        rss_before: f[1] as u64,
        rss_after: f[2] as u64,
        hwm_after: f[3] as u64,
        heap: f[4] as i64,
        rss_reads: f[5] as u64,
        anon_reads: f[6] as u64,
        from_checkpoint: f[7] == 1.0,
    }
}

/// Opens: warm (after one untimed open) and cold, `rounds` each, each in a
/// fresh process; and one more probe that reads after the open.
#[derive(Clone, Debug, Default)]
struct Opens {
    warm: Vec<Probe>,
    cold: Vec<Probe>,
    reads: Probe,
}

impl Opens {
    fn warm_ms(&self) -> f64 {
        median(&self.warm.iter().map(|p| p.open_ns).collect::<Vec<_>>())
    }
    fn cold_ms(&self) -> f64 {
        median(&self.cold.iter().map(|p| p.open_ns).collect::<Vec<_>>())
    }
    fn rss_delta(&self) -> f64 {
        median(
            &self
                .warm
                .iter()
                .map(|p| p.rss_after as f64 - p.rss_before as f64)
                .collect::<Vec<_>>(),
        )
    }
    fn hwm(&self) -> f64 {
        median(
            &self
                .warm
                .iter()
                .map(|p| p.hwm_after as f64)
                .collect::<Vec<_>>(),
        )
    }
    /// Peak during the open above the resident size before it.
    fn peak_delta(&self) -> f64 {
        median(
            &self
                .warm
                .iter()
                .map(|p| p.hwm_after as f64 - p.rss_before as f64)
                .collect::<Vec<_>>(),
        )
    }
    fn heap(&self) -> f64 {
        median(&self.warm.iter().map(|p| p.heap as f64).collect::<Vec<_>>())
    }
}

fn measure_opens(engine: &str, dir: &Path, rounds: usize, shape: &Shape) -> Opens {
    let mut o = Opens::default();
    run_probe(engine, dir, false, None);
    for _ in 0..rounds {
        o.warm.push(run_probe(engine, dir, false, None));
        o.cold.push(run_probe(engine, dir, true, None));
    }
    warm_files(&cache::files_under(dir));
    o.reads = run_probe(
        engine,
        dir,
        false,
        Some((20_000, shape.keys, shape.last_txid())),
    );
    o
}

// ---------------------------------------------------------------------------
// Building.

#[derive(Clone, Debug, Default)]
struct Build {
    time: Duration,
    compactions: usize,
    compact_time: Duration,
    compact_max: Duration,
    /// History runs live at the end of the build (after the final
    /// compaction, if any): how many runs a history read searches.
    runs: usize,
    /// VmHWM of the bench process at the end of the build.
    hwm: u64,
}

fn tc<T>(r: timecask::Result<T>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e} ({e:?})"))
}

fn build_timecask(
    dir: &Path,
    shape: &Shape,
    runs: bool,
    compact_every_tx: Option<u64>,
    final_compact: bool,
) -> Result<Build, String> {
    let db = tc(Db::open_with(dir, tc_config(runs)), "open for build")?;
    let mut b = Build::default();
    let started = Instant::now();
    let total_tx = shape.last_txid();
    let mut done_tx = 0u64;
    let mut last_report = Instant::now();
    for round in 0..shape.versions {
        for c in 0..shape.chunks() {
            let mut tx = db.begin();
            for k in c * BATCH..((c + 1) * BATCH).min(shape.keys) {
                tc(
                    tx.put(TABLE, user_key(k), value(k, round)),
                    &format!("put round {round} key {k}"),
                )?;
            }
            let got = tc(tx.commit(), &format!("commit round {round} chunk {c}"))?;
            let want = shape.txid(c * BATCH, round);
            if got != Some(TxId(want)) {
                return Err(format!("commit returned {got:?}, expected txid {want}"));
            }
            done_tx += 1;
            if runs
                && compact_every_tx.is_some_and(|every| done_tx.is_multiple_of(every))
                && done_tx < total_tx
            {
                let t = Instant::now();
                tc(db.compact(), &format!("compact after txid {want}"))?;
                let d = t.elapsed();
                b.compactions += 1;
                b.compact_time += d;
                b.compact_max = b.compact_max.max(d);
            }
            if last_report.elapsed() > Duration::from_secs(30) {
                last_report = Instant::now();
                let (r, h) = rss();
                eprintln!(
                    "  {}: {done_tx}/{total_tx} tx, {:.0?}, rss {} (peak {}, anon now {}), {} compactions ({:.1?})",
                    shape.name,
                    started.elapsed(),
                    fmt_bytes(r as f64),
                    fmt_bytes(h as f64),
                    fmt_bytes(rss_anon() as f64),
                    b.compactions,
                    b.compact_time
                );
            }
        }
    }
    tc(db.flush(), "flush")?;
    if runs && final_compact {
        let t = Instant::now();
        tc(db.compact(), "final compact")?;
        let d = t.elapsed();
        b.compactions += 1;
        b.compact_time += d;
        b.compact_max = b.compact_max.max(d);
    } else if !runs {
        tc(db.checkpoint(), "checkpoint")?;
    }
    // Without a final compaction, the clean close seals a tail of 10,000+
    // versions.
    drop(db);
    b.time = started.elapsed();
    b.hwm = rss().1;
    if runs {
        let db = tc(
            Db::open_with(dir, tc_config(runs)),
            "reopen after the build",
        )?;
        b.runs = db.stats().history_runs;
    }
    Ok(b)
}

fn build_redb(dir: &Path, shape: &Shape) -> Build {
    let r = Redb::create(dir);
    let started = Instant::now();
    let mut val = [0u8; 61];
    for round in 0..shape.versions {
        val[0] = if round == 0 { OP_INSERT } else { OP_UPDATE };
        for c in 0..shape.chunks() {
            let txid = shape.txid(c * BATCH, round);
            let mut w = r.db.begin_write().expect("begin_write");
            w.set_durability(redb::Durability::None)
                .expect("set_durability");
            {
                let mut versions = w.open_table(REDB_VERSIONS).expect("open versions");
                let mut txs = w.open_table(REDB_TRANSACTIONS).expect("open transactions");
                for k in c * BATCH..((c + 1) * BATCH).min(shape.keys) {
                    val[1..].copy_from_slice(&value(k, round));
                    versions
                        .insert(&version_key(k, txid)[..], &val[..])
                        .expect("insert");
                }
                txs.insert(txid, timecask_bench_compare::now_micros())
                    .expect("insert");
            }
            w.commit().expect("commit");
        }
    }
    let mut w = r.db.begin_write().expect("begin_write");
    w.set_durability(redb::Durability::Immediate)
        .expect("set_durability");
    w.commit().expect("commit");
    drop(r);
    Build {
        time: started.elapsed(),
        hwm: rss().1,
        ..Build::default()
    }
}

// ---------------------------------------------------------------------------
// Reads.

#[derive(Clone, Debug, Default)]
struct Reads {
    as_of_warm: Lat,
    as_of_cold: Lat,
    history_warm: Lat,
    history_cold: Lat,
    /// Fraction of the files' pages still cached right after an eviction.
    resident_after_evict: f64,
    checked: u64,
}

/// A database under test, for the reads.
trait Target {
    fn open(dir: &Path) -> Self;
    /// The as-of read; the value bytes.
    fn as_of(&self, key: u64, t: u64) -> Option<Vec<u8>>;
    /// The history: (txid, value) oldest first.
    fn history(&self, key: u64) -> Vec<(u64, Vec<u8>)>;
}

struct TcTarget(Db);

impl Target for TcTarget {
    fn open(dir: &Path) -> Self {
        TcTarget(Db::open_with(dir, tc_config(true)).expect("timecask open"))
    }
    fn as_of(&self, key: u64, t: u64) -> Option<Vec<u8>> {
        self.0
            .as_of(TxId(t))
            .expect("as_of")
            .get(TABLE, user_key(key))
            .expect("get")
    }
    fn history(&self, key: u64) -> Vec<(u64, Vec<u8>)> {
        self.0
            .snapshot()
            .history(TABLE, user_key(key), HistoryQuery::all())
            .expect("history")
            .into_iter()
            .map(|v| (v.txid.0, v.value.expect("no deletes")))
            .collect()
    }
}

struct RedbTarget(Redb);

impl Target for RedbTarget {
    fn open(dir: &Path) -> Self {
        RedbTarget(Redb::open(dir))
    }
    fn as_of(&self, key: u64, t: u64) -> Option<Vec<u8>> {
        self.0.as_of(key, t)
    }
    fn history(&self, key: u64) -> Vec<(u64, Vec<u8>)> {
        self.0
            .history(key)
            .into_iter()
            .map(|v| (v.txid, v.value.expect("no deletes")))
            .collect()
    }
}

fn check_as_of(shape: &Shape, key: u64, t: u64, got: &Option<Vec<u8>>) {
    let want = shape.visible_round(key, t).map(|r| value(key, r).to_vec());
    assert_eq!(*got, want, "as-of read of key {key} at txid {t}");
}

fn check_history(shape: &Shape, key: u64, got: &[(u64, Vec<u8>)]) {
    assert_eq!(
        got.len() as u64,
        shape.versions,
        "history length of key {key}"
    );
    for (r, (txid, v)) in got.iter().enumerate() {
        assert_eq!(
            *txid,
            shape.txid(key, r as u64),
            "txid of version {r} of key {key}"
        );
        assert_eq!(v[..], value(key, r as u64)[..], "version {r} of key {key}");
    }
}

fn measure_reads<T: Target>(dir: &Path, shape: &Shape, warm_ops: usize, cold_ops: usize) -> Reads {
    let mut out = Reads::default();
    let files = cache::files_under(dir);
    let mut rng = Rng::new(0x5ca1_e000_0000_0077);
    // Warm: every file in the page cache, one handle; first a pass of
    // untimed reads so that the engine's own caches are as they would be.
    warm_files(&files);
    {
        let db = T::open(dir);
        for _ in 0..warm_ops / 4 {
            black_box(db.as_of(rng.below(shape.keys), 1 + rng.below(shape.last_txid())));
        }
        for _ in 0..warm_ops {
            let (k, t) = (rng.below(shape.keys), 1 + rng.below(shape.last_txid()));
            let s = Instant::now();
            let got = db.as_of(k, t);
            out.as_of_warm.push(s.elapsed());
            check_as_of(shape, k, t, &got);
            out.checked += 1;
        }
        for _ in 0..warm_ops / 10 {
            let k = rng.below(shape.keys);
            let s = Instant::now();
            let got = db.history(k);
            out.history_warm.push(s.elapsed());
            check_history(shape, k, &got);
            out.checked += 1;
        }
    }
    // Cold: a fresh handle, then the files evicted, then one timed read.
    for i in 0..cold_ops * 2 {
        let db = T::open(dir);
        cache::evict(&files);
        if i == 0 {
            out.resident_after_evict = cache::resident_fraction(&files);
        }
        let k = rng.below(shape.keys);
        if i % 2 == 0 {
            let t = 1 + rng.below(shape.last_txid());
            let s = Instant::now();
            let got = db.as_of(k, t);
            out.as_of_cold.push(s.elapsed());
            check_as_of(shape, k, t, &got);
        } else {
            let s = Instant::now();
            let got = db.history(k);
            out.history_cold.push(s.elapsed());
            check_history(shape, k, &got);
        }
        out.checked += 1;
        drop(db);
    }
    out
}

// ---------------------------------------------------------------------------
// One size.

#[derive(Clone, Debug, Default)]
struct EngineResult {
    build: Build,
    disk: u64,
    run_disk: u64,
    opens: Opens,
    reads: Reads,
}

#[derive(Clone, Debug)]
struct SizeResult {
    shape: Shape,
    compact_every_tx: Option<u64>,
    tc: Result<EngineResult, String>,
    baseline: Option<Result<EngineResult, String>>,
    redb: Option<EngineResult>,
}

struct Args {
    sizes: Vec<Shape>,
    redb: bool,
    baseline: bool,
    dir: PathBuf,
    keep: bool,
    rounds: usize,
    warm_ops: usize,
    cold_ops: usize,
    compact_every: Option<u64>,
    /// `Db::compact` after the build (one run), or not (`--no-final-compact`:
    /// the runs background sealing left).
    final_compact: bool,
}

fn run_size(args: &Args, shape: Shape) -> SizeResult {
    let root = tempfile::Builder::new()
        .prefix(&format!("timecask-scale-{}-", shape.name))
        .tempdir_in(&args.dir)
        .expect("tempdir");
    // Compactions during the build only if asked for (whole
    // transactions); otherwise the background sealer seals and merges by
    // size, as it would for any application.
    let compact_every_tx = args
        .compact_every
        .map(|every_versions| (every_versions / BATCH.min(shape.keys)).max(1));
    let mut res = SizeResult {
        shape,
        compact_every_tx,
        tc: Err("not run".into()),
        baseline: None,
        redb: None,
    };

    let dir = root.path().join("timecask");
    eprintln!(
        "[{}] timecask build: {} keys × {} versions, compact every {compact_every_tx:?} tx, final compaction: {}",
        shape.name, shape.keys, shape.versions, args.final_compact
    );
    res.tc = (|| {
        let build = build_timecask(&dir, &shape, true, compact_every_tx, args.final_compact)?;
        eprintln!("[{}] built in {:.1?}", shape.name, build.time);
        let (disk, run_disk) = dir_bytes(&dir);
        eprintln!("[{}] opens", shape.name);
        let opens = measure_opens("tc", &dir, args.rounds, &shape);
        eprintln!("[{}] reads", shape.name);
        let reads = measure_reads::<TcTarget>(&dir, &shape, args.warm_ops, args.cold_ops);
        Ok(EngineResult {
            build,
            disk,
            run_disk,
            opens,
            reads,
        })
    })();
    if let Err(e) = &res.tc {
        eprintln!("[{}] timecask FAILED: {e}", shape.name);
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }

    if args.baseline && shape.n() <= 10_000_000 {
        let dir = root.path().join("timecask-noruns");
        eprintln!("[{}] baseline build (history_runs: false)", shape.name);
        res.baseline = Some((|| {
            let build = build_timecask(&dir, &shape, false, None, false)?;
            let (disk, _) = dir_bytes(&dir);
            let opens = measure_opens("tc-noruns", &dir, args.rounds, &shape);
            Ok(EngineResult {
                build,
                disk,
                run_disk: 0,
                opens,
                reads: Reads::default(),
            })
        })());
        if !args.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    if args.redb && shape.n() <= 10_000_000 {
        let dir = root.path().join("redb");
        std::fs::create_dir_all(&dir).expect("mkdir");
        eprintln!("[{}] redb build", shape.name);
        let build = build_redb(&dir, &shape);
        eprintln!("[{}] redb built in {:.1?}", shape.name, build.time);
        let (disk, _) = dir_bytes(&dir);
        let opens = measure_opens("redb", &dir, args.rounds, &shape);
        let reads = measure_reads::<RedbTarget>(&dir, &shape, args.warm_ops, args.cold_ops);
        res.redb = Some(EngineResult {
            build,
            disk,
            run_disk: 0,
            opens,
            reads,
        });
        if !args.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    if args.keep {
        eprintln!("[{}] kept in {}", shape.name, root.keep().display());
    }
    res
}

// ---------------------------------------------------------------------------
// Report.

fn report(results: &[SizeResult], args: &Args, elapsed: Duration) -> String {
    let mut s = String::new();
    let machine = format!(
        "{} cores, {} RAM, load average at the end {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m
                .lines()
                .next()
                .map(|l| l.trim_start_matches("MemTotal:").trim().to_string()))
            .unwrap_or_default(),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    );
    if let Ok(m) = std::env::var("SCALE_BLOCK_CACHE_MIB") {
        s += &format!("DIAGNOSTIC RUN: timecask block_cache_bytes = {m} MiB (default 64 MiB)\n\n");
    }
    s += &format!(
        "scale bench: {} rounds per open measurement, {} warm as-of reads and {} warm histories, \
         {} cold as-of reads and {} cold histories per engine; {machine}; took {:.0?}\n\n",
        args.rounds,
        args.warm_ops,
        args.warm_ops / 10,
        args.cold_ops,
        args.cold_ops,
        elapsed
    );
    s += "| size | shape | build | rate | compactions (total / longest) | runs | open warm | open cold | RSS Δ after open | VmHWM after open | heap after open | RSS after 20k reads (anon) | disk B/version | run B/version | as-of warm p50 / p99 | as-of cold p50 / p99 | history warm p50 / p99 | history cold p50 / p99 |\n";
    s += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    let line = |name: &str, shape: &Shape, e: &EngineResult, compactions: bool| -> String {
        let n = shape.n() as f64;
        let r = &e.reads;
        let pair = |l: &Lat| {
            if l.ns.is_empty() {
                "–".to_string()
            } else {
                format!("{} / {}", fmt_ns(l.p50()), fmt_ns(l.p99()))
            }
        };
        let after_reads = format!(
            "{} (anon {})",
            fmt_bytes(e.opens.reads.rss_reads as f64),
            fmt_bytes(e.opens.reads.anon_reads as f64)
        );
        format!(
            "| {name} | {} keys × {} | {:.1} s | {:.0} k versions/s | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} |\n",
            shape.keys,
            shape.versions,
            e.build.time.as_secs_f64(),
            n / e.build.time.as_secs_f64() / 1e3,
            if compactions {
                format!(
                    "{} ({:.1} s / {:.1} s)",
                    e.build.compactions,
                    e.build.compact_time.as_secs_f64(),
                    e.build.compact_max.as_secs_f64()
                )
            } else {
                "–".into()
            },
            if compactions {
                e.build.runs.to_string()
            } else {
                "–".into()
            },
            fmt_ns(e.opens.warm_ms()),
            fmt_ns(e.opens.cold_ms()),
            fmt_bytes(e.opens.rss_delta()),
            fmt_bytes(e.opens.hwm()),
            fmt_bytes(e.opens.heap()),
            after_reads,
            e.disk as f64 / n,
            if e.run_disk > 0 {
                format!("{:.1}", e.run_disk as f64 / n)
            } else {
                "–".into()
            },
            pair(&r.as_of_warm),
            pair(&r.as_of_cold),
            pair(&r.history_warm),
            pair(&r.history_cold),
        )
    };
    let mut failures = Vec::new();
    for res in results {
        let sh = &res.shape;
        match &res.tc {
            Ok(e) => s += &line(&format!("{} timecask", sh.name), sh, e, true),
            Err(err) => failures.push(format!("{} timecask: {err}", sh.name)),
        }
        if let Some(b) = &res.baseline {
            match b {
                Ok(e) => {
                    s += &line(
                        &format!("{} timecask, history_runs: false", sh.name),
                        sh,
                        e,
                        false,
                    )
                }
                Err(err) => failures.push(format!("{} baseline: {err}", sh.name)),
            }
        }
        if let Some(e) = &res.redb {
            s += &line(&format!("{} redb", sh.name), sh, e, false);
        }
    }
    s += "\n";
    for res in results {
        if let Ok(e) = &res.tc {
            s += &format!(
                "{}: {}; \
                 baseline opened from its checkpoint: {}; {} reads checked against the written data; page-cache residency right after an eviction: {:.1}% ({}: {:.1}%)\n",
                res.shape.name,
                match (res.compact_every_tx, args.final_compact) {
                    (Some(every), true) => format!(
                        "compaction every {every} transactions ({} versions) and at the end (tail after it: 0 versions)",
                        every * BATCH.min(res.shape.keys)
                    ),
                    (Some(every), false) => format!(
                        "compaction every {every} transactions ({} versions), none at the end; the background sealer merges by size, the clean close seals the tail",
                        every * BATCH.min(res.shape.keys)
                    ),
                    (None, true) => "the background sealer seals and merges by size during the build, then one compaction merges every run into one".to_string(),
                    (None, false) => "the background sealer seals and merges by size during the build, no compaction; the clean close seals the tail".to_string(),
                },
                match &res.baseline {
                    Some(Ok(b)) => format!(
                        "{}/{} opens",
                        b.opens
                            .warm
                            .iter()
                            .chain(&b.opens.cold)
                            .filter(|p| p.from_checkpoint)
                            .count(),
                        b.opens.warm.len() + b.opens.cold.len()
                    ),
                    _ => "no baseline".into(),
                },
                e.reads.checked,
                e.reads.resident_after_evict * 100.0,
                if res.redb.is_some() {
                    "redb"
                } else {
                    "no redb"
                },
                res.redb
                    .as_ref()
                    .map_or(0.0, |r| r.reads.resident_after_evict * 100.0),
            );
        }
    }
    // Ratios against redb.
    for res in results {
        if let (Ok(t), Some(r)) = (&res.tc, &res.redb) {
            let x = |redb: f64, tc: f64| redb / tc;
            s += &format!(
                "\n{} timecask vs redb (redb time / timecask time, > 1 means timecask is faster; target in brackets):\n\
                 - cold history of {} versions (p50): {:.2}× [≥ 3×]\n\
                 - warm history (p50): {:.2}× [≥ 2×]\n\
                 - warm as-of point read (p50): {:.2}× [1.5–2×]\n\
                 - cold as-of point read (p50): {:.2}×\n\
                 - open warm (median): {:.2}× [within 2×, i.e. ≥ 0.5×]\n\
                 - open cold (median): {:.2}×\n\
                 - disk: timecask {:.1} B/version, redb {:.1} B/version\n",
                res.shape.name,
                res.shape.versions,
                x(r.reads.history_cold.p50(), t.reads.history_cold.p50()),
                x(r.reads.history_warm.p50(), t.reads.history_warm.p50()),
                x(r.reads.as_of_warm.p50(), t.reads.as_of_warm.p50()),
                x(r.reads.as_of_cold.p50(), t.reads.as_of_cold.p50()),
                x(r.opens.warm_ms(), t.opens.warm_ms()),
                x(r.opens.cold_ms(), t.opens.cold_ms()),
                t.disk as f64 / res.shape.n() as f64,
                r.disk as f64 / res.shape.n() as f64,
            );
        }
    }
    // Projection to 1B versions: a line through the two largest sizes
    // measured (or proportional to the largest, if only one).
    let ok: Vec<(&Shape, &EngineResult)> = results
        .iter()
        .filter_map(|r| r.tc.as_ref().ok().map(|e| (&r.shape, e)))
        .collect();
    if let Some(&(s2, e2)) = ok.last() {
        let n2 = s2.n() as f64;
        let proj = |f: &dyn Fn(&EngineResult) -> f64| -> (f64, f64) {
            let y2 = f(e2);
            if ok.len() >= 2 {
                let (s1, e1) = ok[ok.len() - 2];
                let n1 = s1.n() as f64;
                let slope = (y2 - f(e1)) / (n2 - n1);
                (slope, y2 + slope * (1e9 - n2))
            } else {
                (y2 / n2, y2 / n2 * 1e9)
            }
        };
        s += &format!(
            "\nProjection to 1,000,000,000 versions (timecask, history runs; linear through {}):\n",
            if ok.len() >= 2 {
                format!("{} and {}", ok[ok.len() - 2].0.name, s2.name)
            } else {
                format!("0 and {}", s2.name)
            }
        );
        let (m_slope, m) = proj(&|e| e.opens.rss_delta());
        let (h_slope, h) = proj(&|e| e.opens.peak_delta());
        let (d_slope, d) = proj(&|e| e.disk as f64);
        let (o_slope, o) = proj(&|e| e.opens.warm_ms());
        let (c_slope, c) = proj(&|e| e.opens.cold_ms());
        s += &format!(
            "- resident after open: {:.3} B/version → {} (peak above the pre-open RSS {:.3} B/version → {}); 24 GiB {}\n\
             - disk: {:.1} B/version → {}\n\
             - open warm: {:.3} ns/version → {}; open cold: {:.3} ns/version → {}\n",
            m_slope,
            fmt_bytes(m),
            h_slope,
            fmt_bytes(h),
            if h < 24.0 * 1024.0 * 1024.0 * 1024.0 {
                "holds it"
            } else {
                "does not hold it"
            },
            d_slope,
            fmt_bytes(d),
            o_slope,
            fmt_ns(o),
            c_slope,
            fmt_ns(c)
        );
        let base: Vec<(&Shape, &EngineResult)> = results
            .iter()
            .filter_map(|r| match &r.baseline {
                Some(Ok(e)) => Some((&r.shape, e)),
                _ => None,
            })
            .collect();
        if let Some(&(bs, be)) = base.last() {
            let per = be.opens.rss_delta() / bs.n() as f64;
            s += &format!(
                "- history_runs: false (measured at {}): {:.1} B/version resident after open → {} at 1B \
                 ({} the 24 GiB machine)\n",
                bs.name,
                per,
                fmt_bytes(per * 1e9),
                if per * 1e9 < 24.0 * 1024.0 * 1024.0 * 1024.0 {
                    "fits"
                } else {
                    "does not fit"
                }
            );
        }
    }
    if !failures.is_empty() {
        s += "\nFailures:\n";
        for f in failures {
            s += &format!("- {f}\n");
        }
    }
    s
}

fn parse_args() -> Args {
    let mut args = Args {
        sizes: vec![Shape::parse("1m"), Shape::parse("10m")],
        redb: false,
        baseline: true,
        dir: std::env::temp_dir(),
        keep: false,
        rounds: 5,
        warm_ops: 20_000,
        cold_ops: 100,
        compact_every: None,
        final_compact: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match a.as_str() {
            "--sizes" => {
                args.sizes = val("--sizes")
                    .split(',')
                    .map(|s| Shape::parse(s.trim()))
                    .collect()
            }
            "--redb" => args.redb = true,
            "--no-final-compact" => args.final_compact = false,
            "--no-baseline" => args.baseline = false,
            "--keep" => args.keep = true,
            "--dir" => args.dir = val("--dir").into(),
            "--rounds" => args.rounds = val("--rounds").parse().expect("--rounds"),
            "--warm-ops" => args.warm_ops = val("--warm-ops").parse().expect("--warm-ops"),
            "--cold-ops" => args.cold_ops = val("--cold-ops").parse().expect("--cold-ops"),
            "--compact-every" => {
                args.compact_every = Some(val("--compact-every").parse().expect("versions"))
            }
            "-h" | "--help" => {
                eprintln!(
                    "usage: scale [--sizes 1m,10m,200m|KxV,..] [--redb] [--no-baseline] [--dir PATH] [--keep]\n\
                     \x20            [--rounds 5] [--warm-ops 20000] [--cold-ops 100] [--compact-every VERSIONS] [--no-final-compact]"
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
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("probe") {
        probe_main(&argv[2..]);
        return;
    }
    let args = parse_args();
    std::fs::create_dir_all(&args.dir).expect("create --dir");
    let started = Instant::now();
    let mut results = Vec::new();
    for &shape in &args.sizes {
        let t = Instant::now();
        let r = run_size(&args, shape);
        eprintln!("[{}] done in {:.0?}", shape.name, t.elapsed());
        results.push(r);
        // The report so far, in case a later size is stopped.
        eprintln!("{}", report(&results, &args, started.elapsed()));
    }
    println!("{}", report(&results, &args, started.elapsed()));
}
