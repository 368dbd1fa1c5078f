//! timecask against the stacks its users would otherwise pick: SQLite with
//! SQLAlchemy-Continuum's schema and validity strategy, sled 0.34.7, redb,
//! LMDB (through heed) and fjall, all driven through one [`Engine`] trait
//! with one seeded workload.
//!
//! The workload (issue 8): `K` user rows (`name`, `email`, `age`, ~60-byte
//! values) inserted by transaction 1, then `U` single-row update
//! transactions (a random user gets a new age), then `H` single-row updates
//! of one extra "hot" user so that one key has `H` versions. Transaction ids
//! are the same in every engine: txid 1 is the load, update `i` (0-based) is
//! txid `2 + i`, the hot updates follow.
//!
//! The one-command run is `src/main.rs`; the criterion benches are
//! `benches/compare.rs`. Both use this library.

use std::path::Path;

pub mod alloc;
pub mod cache;
pub mod engines;

pub use engines::fjall::Fjall;
pub use engines::lmdb::Lmdb;
pub use engines::redb::Redb;
pub use engines::sled::Sled;
pub use engines::sqlite::Sqlite;
pub use engines::timecask::Timecask;

/// Name of the versioned table in every engine.
pub const TABLE: &str = "user";

/// Operation codes, Continuum's `operation_type` (0 insert, 1 update, 2
/// delete); the KV engines store the same byte in front of each value.
pub const OP_INSERT: u8 = 0;
/// See [`OP_INSERT`].
pub const OP_UPDATE: u8 = 1;
/// See [`OP_INSERT`].
pub const OP_DELETE: u8 = 2;

// ---------------------------------------------------------------------------
// Sizes.

/// How big the run is.
#[derive(Clone, Debug)]
pub struct Params {
    /// Regular user rows (ids `1..=k`); the hot row is id `k + 1`.
    pub k: u64,
    /// Single-row update transactions on random regular users.
    pub u: u64,
    /// Single-row update transactions on the hot user.
    pub h: u64,
    /// Durable (fsync per commit) single-row updates measured at the end
    /// (in total over all rounds).
    pub durable_commits: u64,
    /// Buffered single-row updates measured at the end, SQLite with
    /// `synchronous=OFF` (in total over all rounds).
    pub off_commits: u64,
    /// As-of and latest point reads, each, per round.
    pub point_reads: usize,
    /// Histories of random regular keys (~`u / k` versions each), per round.
    pub history_reads: usize,
    /// Histories of the hot key (`h + 1` versions), per round.
    pub hot_history_reads: usize,
    /// Whole-table as-of scans, per round.
    pub scans: usize,
    /// Rounds: each read, open and commit measurement is repeated this
    /// many times, the engines taking turns within a round, so that load
    /// from other work on the machine falls on all of them alike.
    pub rounds: usize,
}

impl Params {
    /// The sizes: K = 10,000, U = 200,000, one key with 100,000
    /// versions.
    pub fn full() -> Params {
        Params {
            k: 10_000,
            u: 200_000,
            h: 100_000,
            durable_commits: 3_000,
            off_commits: 30_000,
            point_reads: 50_000,
            history_reads: 5_000,
            hot_history_reads: 3,
            scans: 10,
            rounds: 5,
        }
    }

    /// A tenth of everything, for development.
    pub fn quick() -> Params {
        Params {
            k: 1_000,
            u: 20_000,
            h: 10_000,
            durable_commits: 300,
            off_commits: 3_000,
            point_reads: 5_000,
            history_reads: 500,
            hot_history_reads: 3,
            scans: 5,
            rounds: 2,
        }
    }

    /// `full()`, or `quick()` when `BENCH_COMPARE_QUICK` is set to anything
    /// but `0`.
    pub fn from_env() -> Params {
        match std::env::var("BENCH_COMPARE_QUICK") {
            Ok(v) if v != "0" && !v.is_empty() => Params::quick(),
            _ => Params::full(),
        }
    }

    /// The hot user's id.
    pub fn hot_id(&self) -> u64 {
        self.k + 1
    }

    /// Versions in the finished database (before the commit measurements).
    pub fn n_versions(&self) -> u64 {
        self.k + 1 + self.u + self.h
    }

    /// The txid of the last build transaction.
    pub fn last_build_txid(&self) -> u64 {
        1 + self.u + self.h
    }
}

// ---------------------------------------------------------------------------
// Rows.

/// A `user` row, as Continuum's model has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Full name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// Age in years.
    pub age: u32,
}

impl Row {
    /// The KV engines' value: `u8 len | name | u8 len | email | u32 LE age`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.name.len() + self.email.len() + 4);
        self.encode_into(&mut out);
        out
    }

    /// [`Row::encode`] appended to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(u8::try_from(self.name.len()).expect("name under 256 bytes"));
        out.extend_from_slice(self.name.as_bytes());
        out.push(u8::try_from(self.email.len()).expect("email under 256 bytes"));
        out.extend_from_slice(self.email.as_bytes());
        out.extend_from_slice(&self.age.to_le_bytes());
    }

    /// The inverse of [`Row::encode`]; `None` if `bytes` is not one.
    pub fn decode(bytes: &[u8]) -> Option<Row> {
        let (&n, rest) = bytes.split_first()?;
        let name = rest.get(..n as usize)?;
        let rest = &rest[n as usize..];
        let (&e, rest) = rest.split_first()?;
        let email = rest.get(..e as usize)?;
        let age = rest.get(e as usize..)?;
        Some(Row {
            name: String::from_utf8(name.to_vec()).ok()?,
            email: String::from_utf8(email.to_vec()).ok()?,
            age: u32::from_le_bytes(age.try_into().ok()?),
        })
    }
}

/// What an engine hands back for a row, converted for checking only.
pub trait RowOut {
    /// The row it holds.
    fn to_row(&self) -> Row;
}

impl RowOut for Vec<u8> {
    fn to_row(&self) -> Row {
        Row::decode(self).expect("a stored row decodes")
    }
}

impl RowOut for Row {
    fn to_row(&self) -> Row {
        self.clone()
    }
}

/// How a commit must reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// fsynced before commit returns (SQLite `synchronous=FULL`, sled
    /// `flush()`, redb `Durability::Immediate`, LMDB's default sync, fjall
    /// `PersistMode::SyncAll`, timecask `Immediate`).
    Durable,
    /// Not fsynced per commit (SQLite `synchronous=NORMAL`, sled without
    /// `flush()`, redb `Durability::None`, LMDB `NO_SYNC`, fjall without
    /// persist, timecask `Buffered`).
    Buffered,
    /// SQLite `synchronous=OFF`; the same as `Buffered` elsewhere.
    Off,
}

/// One version from a history read, for checking: txid, end txid, op, row.
pub type HistoryLine = (u64, Option<u64>, u8, Option<Row>);

/// One engine, driven by the workload. Every method panics on an engine
/// error: this is benchmark code, and an error means the numbers are void.
pub trait Engine: Sized {
    /// Column title.
    const NAME: &'static str;
    /// A row as the engine returns it (owned).
    type Out: RowOut;
    /// A key's history as the engine returns it (owned).
    type History;

    /// Creates an empty database in the empty directory `dir`.
    fn create(dir: &Path) -> Self;
    /// Opens the database that `create` made in `dir`.
    fn open(dir: &Path) -> Self;
    /// Transaction 1: inserts `rows` as ids `1..=rows.len()`.
    fn load(&mut self, rows: &[Row]);
    /// One transaction, `txid`, that updates user `id` to `row`.
    fn update(&mut self, txid: u64, id: u64, row: &Row, commit: Commit);
    /// The logical transactions `first_txid..` (one update each) written
    /// with as few physical commits as the engine allows; the database ends
    /// up exactly as if `update` had been called for each. Build only.
    fn update_bulk(&mut self, first_txid: u64, updates: &[(u64, Row)]);
    /// Makes everything committed so far durable.
    fn sync(&mut self);
    /// The row `id` as of transaction `txid`.
    fn as_of(&self, id: u64, txid: u64) -> Option<Self::Out>;
    /// The row `id` now.
    fn latest(&self, id: u64) -> Option<Self::Out>;
    /// Every version of row `id`: txid, end txid, op, value, commit time.
    fn history(&self, id: u64) -> Self::History;
    /// Number of versions in `h`.
    fn history_len(h: &Self::History) -> usize;
    /// `h` for checking.
    fn history_lines(h: &Self::History) -> Vec<HistoryLine>;
    /// Every live row as of `txid`, in id order.
    fn scan_as_of(&self, txid: u64) -> Vec<(u64, Self::Out)>;
    /// Bytes of heap the engine keeps outside Rust's global allocator
    /// (SQLite's `sqlite3_memory_used`); `None` when it uses Rust's.
    fn foreign_heap_bytes() -> Option<u64> {
        None
    }
    /// Writes the engine's index checkpoint for a fast open; `false` if it
    /// has none (the others do not replay a log at open).
    fn checkpoint(&mut self) -> bool {
        false
    }
    /// Whether this handle was opened from a checkpoint.
    fn opened_from_checkpoint(&self) -> bool {
        false
    }
    /// Whether `Commit::Off` differs from `Commit::Buffered` (SQLite only).
    const HAS_OFF: bool = false;
    /// Anything worth printing about how the engine ran (query plans).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// The files of the database, for size and page-cache accounting.
    fn files(dir: &Path) -> Vec<std::path::PathBuf> {
        cache::files_under(dir)
    }
}

// ---------------------------------------------------------------------------
// The workload.

/// splitmix64: a tiny seeded PRNG (as in the main crate's benches).
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

const FIRST: &[&str] = &[
    "Alice",
    "Bob",
    "Charlotte",
    "Dmitri",
    "Eleanor",
    "Farid",
    "Gwendolyn",
    "Hiroshi",
    "Ingrid",
    "Jamal",
    "Katarina",
    "Leopold",
    "Marisol",
    "Nikolai",
    "Ottilie",
    "Priyanka",
];
const LAST: &[&str] = &[
    "Andersson",
    "Bergstrom",
    "Castellano",
    "Dubois",
    "Eriksen",
    "Fitzgerald",
    "Gonzalez",
    "Hargreaves",
    "Iwasaki",
    "Johansson",
    "Kowalczyk",
    "Lindqvist",
    "Montgomery",
    "Nakamura",
];

/// Ages run over `AGE_MIN..AGE_MIN + AGE_SPAN`.
const AGE_MIN: u32 = 18;
const AGE_SPAN: u32 = 80;

/// Everything every engine is asked to do, generated once from fixed seeds
/// so every engine gets the same data and the same questions.
pub struct Workload {
    /// Sizes.
    pub p: Params,
    /// Transaction 1: ids `1..=k + 1` (the last is the hot user).
    pub initial: Vec<Row>,
    /// The `U` build updates: txid `2 + i` sets user `.0` to `.1`.
    pub updates: Vec<(u64, Row)>,
    /// The `H` hot updates, txids after the build updates.
    pub hot_updates: Vec<(u64, Row)>,
    /// Measured after everything else: durable commits, then SQLite OFF
    /// commits; txids continue after the build.
    pub tail_updates: Vec<(u64, Row)>,
    /// As-of point reads: `(id, txid)`, txid uniform in `1..=1 + U`.
    pub as_of_queries: Vec<(u64, u64)>,
    /// Latest point reads: ids.
    pub latest_queries: Vec<u64>,
    /// History reads of regular users: ids.
    pub history_ids: Vec<u64>,
    /// Whole-table as-of scans: txids uniform in `1..=1 + U`.
    pub scan_txids: Vec<u64>,
    /// For checking: per id, the txids of its versions and the age each set.
    chains: Vec<Vec<(u64, u32)>>,
}

impl Workload {
    /// Generates the workload for `p`.
    pub fn new(p: Params) -> Workload {
        let mut rng = Rng::new(0x7133_ca5c_0008_0001);
        let n_rows = p.k + 1;
        let mut initial = Vec::with_capacity(n_rows as usize);
        for id in 1..=n_rows {
            let first = FIRST[rng.below(FIRST.len() as u64) as usize];
            let last = LAST[rng.below(LAST.len() as u64) as usize];
            initial.push(Row {
                name: format!("{first} {last}"),
                email: format!(
                    "{}.{}{id}@mail.example.com",
                    first.to_lowercase(),
                    last.to_lowercase()
                ),
                age: AGE_MIN + rng.below(u64::from(AGE_SPAN)) as u32,
            });
        }
        let mut current = initial.clone();
        let mut chains: Vec<Vec<(u64, u32)>> = initial.iter().map(|r| vec![(1, r.age)]).collect();
        let mut txid = 1u64;
        // An update always changes the age, so every update records a
        // version in every engine (timecask and Continuum both skip
        // identical updates).
        let mut bump = |rng: &mut Rng, id: u64, txid: u64| -> (u64, Row) {
            let row = &mut current[(id - 1) as usize];
            let step = 1 + rng.below(u64::from(AGE_SPAN) - 1) as u32;
            row.age = AGE_MIN + (row.age - AGE_MIN + step) % AGE_SPAN;
            chains[(id - 1) as usize].push((txid, row.age));
            (id, row.clone())
        };
        let mut updates = Vec::with_capacity(p.u as usize);
        for _ in 0..p.u {
            txid += 1;
            let id = 1 + rng.below(p.k);
            updates.push(bump(&mut rng, id, txid));
        }
        let mut hot_updates = Vec::with_capacity(p.h as usize);
        for _ in 0..p.h {
            txid += 1;
            hot_updates.push(bump(&mut rng, p.hot_id(), txid));
        }
        let mut tail_updates = Vec::new();
        for _ in 0..p.durable_commits + p.off_commits {
            txid += 1;
            let id = 1 + rng.below(p.k);
            tail_updates.push(bump(&mut rng, id, txid));
        }

        let span = 1 + p.u;
        let mut rng = Rng::new(0x7133_ca5c_0008_0002);
        let as_of_queries = (0..p.point_reads)
            .map(|_| (1 + rng.below(p.k), 1 + rng.below(span)))
            .collect();
        let mut rng = Rng::new(0x7133_ca5c_0008_0003);
        let latest_queries = (0..p.point_reads).map(|_| 1 + rng.below(p.k)).collect();
        let mut rng = Rng::new(0x7133_ca5c_0008_0004);
        let history_ids = (0..p.history_reads).map(|_| 1 + rng.below(p.k)).collect();
        let mut rng = Rng::new(0x7133_ca5c_0008_0005);
        let scan_txids = (0..p.scans).map(|_| 1 + rng.below(span)).collect();
        Workload {
            p,
            initial,
            updates,
            hot_updates,
            tail_updates,
            as_of_queries,
            latest_queries,
            history_ids,
            scan_txids,
            chains,
        }
    }

    /// Every row as the build leaves it (ids `1..=k + 1`).
    pub fn rows_after_build(&self) -> Vec<Row> {
        let last = self.p.last_build_txid();
        self.initial
            .iter()
            .enumerate()
            .map(|(i, r)| Row {
                age: self
                    .expected_age(i as u64 + 1, last)
                    .expect("every row exists"),
                ..r.clone()
            })
            .collect()
    }

    /// Average encoded value size of the initial rows.
    pub fn mean_value_len(&self) -> f64 {
        let total: usize = self.initial.iter().map(|r| r.encode().len()).sum();
        total as f64 / self.initial.len() as f64
    }

    /// The expected age of `id` as of `txid` (only for txids of the build).
    pub fn expected_age(&self, id: u64, txid: u64) -> Option<u32> {
        let chain = &self.chains[(id - 1) as usize];
        let i = chain.partition_point(|(t, _)| *t <= txid);
        (i > 0).then(|| chain[i - 1].1)
    }

    /// The txids of `id`'s versions written by the build.
    pub fn expected_history(&self, id: u64) -> Vec<u64> {
        let last = self.p.last_build_txid();
        self.chains[(id - 1) as usize]
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| *t <= last)
            .collect()
    }

    /// Versions of `id` written by the build.
    pub fn history_len(&self, id: u64) -> usize {
        self.expected_history(id).len()
    }

    /// Builds the database in `engine`: the load (timed: the first
    /// duration returned), the `U` updates one transaction each with
    /// `Commit::Buffered` (timed: the second), then the hot updates (as few
    /// physical commits as the engine allows when `bulk_hot`, untimed), then
    /// `sync`.
    pub fn build<E: Engine>(
        &self,
        engine: &mut E,
        bulk_hot: bool,
    ) -> (std::time::Duration, std::time::Duration) {
        let started = std::time::Instant::now();
        engine.load(&self.initial);
        let load = started.elapsed();
        let started = std::time::Instant::now();
        for (i, (id, row)) in self.updates.iter().enumerate() {
            engine.update(2 + i as u64, *id, row, Commit::Buffered);
        }
        let elapsed = started.elapsed();
        let first_hot = 2 + self.p.u;
        if bulk_hot {
            for (c, chunk) in self.hot_updates.chunks(1_000).enumerate() {
                engine.update_bulk(first_hot + (c * 1_000) as u64, chunk);
            }
        } else {
            for (i, (id, row)) in self.hot_updates.iter().enumerate() {
                engine.update(first_hot + i as u64, *id, row, Commit::Buffered);
            }
        }
        engine.sync();
        (load, elapsed)
    }

    /// Checks `engine`'s answers against the model on a sample of every
    /// kind of read; panics on the first wrong answer.
    pub fn check<E: Engine>(&self, engine: &E) {
        let name = E::NAME;
        for &(id, txid) in self.as_of_queries.iter().take(500) {
            let got = engine.as_of(id, txid).map(|r| r.to_row().age);
            assert_eq!(
                got,
                self.expected_age(id, txid),
                "{name}: as_of({id}, {txid})"
            );
        }
        let last = self.p.last_build_txid();
        for &id in self.latest_queries.iter().take(500) {
            let got = engine.latest(id).map(|r| r.to_row());
            let want = self.expected_age(id, last);
            assert_eq!(got.as_ref().map(|r| r.age), want, "{name}: latest({id})");
            let got = got.expect("checked above");
            let init = &self.initial[(id - 1) as usize];
            assert_eq!((&got.name, &got.email), (&init.name, &init.email));
        }
        for &id in self
            .history_ids
            .iter()
            .take(50)
            .chain([self.p.hot_id()].iter())
        {
            let h = engine.history(id);
            let lines = E::history_lines(&h);
            let txids: Vec<u64> = lines.iter().map(|l| l.0).collect();
            assert_eq!(
                txids,
                self.expected_history(id),
                "{name}: history({id}) txids"
            );
            for (i, (txid, end, op, row)) in lines.iter().enumerate() {
                assert_eq!(*end, txids.get(i + 1).copied(), "{name}: end_txid");
                assert_eq!(*op, if i == 0 { OP_INSERT } else { OP_UPDATE });
                let age = row.as_ref().map(|r| r.age);
                assert_eq!(age, self.expected_age(id, *txid), "{name}: history value");
            }
        }
        for &txid in self.scan_txids.iter().take(1) {
            let rows = engine.scan_as_of(txid);
            assert_eq!(rows.len() as u64, self.p.k + 1, "{name}: scan row count");
            for (i, (id, row)) in rows.iter().enumerate() {
                assert_eq!(*id, i as u64 + 1, "{name}: scan order");
                assert_eq!(Some(row.to_row().age), self.expected_age(*id, txid));
            }
        }
    }
}

/// The big-endian user key every KV engine uses.
pub fn user_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Wall-clock microseconds since the Unix epoch.
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Endless single-row updates after the build, for the criterion commit
/// benches: a random regular user gets a different age, txids continue.
pub struct Updater {
    rows: Vec<Row>,
    next_txid: u64,
    rng: Rng,
}

impl Updater {
    /// Starts after `w`'s build; `seed` picks the users.
    pub fn new(w: &Workload, seed: u64) -> Updater {
        Updater {
            rows: w.rows_after_build(),
            next_txid: w.p.last_build_txid() + 1,
            rng: Rng::new(seed),
        }
    }

    /// The next `(txid, id, row)`.
    pub fn next_update(&mut self) -> (u64, u64, Row) {
        let k = self.rows.len() as u64 - 1;
        let id = 1 + self.rng.below(k);
        let row = &mut self.rows[(id - 1) as usize];
        row.age = AGE_MIN + (row.age - AGE_MIN + 1) % AGE_SPAN;
        let txid = self.next_txid;
        self.next_txid += 1;
        (txid, id, row.clone())
    }
}
