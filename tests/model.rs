//! Model-based tests: random sequences of writes, commits, aborts, reopens
//! and reads, each read checked against an in-memory reference model
//! (STYLE.md item 10):
//! `BTreeMap<(table, key), BTreeMap<txid, Option<value>>>` plus the list of
//! committed transactions. The expected as-of answer is
//! `range(..=txid).next_back()`.
//!
//! The model also covers retention and the temporal API: purges (the
//! horizon, `HistoryInUse` while a held snapshot or the open transaction
//! reads an older txid), erasures, per-table retention policies (the trim
//! records compaction commits, each trimmed table's horizon, never past a
//! live view, and `HistoryPurged` for reads of that table below it),
//! compaction (after which every check must still pass), checkpoints,
//! revert, undo and diff.
//!
//! `TIMECASK_PROPTEST_CASES` overrides the number of cases (default 256).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use timecask::{
    Change, Config, Db, DiffEntry, Durability, Error, HistoryQuery, Metadata, Op, RetentionPolicy,
    Snapshot, Timestamp, TxId, TxRecord, Version, WriteTx,
};

/// The hidden table that holds maintenance records, and its keys.
const SYSTEM_TABLE: &str = "__timecask";
const PURGE_KEY: &[u8] = b"purge";
const ERASE_KEY: &[u8] = b"erase";
/// Value: `table 0x00 u32 keep_last (0: none) | u64 keep_for µs (u64::MAX:
/// none)`.
const RETENTION_KEY: &[u8] = b"retention";
/// Value: `table 0x00 u64 horizon`.
const TRIM_KEY: &[u8] = b"trim";

// ---------------------------------------------------------------------------
// Assertions with readable output.

/// `assert_eq!` whose message prints `{:#?}` with runs of identical lines
/// collapsed, so the large test values stay readable.
macro_rules! check_eq {
    ($got:expr, $want:expr, $($fmt:tt)+) => {{
        let (got, want) = (&$got, &$want);
        if got != want {
            panic!(
                "{}\n   got: {}\n  want: {}",
                format!($($fmt)+),
                collapse(&format!("{got:#?}")),
                collapse(&format!("{want:#?}"))
            );
        }
    }};
}

/// Replaces runs of identical lines with one line and a count.
fn collapse(s: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut lines = s.lines().peekable();
    while let Some(line) = lines.next() {
        let mut n = 1;
        while lines.peek() == Some(&line) {
            lines.next();
            n += 1;
        }
        if n > 2 {
            out.push(format!("{line} (x{n})"));
        } else {
            out.extend(std::iter::repeat_n(line.to_string(), n));
        }
    }
    out.join("\n")
}

// ---------------------------------------------------------------------------
// Small domains, so collisions, identical updates and deletes are common.

/// With a table whose name holds 0x00 (unless that is a known bug): its
/// erase records read like those of key `b\0...` of table `a`.
const TABLES: &[&str] = &["a", "b"];
/// Includes the empty key and 0xff keys (prefix successor edge cases), and
/// `b\0`, whose erase record in table `a` reads like the one of the empty
/// key in table `a\0b`.
const KEYS: [&[u8]; 8] = [b"", b"a", b"ab", b"abc", b"b", b"\xff", b"\xff\xff", b"b\0"];
/// Range bounds: every key plus a few that are never written.
const BOUND_KEYS: [&[u8]; 11] = [
    b"",
    b"a",
    b"ab",
    b"abc",
    b"b",
    b"\xff",
    b"\xff\xff",
    b"b\0",
    b"aa",
    b"c",
    b"\x00",
];
const PREFIXES: [&[u8]; 6] = [b"", b"a", b"ab", b"b", b"\xff", b"c"];
const META_KEYS: [&str; 3] = ["user", "reason", ""];
const META_VALUES: [&str; 3] = ["ann", "bob", ""];
/// A value of which a few fill a 4 KiB segment, so frames meet roll points.
const BIG_VALUE_SIZE: usize = 1500;
/// A value larger than a whole segment.
const HUGE_VALUE_SIZE: usize = 5000;

fn value_bytes(i: usize) -> Vec<u8> {
    match i {
        0 => Vec::new(),
        1 => b"x".to_vec(),
        2 => b"y".to_vec(),
        3 => vec![b'L'; BIG_VALUE_SIZE],
        _ => vec![b'H'; HUGE_VALUE_SIZE],
    }
}

fn db_config(record_identical_updates: bool, history_runs: bool, background: bool) -> Config {
    Config {
        // The background sealer seals and merges between operations every
        // few KiB of log (the smallest threshold), or not at all.
        seal_log_bytes: if background {
            Some(timecask::limits::SEGMENT_ROLL_SIZE_MIN)
        } else {
            None
        },
        durability: Durability::Buffered,
        segment_roll_bytes: timecask::limits::SEGMENT_ROLL_SIZE_MIN,
        record_identical_updates,
        // Compaction seals history into runs (tiny blocks, so a key spans
        // several) or, without, rewrites segments.
        history_runs,
        run_block_bytes: 64,
        // Tiny index pages, loaded one by one as reads need them.
        run_index_page_entries: 2,
        ..Config::default()
    }
}

fn proptest_config(divisor: u32) -> ProptestConfig {
    let cases: u32 = std::env::var("TIMECASK_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases: (cases / divisor).max(1),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Operations.

/// Which read view a check runs against.
#[derive(Clone, Copy, Debug)]
enum ViewSel {
    /// `db.snapshot()`.
    Latest,
    /// `db.as_of(frac % (latest + 2))`: one past the latest is in the future.
    AsOf(u16),
    /// The snapshot held by the last `Hold` (latest if none).
    Held,
}

/// Which txid an op names, relative to a newest txid `n` (the latest, or
/// the open transaction's base).
#[derive(Clone, Copy, Debug)]
enum TxPick {
    /// `frac % (n + 2)`: one past `n` is in the future.
    Frac(u16),
    /// `n - back`, saturating: recent history, where purges and undos
    /// mostly succeed.
    Back(u8),
}

impl TxPick {
    fn resolve(self, n: u64) -> u64 {
        match self {
            TxPick::Frac(frac) => u64::from(frac) % (n + 2),
            TxPick::Back(back) => n.saturating_sub(u64::from(back)),
        }
    }
}

/// One step. Indices pick from the small domains above.
#[derive(Clone, Debug)]
enum TestOp {
    Put {
        table: usize,
        key: usize,
        value: usize,
    },
    Insert {
        table: usize,
        key: usize,
        value: usize,
    },
    Update {
        table: usize,
        key: usize,
        value: usize,
    },
    Delete {
        table: usize,
        key: usize,
    },
    SetMeta {
        key: usize,
        value: usize,
    },
    CreateTable {
        table: usize,
    },
    /// Commits the open transaction (an empty one if none is open).
    Commit {
        immediate: bool,
    },
    Abort,
    /// Another transaction, begun and committed while the open one (if
    /// any) stays open: first committer wins.
    SideCommit {
        table: usize,
        key: usize,
        value: Option<usize>,
    },
    Flush,
    /// Drop the transaction, every view and the `Db`; open again.
    Reopen,
    /// Hold a view across later commits (snapshot stability).
    Hold {
        view: ViewSel,
    },
    /// `get`, `contains`, `get_version`.
    CheckGet {
        view: ViewSel,
        table: usize,
        key: usize,
    },
    CheckHistory {
        view: ViewSel,
        table: usize,
        key: usize,
        window: (Bound<u8>, Bound<u8>),
        newest_first: bool,
        limit: Option<usize>,
    },
    /// `range` forward, reversed and as a mixed walk; `iter` when unbounded.
    CheckRange {
        view: ViewSel,
        table: usize,
        bounds: (Bound<usize>, Bound<usize>),
        /// Front (`true`) or back (`false`) for each step of a mixed walk.
        steps: Vec<bool>,
    },
    CheckPrefix {
        view: ViewSel,
        table: usize,
        prefix: usize,
        steps: Vec<bool>,
    },
    /// `count` and `tables`.
    CheckCount {
        view: ViewSel,
        table: usize,
    },
    /// Reads of the open transaction: `get`, `contains`, `range`.
    CheckTx {
        table: usize,
        key: usize,
        bounds: (Bound<usize>, Bound<usize>),
    },
    CheckTransaction {
        txid: u16,
    },
    /// `log` over a txid range, and `stats`.
    CheckLog {
        bounds: (Bound<u8>, Bound<u8>),
    },
    /// `as_of_time` at a commit time, a microsecond before or after it.
    CheckAsOfTime {
        txid: u16,
        offset_micros: i8,
    },
    /// Purges history before a txid picked from the latest:
    /// `Db::purge_history`, or `WriteTx::purge_history` in the open
    /// transaction (picked from its base then).
    PurgeHistory {
        before: TxPick,
        in_tx: bool,
    },
    /// `WriteTx::erase` in the open transaction, or `Db::erase`: of the
    /// `n % len`th key that has versions if `existing` is `Some(n)` and
    /// there is one, else of `table`, `key`.
    Erase {
        table: usize,
        key: usize,
        existing: Option<u16>,
        in_tx: bool,
    },
    /// `Db::compact` and `Db::verify`, then a sweep of checks.
    Compact,
    /// `Db::seal` (what the background sealer does), then a sweep of
    /// checks.
    Seal,
    /// Drops the snapshot held by the last `Hold`.
    Release,
    /// `WriteTx::revert` in the open transaction to a txid picked from
    /// its base.
    Revert {
        table: usize,
        key: usize,
        to: TxPick,
    },
    /// `WriteTx::undo` in the open transaction of a txid picked from its
    /// base.
    Undo {
        txid: TxPick,
    },
    /// `Db::diff` between `frac % (latest + 2)` txids.
    CheckDiff {
        table: usize,
        from: u16,
        to: u16,
    },
    /// `WriteTx::set_retention` in the open transaction, or in one of its
    /// own. Applied by the next `Compact`.
    SetRetention {
        table: usize,
        keep_last: Option<u32>,
        keep_for: Option<Duration>,
        in_tx: bool,
    },
    /// `Db::checkpoint`: later reopens start from it until a compaction
    /// deletes it.
    Checkpoint,
}

fn view_sel() -> impl Strategy<Value = ViewSel> {
    prop_oneof![
        2 => Just(ViewSel::Latest),
        3 => any::<u16>().prop_map(ViewSel::AsOf),
        2 => Just(ViewSel::Held),
    ]
}

fn tx_pick() -> impl Strategy<Value = TxPick> {
    prop_oneof![
        any::<u16>().prop_map(TxPick::Frac),
        (0..3u8).prop_map(TxPick::Back),
    ]
}

fn bound<T: std::fmt::Debug + Clone + 'static>(
    inner: impl Strategy<Value = T> + Clone + 'static,
) -> impl Strategy<Value = Bound<T>> {
    prop_oneof![
        Just(Bound::Unbounded),
        inner.clone().prop_map(Bound::Included),
        inner.prop_map(Bound::Excluded),
    ]
}

fn key_bounds() -> impl Strategy<Value = (Bound<usize>, Bound<usize>)> {
    (bound(0..BOUND_KEYS.len()), bound(0..BOUND_KEYS.len()))
}

fn txid_bounds() -> impl Strategy<Value = (Bound<u8>, Bound<u8>)> {
    (bound(0..24u8), bound(0..24u8))
}

/// `keep_last` (0 and "neither limit" are refused), and a `keep_for` that
/// the wall clock cannot decide:
/// none, zero (every commit is at least that old) or so long that nothing
/// is old enough (`Duration::MAX` is stored saturated).
fn retention_policy() -> impl Strategy<Value = (Option<u32>, Option<Duration>)> {
    let keep_for = prop_oneof![
        2 => Just(None),
        1 => Just(Some(Duration::ZERO)),
        1 => Just(Some(Duration::from_secs(24 * 3600))),
        1 => Just(Some(Duration::MAX)),
    ];
    let keep_last = prop_oneof![
        1 => Just(None),
        1 => Just(Some(0)),
        3 => Just(Some(1)),
        2 => (2..=3u32).prop_map(Some),
    ];
    (keep_last, keep_for)
}

fn steps() -> impl Strategy<Value = Vec<bool>> {
    proptest::collection::vec(any::<bool>(), 0..10)
}

fn op() -> impl Strategy<Value = TestOp> {
    let t = 0..TABLES.len();
    let k = 0..KEYS.len();
    let v = prop_oneof![6 => 0..3usize, 2 => Just(3usize), 1 => Just(4usize)];
    prop_oneof![
        14 => (t.clone(), k.clone(), v.clone())
            .prop_map(|(table, key, value)| TestOp::Put { table, key, value }),
        4 => (t.clone(), k.clone(), v.clone())
            .prop_map(|(table, key, value)| TestOp::Insert { table, key, value }),
        4 => (t.clone(), k.clone(), v.clone())
            .prop_map(|(table, key, value)| TestOp::Update { table, key, value }),
        5 => (t.clone(), k.clone()).prop_map(|(table, key)| TestOp::Delete { table, key }),
        2 => (0..META_KEYS.len(), 0..META_VALUES.len())
            .prop_map(|(key, value)| TestOp::SetMeta { key, value }),
        1 => t.clone().prop_map(|table| TestOp::CreateTable { table }),
        12 => proptest::bool::weighted(0.1).prop_map(|immediate| TestOp::Commit { immediate }),
        1 => Just(TestOp::Abort),
        5 => (t.clone(), k.clone(), proptest::option::weighted(0.7, v))
            .prop_map(|(table, key, value)| TestOp::SideCommit { table, key, value }),
        1 => Just(TestOp::Flush),
        1 => Just(TestOp::Reopen),
        1 => view_sel().prop_map(|view| TestOp::Hold { view }),
        4 => (view_sel(), t.clone(), k.clone())
            .prop_map(|(view, table, key)| TestOp::CheckGet { view, table, key }),
        3 => (
            view_sel(),
            t.clone(),
            k.clone(),
            txid_bounds(),
            any::<bool>(),
            proptest::option::of(0..4usize),
        )
            .prop_map(|(view, table, key, window, newest_first, limit)| {
                TestOp::CheckHistory { view, table, key, window, newest_first, limit }
            }),
        3 => (view_sel(), t.clone(), key_bounds(), steps())
            .prop_map(|(view, table, bounds, steps)| {
                TestOp::CheckRange { view, table, bounds, steps }
            }),
        2 => (view_sel(), t.clone(), 0..PREFIXES.len(), steps())
            .prop_map(|(view, table, prefix, steps)| {
                TestOp::CheckPrefix { view, table, prefix, steps }
            }),
        2 => (view_sel(), t.clone()).prop_map(|(view, table)| TestOp::CheckCount { view, table }),
        3 => (t.clone(), k.clone(), key_bounds())
            .prop_map(|(table, key, bounds)| TestOp::CheckTx { table, key, bounds }),
        2 => any::<u16>().prop_map(|txid| TestOp::CheckTransaction { txid }),
        1 => txid_bounds().prop_map(|bounds| TestOp::CheckLog { bounds }),
        1 => (any::<u16>(), -1..=1i8)
            .prop_map(|(txid, offset_micros)| TestOp::CheckAsOfTime { txid, offset_micros }),
        3 => (tx_pick(), any::<bool>())
            .prop_map(|(before, in_tx)| TestOp::PurgeHistory { before, in_tx }),
        3 => (t.clone(), k.clone(), proptest::option::of(any::<u16>()), any::<bool>())
            .prop_map(|(table, key, existing, in_tx)| TestOp::Erase { table, key, existing, in_tx }),
        3 => Just(TestOp::Compact),
        2 => Just(TestOp::Seal),
        1 => Just(TestOp::Release),
        2 => (t.clone(), k.clone(), tx_pick())
            .prop_map(|(table, key, to)| TestOp::Revert { table, key, to }),
        2 => tx_pick().prop_map(|txid| TestOp::Undo { txid }),
        2 => (t.clone(), any::<u16>(), any::<u16>())
            .prop_map(|(table, from, to)| TestOp::CheckDiff { table, from, to }),
        3 => (t, retention_policy(), proptest::bool::weighted(0.3)).prop_map(
            |(table, (keep_last, keep_for), in_tx)| TestOp::SetRetention {
                table,
                keep_last,
                keep_for,
                in_tx,
            }
        ),
        1 => Just(TestOp::Checkpoint),
    ]
}

// ---------------------------------------------------------------------------
// The reference model.

type TableKey = (String, Vec<u8>);

#[derive(Clone, Debug)]
struct TxModel {
    meta: Metadata,
    /// Every change as committed: maintenance records (on the system
    /// table) first, in call order, then the data changes.
    changes: Vec<Change>,
    /// What the log holds for it: `changes` until a compaction drops the
    /// changes whose versions are gone and the keys of erase records.
    stored: Vec<Change>,
    /// The key each erase record names, in record order.
    erasures: Vec<TableKey>,
    commit_time: Timestamp,
}

#[derive(Default)]
struct Model {
    record_identical_updates: bool,
    versions: BTreeMap<TableKey, BTreeMap<u64, Option<Vec<u8>>>>,
    /// `txs[txid - 1]`.
    txs: Vec<TxModel>,
    /// Tables in creation (table id) order, with the txid that created them.
    tables: Vec<(String, u64)>,
    /// The oldest readable txid.
    horizon: u64,
    /// The txid of the last erasure of each erased key.
    erased_at: BTreeMap<TableKey, u64>,
    /// The retention policy of each table that has one, as the log reads
    /// it back.
    retention: BTreeMap<String, RetentionPolicy>,
    /// The horizon of each table a policy trimmed: reads of it as of an
    /// older txid (when it existed then) fail.
    table_horizons: BTreeMap<String, u64>,
}

/// The writes of a transaction not committed yet.
#[derive(Default)]
struct Pending {
    base: u64,
    writes: BTreeMap<TableKey, Option<Vec<u8>>>,
    meta: Metadata,
    created_tables: BTreeSet<String>,
    /// Maintenance records (purge, erase, retention) in call order.
    system: Vec<Change>,
    /// The keys erased, in call order.
    erasures: Vec<TableKey>,
}

/// What a commit is expected to do.
enum Outcome {
    Empty,
    /// Conflicts; the error names one of these keys.
    Conflict(Vec<TableKey>),
    /// A purge past a live view.
    InUse {
        requested: u64,
        oldest_view: u64,
    },
    Committed(TxModel),
}

fn system_change(key: &[u8], value: Vec<u8>) -> Change {
    Change {
        table: SYSTEM_TABLE.to_string(),
        key: key.to_vec(),
        op: Op::Insert,
        value: Some(value),
    }
}

fn purge_change(before: u64) -> Change {
    system_change(PURGE_KEY, before.to_le_bytes().to_vec())
}

/// A `table 0x00 rest` system value.
fn table_record(table: &str, rest: &[u8]) -> Vec<u8> {
    let mut record = table.as_bytes().to_vec();
    record.push(0);
    record.extend_from_slice(rest);
    record
}

/// Splits a `table 0x00 rest` system value.
fn split_record(value: &[u8]) -> (String, &[u8]) {
    let split = value.iter().position(|b| *b == 0).expect("table 0x00 rest");
    let table = std::str::from_utf8(&value[..split]).expect("a UTF-8 table name");
    (table.to_string(), &value[split + 1..])
}

fn erase_change(tk: &TableKey) -> Change {
    system_change(ERASE_KEY, table_record(&tk.0, &tk.1))
}

fn retention_change(table: &str, policy: RetentionPolicy) -> Change {
    let mut rest = policy.keep_last.unwrap_or(0).to_le_bytes().to_vec();
    let micros = policy.keep_for.map_or(u64::MAX, |d| {
        u64::try_from(d.as_micros()).map_or(u64::MAX - 1, |m| m.min(u64::MAX - 1))
    });
    rest.extend_from_slice(&micros.to_le_bytes());
    system_change(RETENTION_KEY, table_record(table, &rest))
}

/// The policy a retention record holds.
fn decode_policy(bytes: &[u8]) -> RetentionPolicy {
    let (keep_last, keep_for) = bytes.split_at(4);
    let keep_last = u32::from_le_bytes(keep_last.try_into().expect("4 bytes"));
    let keep_for = u64::from_le_bytes(keep_for.try_into().expect("8 bytes"));
    RetentionPolicy {
        keep_last: (keep_last > 0).then_some(keep_last),
        keep_for: (keep_for != u64::MAX).then(|| Duration::from_micros(keep_for)),
    }
}

fn trim_change(table: &str, horizon: u64) -> Change {
    system_change(TRIM_KEY, table_record(table, &horizon.to_le_bytes()))
}

/// Keeps the version of `chain` visible at `before` and every later one.
fn cut_chain(chain: &mut BTreeMap<u64, Option<Vec<u8>>>, before: u64) {
    if let Some((&p, _)) = chain.range(..=before).next_back() {
        *chain = chain.split_off(&p);
    }
}

impl Model {
    fn latest(&self) -> u64 {
        self.txs.len() as u64
    }

    fn get(&self, tk: &TableKey, at: u64) -> Option<Vec<u8>> {
        self.versions
            .get(tk)?
            .range(..=at)
            .next_back()
            .and_then(|(_, v)| v.clone())
    }

    fn table_exists(&self, table: &str, at: u64) -> bool {
        self.tables.iter().any(|(t, c)| t == table && *c <= at)
    }

    fn tables_at(&self, at: u64) -> Vec<String> {
        let mut names: Vec<String> = self
            .tables
            .iter()
            .filter(|(_, c)| *c <= at)
            .map(|(t, _)| t.clone())
            .collect();
        names.sort();
        names
    }

    /// Live `(key, value)` pairs of `table` at `at`, in key order.
    fn live(&self, table: &str, at: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.versions
            .keys()
            .filter(|(t, _)| t == table)
            .filter_map(|tk| self.get(tk, at).map(|v| (tk.1.clone(), v)))
            .collect()
    }

    /// The op transaction `txid` recorded for `tk` (a chain cut by a purge
    /// may start with any op).
    fn op_of(&self, tk: &TableKey, txid: u64) -> Op {
        self.txs[(txid - 1) as usize]
            .changes
            .iter()
            .find(|c| c.table == tk.0 && c.key == tk.1)
            .expect("every version has its change")
            .op
    }

    /// Every version of `tk` visible at `at`, oldest first, as the API
    /// returns them: `end_txid` only when the next version is visible.
    fn versions_at(&self, tk: &TableKey, at: u64) -> Vec<Version> {
        let Some(chain) = self.versions.get(tk) else {
            return Vec::new();
        };
        let chain: Vec<(&u64, &Option<Vec<u8>>)> = chain.range(..=at).collect();
        let mut out = Vec::new();
        for (i, (txid, value)) in chain.iter().enumerate() {
            let tx = &self.txs[(**txid - 1) as usize];
            out.push(Version {
                txid: TxId(**txid),
                end_txid: chain.get(i + 1).map(|(t, _)| TxId(**t)),
                op: self.op_of(tk, **txid),
                value: (*value).clone(),
                commit_time: tx.commit_time,
                meta: tx.meta.clone(),
            });
        }
        out
    }

    /// The newest txid that wrote `tk`.
    fn newest(&self, tk: &TableKey) -> Option<u64> {
        self.versions
            .get(tk)
            .and_then(|c| c.keys().next_back().copied())
    }

    /// Whether `tk` changed after `base`: a newer version or erasure.
    fn changed_since(&self, tk: &TableKey, base: u64) -> bool {
        self.newest(tk).is_some_and(|t| t > base)
            || self.erased_at.get(tk).is_some_and(|t| *t > base)
    }

    /// The changes of `txid` as a compaction leaves them: those whose
    /// version is gone (purged or erased) dropped, erase records reduced to
    /// the table name.
    fn compacted(&self, txid: u64, changes: &[Change]) -> Vec<Change> {
        let mut erasures = self.txs[(txid - 1) as usize].erasures.iter();
        changes
            .iter()
            .filter_map(|c| {
                if c.table == SYSTEM_TABLE {
                    let mut c = c.clone();
                    if c.key == ERASE_KEY {
                        let (table, _) = erasures.next().expect("one key per erase record");
                        c.value = Some(table.as_bytes().to_vec());
                    }
                    return Some(c);
                }
                let tk = (c.table.clone(), c.key.clone());
                let kept = self
                    .versions
                    .get(&tk)
                    .is_some_and(|chain| chain.contains_key(&txid));
                kept.then(|| c.clone())
            })
            .collect()
    }

    /// The changes `transaction(txid)` returns.
    fn record_changes(&self, txid: u64) -> Vec<Change> {
        // Erased data is never read back, compacted or not.
        self.compacted(txid, &self.txs[(txid - 1) as usize].changes)
    }

    /// What `Db::compact` does to the log; returns the number of versions
    /// it drops.
    fn compact(&mut self) -> u64 {
        let mut dropped = 0;
        for txid in 1..=self.latest() {
            let i = (txid - 1) as usize;
            let stored = self.compacted(txid, &self.txs[i].stored);
            dropped += (self.txs[i].stored.len() - stored.len()) as u64;
            self.txs[i].stored = stored;
        }
        dropped
    }

    /// The horizon `pending` asks for, if any.
    fn purge_target(pending: &Pending) -> Option<u64> {
        pending
            .system
            .iter()
            .filter(|c| c.key == PURGE_KEY)
            .map(|c| {
                let bytes = c.value.as_deref().expect("a purge record has a value");
                u64::from_le_bytes(bytes.try_into().expect("8 bytes"))
            })
            .max()
    }

    /// Works out what committing `pending` does, without changing the
    /// model. `oldest_view` is the oldest txid a live view reads during the
    /// commit (the transaction's own snapshot included).
    fn plan(&self, pending: &Pending, oldest_view: u64) -> Outcome {
        let mut planned = Vec::new();
        for (tk, new) in &pending.writes {
            // An erased key has no history left: a write starts a new one.
            let old = if pending.erasures.contains(tk) {
                None
            } else {
                self.get(tk, pending.base)
            };
            let op = match (&old, new) {
                (None, None) => continue,
                (Some(o), Some(n)) if o == n && !self.record_identical_updates => continue,
                (None, Some(_)) => Op::Insert,
                (Some(_), Some(_)) => Op::Update,
                (Some(_), None) => Op::Delete,
            };
            planned.push((tk.clone(), op, new.clone()));
        }
        // First committer wins: any key this transaction wrote or erased
        // that another committed after this one began.
        // That includes writes that change nothing against the snapshot.
        let conflicts: Vec<TableKey> = pending
            .writes
            .keys()
            .chain(&pending.erasures)
            .filter(|tk| self.changed_since(tk, pending.base))
            .cloned()
            .collect();
        if !conflicts.is_empty() {
            return Outcome::Conflict(conflicts);
        }
        // A table created meanwhile by someone else is nothing to write.
        let creates_table = pending
            .created_tables
            .iter()
            .any(|t| !self.table_exists(t, self.latest()));
        if planned.is_empty() && !creates_table && pending.system.is_empty() {
            return Outcome::Empty;
        }
        if let Some(requested) = Model::purge_target(pending)
            && oldest_view < requested
        {
            return Outcome::InUse {
                requested,
                oldest_view,
            };
        }
        // Maintenance records first, then the data changes in table-name,
        // then key order (as planned).
        let changes: Vec<Change> = pending
            .system
            .iter()
            .cloned()
            .chain(planned.into_iter().map(|((table, key), op, value)| Change {
                table,
                key,
                op,
                value,
            }))
            .collect();
        Outcome::Committed(TxModel {
            meta: pending.meta.clone(),
            stored: changes.clone(),
            changes,
            erasures: pending.erasures.clone(),
            commit_time: Timestamp::default(),
        })
    }

    fn apply(&mut self, tx: TxModel, created_tables: &BTreeSet<String>) {
        let txid = self.latest() + 1;
        let data = || tx.changes.iter().filter(|c| c.table != SYSTEM_TABLE);
        // Maintenance records apply before the transaction's own writes.
        let mut erasures = tx.erasures.iter();
        for c in tx.changes.iter().filter(|c| c.table == SYSTEM_TABLE) {
            let value = c.value.as_deref().expect("a system record has a value");
            match c.key.as_slice() {
                PURGE_KEY => self.purge(u64::from_le_bytes(value.try_into().expect("8 bytes"))),
                ERASE_KEY => {
                    let tk = erasures.next().expect("one key per erase record");
                    self.versions.remove(tk);
                    self.erased_at.insert(tk.clone(), txid);
                }
                RETENTION_KEY => {
                    let (table, policy) = split_record(value);
                    self.retention.insert(table, decode_policy(policy));
                }
                TRIM_KEY => {
                    let (table, horizon) = split_record(value);
                    let horizon = u64::from_le_bytes(horizon.try_into().expect("8 bytes"));
                    self.trim(&table, horizon);
                }
                other => panic!("unknown system record {other:?}"),
            }
        }
        let tables: BTreeSet<String> = data().map(|c| c.table.clone()).collect();
        for t in tables.into_iter().chain(created_tables.iter().cloned()) {
            if !self.tables.iter().any(|(x, _)| *x == t) {
                self.tables.push((t, txid));
            }
        }
        for c in data() {
            self.versions
                .entry((c.table.clone(), c.key.clone()))
                .or_default()
                .insert(txid, c.value.clone());
        }
        self.txs.push(tx);
    }

    /// Drops every version superseded at or before `before`; the version
    /// visible at `before` stays, a delete too.
    fn purge(&mut self, before: u64) {
        if before <= self.horizon {
            return;
        }
        self.horizon = before;
        for chain in self.versions.values_mut() {
            cut_chain(chain, before);
        }
    }

    /// What a trim record does: `purge` for one table, which gets its own
    /// horizon (the database's stays).
    fn trim(&mut self, table: &str, horizon: u64) {
        let current = self.table_horizons.entry(table.to_string()).or_default();
        if horizon <= *current {
            return;
        }
        *current = horizon;
        for ((t, _), chain) in &mut self.versions {
            if t == table {
                cut_chain(chain, horizon);
            }
        }
    }

    /// The horizon of `table` if a read of it as of `at` is refused: the
    /// table existed then and its retention policy trimmed that history.
    fn trimmed_after(&self, table: &str, at: u64) -> Option<u64> {
        let horizon = *self.table_horizons.get(table)?;
        (at < horizon && self.table_exists(table, at)).then_some(horizon)
    }

    /// The oldest txid reads of `table` may ask for.
    fn readable_from(&self, table: &str) -> u64 {
        let trimmed = self.table_horizons.get(table).copied().unwrap_or(0);
        self.horizon.max(trimmed)
    }

    /// The trim records `Db::compact` commits first, in table creation
    /// order: one for each table whose policy allows a newer horizon at
    /// time `now`. That horizon is the oldest txid from which no key keeps
    /// more than `keep_last` versions (a delete is one), at most the last
    /// txid committed by `now - keep_for`, and at most `limit`, the oldest
    /// txid a live view reads (a clamp, not a skip).
    fn trims(&self, now: Timestamp, limit: u64) -> Vec<Change> {
        let mut trims = Vec::new();
        for (table, _) in &self.tables {
            let Some(policy) = self.retention.get(table) else {
                continue;
            };
            let mut horizon = self.latest();
            if let Some(keep_for) = policy.keep_for {
                let age = u64::try_from(keep_for.as_micros()).unwrap_or(u64::MAX);
                let cutoff = now.as_micros().saturating_sub(age);
                let old = self
                    .txs
                    .iter()
                    .take_while(|tx| tx.commit_time.as_micros() <= cutoff);
                horizon = horizon.min(old.count() as u64);
            }
            if let Some(keep_last) = policy.keep_last {
                let n = keep_last.max(1) as usize;
                // The `n`th newest version of each key that has more.
                let needed = self
                    .versions
                    .iter()
                    .filter(|((t, _), chain)| t == table && chain.len() > n)
                    .map(|(_, chain)| *chain.keys().nth_back(n - 1).expect("more than n"))
                    .max();
                let Some(needed) = needed else {
                    // No key has more than `n` versions: nothing to drop.
                    continue;
                };
                horizon = horizon.min(needed);
            }
            let horizon = horizon.min(limit);
            if horizon > self.table_horizons.get(table).copied().unwrap_or(0) {
                trims.push(trim_change(table, horizon));
            }
        }
        trims
    }

    /// Keys of `table` whose value differs between `from` and `to`.
    fn diff(&self, table: &str, from: u64, to: u64) -> Vec<DiffEntry> {
        self.versions
            .keys()
            .filter(|(t, _)| t == table)
            .filter_map(|tk| {
                let (before, after) = (self.get(tk, from), self.get(tk, to));
                (before != after).then(|| DiffEntry {
                    key: tk.1.clone(),
                    before,
                    after,
                })
            })
            .collect()
    }

    fn n_versions(&self) -> u64 {
        self.versions.values().map(|c| c.len() as u64).sum()
    }
}

// ---------------------------------------------------------------------------
// Helpers.

fn tk(table: usize, key: usize) -> TableKey {
    (TABLES[table].to_string(), KEYS[key].to_vec())
}

fn key_bound(b: &Bound<usize>) -> Bound<Vec<u8>> {
    b.map(|i| BOUND_KEYS[i].to_vec())
}

fn txid_bound(b: &Bound<u8>) -> Bound<TxId> {
    b.map(|t| TxId(u64::from(t)))
}

fn in_bounds<T: Ord>(x: &T, bounds: &(Bound<T>, Bound<T>)) -> bool {
    let lo = match &bounds.0 {
        Bound::Included(b) => x >= b,
        Bound::Excluded(b) => x > b,
        Bound::Unbounded => true,
    };
    let hi = match &bounds.1 {
        Bound::Included(b) => x <= b,
        Bound::Excluded(b) => x < b,
        Bound::Unbounded => true,
    };
    lo && hi
}

/// Drains `iter` taking from the front or back as `steps` say, then the
/// rest from the front.
fn walk<T>(iter: impl DoubleEndedIterator<Item = T>, steps: &[bool]) -> Vec<T> {
    walk_with(iter, steps, || {})
}

/// [`walk`], calling `midway` after the steps and before draining the rest.
fn walk_with<T>(
    mut iter: impl DoubleEndedIterator<Item = T>,
    steps: &[bool],
    midway: impl FnOnce(),
) -> Vec<T> {
    let mut out = Vec::new();
    for &front in steps {
        let next = if front { iter.next() } else { iter.next_back() };
        match next {
            Some(x) => out.push(x),
            None => break,
        }
    }
    midway();
    out.extend(iter);
    out
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Checks a range iterator (built three times by `make`) forward, reversed
/// and as a mixed walk against `want`.
#[track_caller]
fn check_scan(make: impl Fn() -> timecask::RangeIter, want: &Pairs, steps: &[bool], what: &str) {
    let got: Pairs = make().collect::<Result<_, _>>().expect("scan item");
    check_eq!(got, *want, "{what}");
    let got: Pairs = make().rev().collect::<Result<_, _>>().expect("scan item");
    let want_rev: Pairs = want.iter().rev().cloned().collect();
    check_eq!(got, want_rev, "{what} reversed");
    let got: Pairs = walk(make(), steps)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("scan item");
    check_eq!(
        got,
        walk(want.iter().cloned(), steps),
        "{what} walked {steps:?}"
    );
}

/// Whether a range iterator over `bounds` never looks at the table: the
/// bounds admit no key (`lower > upper`, or equal and one excluded).
fn bounds_are_empty(bounds: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> bool {
    match bounds {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        _ => false,
    }
}

/// Whether `r` is `HistoryPurged` for a read as of `requested` below
/// `horizon`.
fn is_purged<T>(r: &Result<T, Error>, requested: u64, horizon: u64) -> bool {
    matches!(r, Err(Error::HistoryPurged { requested: q, horizon: h })
        if *q == TxId(requested) && *h == TxId(horizon))
}

/// Checks that a range iterator (built by `make`) yields one
/// `HistoryPurged` from whichever end is read first, then nothing.
#[track_caller]
fn check_scan_purged(
    make: impl Fn() -> timecask::RangeIter,
    requested: u64,
    horizon: u64,
    what: &str,
) {
    for front in [true, false] {
        let mut iter = make();
        let first = if front { iter.next() } else { iter.next_back() };
        let first = first.expect("an item");
        assert!(
            is_purged(&first, requested, horizon),
            "{what} (from the front: {front}) below the table horizon {horizon}: {first:?}"
        );
        assert!(
            iter.next().is_none() && iter.next_back().is_none(),
            "{what} after the error"
        );
    }
}

// ---------------------------------------------------------------------------
// The harness: the database under test next to the model.

struct Harness {
    dir: tempfile::TempDir,
    config: Config,
    db: Option<Db>,
    tx: Option<WriteTx>,
    pending: Pending,
    held: Option<Snapshot>,
    model: Model,
    /// A checkpoint was written since the last compaction (which deletes
    /// it): the next open starts from it.
    checkpointed: bool,
    /// The background sealer runs between operations (it deletes the
    /// checkpoint and may drop versions before a compaction does).
    background: bool,
    /// A `Db::seal` since the last compaction may have dropped versions
    /// before the compaction does.
    sealed: bool,
}

impl Harness {
    fn new(record_identical_updates: bool, history_runs: bool, background: bool) -> Harness {
        let dir = tempfile::tempdir().expect("create temp dir");
        let background = history_runs && background;
        let config = db_config(record_identical_updates, history_runs, background);
        let db = Db::open_with(dir.path(), config.clone()).expect("open a new database");
        Harness {
            dir,
            config,
            background,
            sealed: false,
            db: Some(db),
            tx: None,
            pending: Pending::default(),
            held: None,
            model: Model {
                record_identical_updates,
                ..Model::default()
            },
            checkpointed: false,
        }
    }

    fn db(&self) -> &Db {
        self.db.as_ref().expect("the database is open")
    }

    /// The open transaction; begins one if none is open.
    fn tx(&mut self) -> &mut WriteTx {
        if self.tx.is_none() {
            let tx = self.db().begin();
            assert_eq!(tx.base_txid().0, self.model.latest());
            self.pending = Pending {
                base: self.model.latest(),
                ..Pending::default()
            };
            self.tx = Some(tx);
        }
        self.tx.as_mut().expect("a transaction is open")
    }

    /// The value of `tk` as the open transaction should see it.
    fn tx_view(&mut self, tk: &TableKey) -> Option<Vec<u8>> {
        self.tx();
        match self.pending.writes.get(tk) {
            Some(v) => v.clone(),
            None if self.pending.erasures.contains(tk) => None,
            None => self.model.get(tk, self.pending.base),
        }
    }

    /// The view to check and the txid the model answers at; `None` when
    /// the pick is a future txid (checked to fail with `FutureTxid`).
    fn view(&self, sel: ViewSel) -> Option<(Snapshot, u64)> {
        let latest = self.model.latest();
        match sel {
            ViewSel::Latest => {
                let s = self.db().snapshot();
                assert_eq!(s.txid().0, latest);
                Some((s, latest))
            }
            ViewSel::AsOf(frac) => {
                let t = u64::from(frac) % (latest + 2);
                let r = self.db().as_of(TxId(t));
                if t > latest {
                    assert!(
                        matches!(r, Err(Error::FutureTxid { requested, latest: l })
                            if requested == TxId(t) && l == TxId(latest)),
                        "as_of({t}) with latest {latest}: {r:?}"
                    );
                    return None;
                }
                let horizon = self.model.horizon;
                if t < horizon {
                    assert!(
                        matches!(r, Err(Error::HistoryPurged { requested, horizon: h })
                            if requested == TxId(t) && h == TxId(horizon)),
                        "as_of({t}) below the horizon {horizon}: {r:?}"
                    );
                    return None;
                }
                let s = r.expect("as_of a committed txid");
                assert_eq!(s.txid().0, t);
                Some((s, t))
            }
            ViewSel::Held => match &self.held {
                Some(s) => Some((s.clone(), s.txid().0)),
                None => self.view(ViewSel::Latest),
            },
        }
    }

    /// The oldest txid a live view reads while a transaction with begin
    /// snapshot `base` commits: that snapshot, the held one, and the open
    /// transaction's.
    fn oldest_view(&self, base: u64) -> u64 {
        let held = self.held.as_ref().map(|s| s.txid().0);
        let open = self.tx.as_ref().map(|_| self.pending.base);
        [Some(base), held, open]
            .into_iter()
            .flatten()
            .min()
            .expect("base")
    }

    fn step(&mut self, op: &TestOp) {
        match *op {
            TestOp::Put { table, key, value } => {
                let v = value_bytes(value);
                self.tx().put(TABLES[table], KEYS[key], &v).expect("put");
                self.pending.writes.insert(tk(table, key), Some(v));
            }
            TestOp::Insert { table, key, value } => {
                let v = value_bytes(value);
                let live = self.tx_view(&tk(table, key)).is_some();
                let r = self.tx().insert(TABLES[table], KEYS[key], &v);
                if live {
                    assert!(
                        matches!(&r, Err(Error::KeyExists { table: t, key: k })
                            if t == TABLES[table] && k.0 == KEYS[key]),
                        "insert of a live key: {r:?}"
                    );
                } else {
                    r.expect("insert of a key that is not live");
                    self.pending.writes.insert(tk(table, key), Some(v));
                }
            }
            TestOp::Update { table, key, value } => {
                let v = value_bytes(value);
                let live = self.tx_view(&tk(table, key)).is_some();
                let r = self.tx().update(TABLES[table], KEYS[key], &v);
                if live {
                    r.expect("update of a live key");
                    self.pending.writes.insert(tk(table, key), Some(v));
                } else {
                    assert!(
                        matches!(&r, Err(Error::KeyNotFound { table: t, key: k })
                            if t == TABLES[table] && k.0 == KEYS[key]),
                        "update of a key that is not live: {r:?}"
                    );
                }
            }
            TestOp::Delete { table, key } => {
                let live = self.tx_view(&tk(table, key)).is_some();
                let was = self.tx().delete(TABLES[table], KEYS[key]).expect("delete");
                assert_eq!(was, live, "delete returns whether the key was live");
                self.pending.writes.insert(tk(table, key), None);
            }
            TestOp::SetMeta { key, value } => {
                let (k, v) = (META_KEYS[key], META_VALUES[value]);
                self.tx().set_meta(k, v).expect("set_meta");
                self.pending.meta.insert(k.to_string(), v.to_string());
            }
            TestOp::CreateTable { table } => {
                self.tx().create_table(TABLES[table]).expect("create_table");
                if !self.model.table_exists(TABLES[table], self.pending.base) {
                    let name = TABLES[table].to_string();
                    self.pending.created_tables.insert(name);
                }
            }
            TestOp::Commit { immediate } => {
                let tx = self.tx();
                if immediate {
                    tx.set_durability(Durability::Immediate);
                }
                let tx = self.tx.take().expect("a transaction is open");
                let pending = std::mem::take(&mut self.pending);
                self.commit(tx, &pending);
            }
            TestOp::Abort => {
                if let Some(tx) = self.tx.take() {
                    tx.abort();
                }
                self.pending = Pending::default();
                assert_eq!(self.db().latest_txid().0, self.model.latest());
            }
            TestOp::SideCommit { table, key, value } => {
                let mut tx = self.db().begin();
                let mut pending = Pending {
                    base: self.model.latest(),
                    ..Pending::default()
                };
                let v = value.map(value_bytes);
                match &v {
                    Some(v) => tx.put(TABLES[table], KEYS[key], v).expect("put"),
                    None => {
                        tx.delete(TABLES[table], KEYS[key]).expect("delete");
                    }
                }
                pending.writes.insert(tk(table, key), v);
                self.commit(tx, &pending);
            }
            TestOp::Flush => self.db().flush().expect("flush"),
            TestOp::Reopen => self.reopen(),
            TestOp::Hold { view } => {
                if let Some((s, _)) = self.view(view) {
                    self.held = Some(s);
                }
            }
            TestOp::CheckGet { view, table, key } => self.check_get(view, table, key),
            TestOp::CheckHistory {
                view,
                table,
                key,
                window,
                newest_first,
                limit,
            } => self.check_history(view, table, key, window, newest_first, limit),
            TestOp::CheckRange {
                view,
                table,
                bounds,
                ref steps,
            } => self.check_range(view, table, bounds, steps),
            TestOp::CheckPrefix {
                view,
                table,
                prefix,
                ref steps,
            } => self.check_prefix(view, table, prefix, steps),
            TestOp::CheckCount { view, table } => self.check_count(view, table),
            TestOp::CheckTx { table, key, bounds } => self.check_tx(table, key, bounds),
            TestOp::CheckTransaction { txid } => self.check_transaction(txid),
            TestOp::CheckLog { bounds } => self.check_log(bounds),
            TestOp::CheckAsOfTime {
                txid,
                offset_micros,
            } => self.check_as_of_time(txid, offset_micros),
            TestOp::PurgeHistory { before, in_tx } => self.purge_history(before, in_tx),
            TestOp::Erase {
                table,
                key,
                existing,
                in_tx,
            } => {
                let tk = existing
                    .and_then(|n| {
                        let keys = &self.model.versions;
                        keys.keys().nth(usize::from(n) % keys.len().max(1))
                    })
                    .cloned()
                    .unwrap_or_else(|| tk(table, key));
                self.erase(tk, in_tx);
            }
            TestOp::Compact => self.compact(),
            TestOp::Seal => self.seal(),
            TestOp::Release => self.held = None,
            TestOp::Revert { table, key, to } => self.revert(table, key, to),
            TestOp::Undo { txid } => self.undo(txid),
            TestOp::CheckDiff { table, from, to } => self.check_diff(table, from, to),
            TestOp::SetRetention {
                table,
                keep_last,
                keep_for,
                in_tx,
            } => {
                let policy = RetentionPolicy {
                    keep_last,
                    keep_for,
                };
                self.set_retention(TABLES[table], policy, in_tx);
            }
            TestOp::Checkpoint => {
                let report = self.db().checkpoint().expect("checkpoint");
                assert_eq!(report.txid.0, self.model.latest());
                self.checkpointed = true;
            }
        }
    }

    /// `set_retention` in the open transaction, or in a transaction of its
    /// own committed at once.
    fn set_retention(&mut self, table: &str, policy: RetentionPolicy, in_tx: bool) {
        let mut own = None;
        let (tx, pending) = if in_tx {
            self.tx();
            (
                self.tx.as_mut().expect("a transaction is open"),
                &mut self.pending,
            )
        } else {
            let pending = Pending {
                base: self.model.latest(),
                ..Pending::default()
            };
            let (tx, pending) = own.insert((self.db().begin(), pending));
            (tx, pending)
        };
        let r = tx.set_retention(table, policy);
        if policy.keep_last == Some(0) || (policy.keep_last, policy.keep_for) == (None, None) {
            // A policy that protects nothing is refused and changes nothing.
            assert!(matches!(r, Err(Error::InvalidConfig { .. })), "{r:?}");
            if let Some((tx, pending)) = own {
                self.commit(tx, &pending);
            }
            return;
        }
        r.expect("set_retention");
        // The policy's table is created if missing.
        if !self.model.table_exists(table, pending.base) {
            pending.created_tables.insert(table.to_string());
        }
        pending.system.push(retention_change(table, policy));
        if let Some((tx, pending)) = own {
            self.commit(tx, &pending);
        }
    }

    fn commit(&mut self, tx: WriteTx, pending: &Pending) {
        let oldest_view = self.oldest_view(pending.base);
        let r = tx.commit();
        self.expect_commit(r, pending, oldest_view);
    }

    /// Checks the result of committing `pending` against the model and
    /// applies it.
    fn expect_commit(
        &mut self,
        r: Result<Option<TxId>, Error>,
        pending: &Pending,
        oldest_view: u64,
    ) {
        match self.model.plan(pending, oldest_view) {
            Outcome::Empty => {
                assert!(matches!(r, Ok(None)), "a commit with no net change: {r:?}");
            }
            Outcome::Conflict(keys) => {
                assert!(
                    matches!(&r, Err(Error::Conflict { table, key })
                        if keys.contains(&(table.clone(), key.0.clone()))),
                    "a commit conflicting on one of {keys:?}: {r:?}"
                );
            }
            Outcome::InUse {
                requested,
                oldest_view,
            } => {
                assert!(
                    matches!(r, Err(Error::HistoryInUse { requested: q, oldest_view: o })
                        if q == TxId(requested) && o == TxId(oldest_view)),
                    "a purge to {requested} with a view at {oldest_view}: {r:?}"
                );
            }
            Outcome::Committed(mut expected) => {
                let txid = r
                    .expect("commit")
                    .expect("a commit with changes gets a txid");
                assert_eq!(txid.0, self.model.latest() + 1, "txids are dense");
                let record = self.db().transaction(txid).expect("the new transaction");
                if let Some(prev) = self.model.txs.last() {
                    assert!(
                        prev.commit_time <= record.commit_time,
                        "commit times never decrease"
                    );
                }
                assert!(record.commit_time <= Timestamp::now());
                expected.commit_time = record.commit_time;
                self.model.apply(expected, &pending.created_tables);
                self.check_record(&record);
            }
        }
        assert_eq!(self.db().latest_txid().0, self.model.latest());
        assert_eq!(self.db().stats().horizon.0, self.model.horizon);
    }

    fn reopen(&mut self) {
        self.tx = None;
        self.pending = Pending::default();
        let held = self.held.take().map(|s| s.txid());
        let again = Db::open_with(self.dir.path(), self.config.clone());
        assert!(
            matches!(again, Err(Error::Locked { .. })),
            "a second open while the first is open: {again:?}"
        );
        self.db = None;
        let db = Db::open_with(self.dir.path(), self.config.clone()).expect("reopen");
        assert_eq!(db.latest_txid().0, self.model.latest());
        assert_eq!(
            db.stats().horizon.0,
            self.model.horizon,
            "the horizon persists"
        );
        if !self.background {
            assert_eq!(
                db.stats().opened_from_checkpoint,
                self.checkpointed,
                "opened from the checkpoint"
            );
        }
        self.db = Some(db);
        self.held = held.map(|t| self.db().as_of(t).expect("as_of the held txid"));
        self.check_log((Bound::Unbounded, Bound::Unbounded));
    }

    fn check_record(&self, record: &TxRecord) {
        let t = &self.model.txs[(record.txid.0 - 1) as usize];
        let (maintenance, changes) = self
            .model
            .record_changes(record.txid.0)
            .into_iter()
            .partition(|c| c.table == SYSTEM_TABLE);
        let want = TxRecord {
            txid: record.txid,
            commit_time: t.commit_time,
            meta: t.meta.clone(),
            changes,
            maintenance,
        };
        check_eq!(*record, want, "transaction {}", record.txid);
    }

    fn check_get(&self, sel: ViewSel, table: usize, key: usize) {
        let Some((s, at)) = self.view(sel) else {
            return;
        };
        let tk = tk(table, key);
        let (t, k) = (TABLES[table], KEYS[key]);
        if let Some(h) = self.model.trimmed_after(t, at) {
            let what = format!("{tk:?} at {at}, below the table horizon {h}");
            let r = s.get(t, k);
            assert!(is_purged(&r, at, h), "get {what}: {r:?}");
            let r = s.contains(t, k);
            assert!(is_purged(&r, at, h), "contains {what}: {r:?}");
            let r = s.get_version(t, k);
            assert!(is_purged(&r, at, h), "get_version {what}: {r:?}");
            return;
        }
        let want = self.model.get(&tk, at);
        check_eq!(s.get(t, k).expect("get"), want, "get {tk:?} at {at}");
        assert_eq!(
            s.contains(t, k).expect("contains"),
            want.is_some(),
            "contains {tk:?} at {at}"
        );
        check_eq!(
            s.get_version(t, k).expect("get_version"),
            self.model.versions_at(&tk, at).pop(),
            "get_version {tk:?} at {at}"
        );
    }

    fn check_history(
        &self,
        sel: ViewSel,
        table: usize,
        key: usize,
        window: (Bound<u8>, Bound<u8>),
        newest_first: bool,
        limit: Option<usize>,
    ) {
        let Some((s, at)) = self.view(sel) else {
            return;
        };
        let tk = tk(table, key);
        let window = (txid_bound(&window.0), txid_bound(&window.1));
        // `txids`: every version valid at some txid of the window the view
        // sees (a version is valid from its txid until its end_txid);
        // `written_in`: every version whose own txid is in the window.
        let valid_in = |v: &Version| {
            (0..=at).map(TxId).any(|t| {
                in_bounds(&t, &window) && v.txid <= t && v.end_txid.is_none_or(|end| t < end)
            })
        };
        let written_in = |v: &Version| in_bounds(&v.txid, &window);
        let selected = |keep: &dyn Fn(&Version) -> bool| {
            let mut want: Vec<Version> = self
                .model
                .versions_at(&tk, at)
                .into_iter()
                .filter(|v| keep(v))
                .collect();
            if newest_first {
                want.reverse();
            }
            want.truncate(limit.unwrap_or(usize::MAX));
            want
        };
        let (want, want_written) = (selected(&valid_in), selected(&written_in));
        let with_options = |mut query: HistoryQuery| {
            if newest_first {
                query = query.newest_first();
            }
            if let Some(n) = limit {
                query = query.limit(n);
            }
            query
        };
        let query = with_options(HistoryQuery::all().txids(window));
        let r_written = s.history(
            TABLES[table],
            KEYS[key],
            with_options(HistoryQuery::all().written_in(window)),
        );
        let r = s.history(TABLES[table], KEYS[key], query);
        if let Some(h) = self.model.trimmed_after(TABLES[table], at) {
            assert!(
                is_purged(&r, at, h),
                "history {tk:?} at {at}, below the table horizon {h}: {r:?}"
            );
            return;
        }
        let got = r.expect("history");
        check_eq!(
            got,
            want,
            "history {tk:?} at {at}, window {window:?}, newest first {newest_first}, limit {limit:?}"
        );
        check_eq!(
            r_written.expect("history"),
            want_written,
            "history written in {window:?} {tk:?} at {at}, newest first {newest_first}, limit {limit:?}"
        );
    }

    fn check_range(
        &self,
        sel: ViewSel,
        table: usize,
        bounds: (Bound<usize>, Bound<usize>),
        steps: &[bool],
    ) {
        let Some((s, at)) = self.view(sel) else {
            return;
        };
        let t = TABLES[table];
        let bounds = (key_bound(&bounds.0), key_bound(&bounds.1));
        if let Some(h) = self.model.trimmed_after(t, at) {
            let what = format!("range {bounds:?} of {t} at {at}");
            if bounds_are_empty(&bounds) {
                // Never looked up: nothing, not an error.
                let got: Pairs = s
                    .range(t, bounds.clone())
                    .expect("range")
                    .collect::<Result<_, _>>()
                    .expect("an empty range is not looked up");
                check_eq!(got, Pairs::new(), "{what}");
            } else {
                check_scan_purged(|| s.range(t, bounds.clone()).expect("range"), at, h, &what);
            }
            if bounds == (Bound::Unbounded, Bound::Unbounded) {
                check_scan_purged(
                    || s.iter(t).expect("iter"),
                    at,
                    h,
                    &format!("iter {t} at {at}"),
                );
            }
            return;
        }
        let all = self.model.live(t, at);
        let want: Pairs = all
            .iter()
            .filter(|(k, _)| in_bounds(k, &bounds))
            .cloned()
            .collect();
        check_scan(
            || s.range(t, bounds.clone()).expect("range"),
            &want,
            steps,
            &format!("range {bounds:?} of {t} at {at}"),
        );
        if bounds == (Bound::Unbounded, Bound::Unbounded) {
            check_scan(
                || s.iter(t).expect("iter"),
                &all,
                steps,
                &format!("iter {t} at {at}"),
            );
        }
    }

    fn check_prefix(&self, sel: ViewSel, table: usize, prefix: usize, steps: &[bool]) {
        let Some((s, at)) = self.view(sel) else {
            return;
        };
        let (t, p) = (TABLES[table], PREFIXES[prefix]);
        if let Some(h) = self.model.trimmed_after(t, at) {
            let what = format!("prefix {p:?} of {t} at {at}");
            check_scan_purged(|| s.prefix(t, p).expect("prefix"), at, h, &what);
            return;
        }
        let want: Pairs = self
            .model
            .live(t, at)
            .into_iter()
            .filter(|(k, _)| k.starts_with(p))
            .collect();
        check_scan(
            || s.prefix(t, p).expect("prefix"),
            &want,
            steps,
            &format!("prefix {p:?} of {t} at {at}"),
        );
    }

    fn check_count(&self, sel: ViewSel, table: usize) {
        let Some((s, at)) = self.view(sel) else {
            return;
        };
        let t = TABLES[table];
        let r = s.count(t);
        if let Some(h) = self.model.trimmed_after(t, at) {
            assert!(
                is_purged(&r, at, h),
                "count of {t} at {at}, below the table horizon {h}: {r:?}"
            );
        } else {
            let want = self.model.live(t, at).len() as u64;
            assert_eq!(r.expect("count"), want, "count of {t} at {at}");
        }
        // Table names are never trimmed.
        assert_eq!(s.tables(), self.model.tables_at(at), "tables at {at}");
    }

    fn check_tx(&mut self, table: usize, key: usize, bounds: (Bound<usize>, Bound<usize>)) {
        let tk = tk(table, key);
        let want = self.tx_view(&tk);
        let tx = self.tx.as_ref().expect("a transaction is open");
        let (t, k) = (TABLES[table], KEYS[key]);
        check_eq!(tx.get(t, k).expect("tx get"), want, "tx get {tk:?}");
        assert_eq!(
            tx.contains(t, k).expect("tx contains"),
            want.is_some(),
            "tx contains {tk:?}"
        );
        let bounds = (key_bound(&bounds.0), key_bound(&bounds.1));
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = self
            .model
            .live(t, self.pending.base)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        for (pt, pk) in &self.pending.erasures {
            if pt == t {
                merged.remove(pk);
            }
        }
        for ((pt, pk), v) in &self.pending.writes {
            if pt == t {
                merged.insert(pk.clone(), v.clone());
            }
        }
        let want: Pairs = merged
            .into_iter()
            .filter(|(k, _)| in_bounds(k, &bounds))
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        let got = tx.range(t, bounds.clone()).expect("tx range");
        check_eq!(got, want, "tx range {bounds:?}");
    }

    fn check_transaction(&self, frac: u16) {
        let latest = self.model.latest();
        let t = u64::from(frac) % (latest + 2);
        let r = self.db().transaction(TxId(t));
        if t == 0 {
            assert!(
                matches!(r, Err(Error::NoSuchTransaction { txid: TxId(0) })),
                "transaction(0): {r:?}"
            );
        } else if t > latest {
            assert!(
                matches!(r, Err(Error::FutureTxid { requested, latest: l })
                    if requested == TxId(t) && l == TxId(latest)),
                "transaction({t}) with latest {latest}: {r:?}"
            );
        } else if t < self.model.horizon {
            let horizon = self.model.horizon;
            assert!(
                matches!(r, Err(Error::HistoryPurged { requested, horizon: h })
                    if requested == TxId(t) && h == TxId(horizon)),
                "transaction({t}) below the horizon {horizon}: {r:?}"
            );
        } else {
            self.check_record(&r.expect("transaction"));
        }
    }

    fn check_log(&self, bounds: (Bound<u8>, Bound<u8>)) {
        let latest = self.model.latest();
        let range = (txid_bound(&bounds.0), txid_bound(&bounds.1));
        let end = match range.1 {
            Bound::Included(t) => t.0,
            Bound::Excluded(t) => t.0.saturating_sub(1),
            Bound::Unbounded => latest,
        };
        let horizon = self.model.horizon;
        // An open start begins at the horizon; the start is pinned.
        let start = match range.0 {
            Bound::Included(t) => t.0.max(1),
            Bound::Excluded(t) => (t.0 + 1).max(1),
            Bound::Unbounded => horizon.max(1),
        };
        let r = self.db().log(range);
        if end > latest {
            assert!(
                matches!(r, Err(Error::FutureTxid { .. })),
                "log({range:?}) with latest {latest} is not FutureTxid"
            );
        } else if start.min(latest) < horizon {
            assert!(
                matches!(r, Err(Error::HistoryPurged { requested, horizon: h })
                    if requested == TxId(start.min(latest)) && h == TxId(horizon)),
                "log({range:?}) below the horizon {horizon}: {:?}",
                r.err()
            );
        } else {
            let got: Vec<TxRecord> = r.expect("log").collect::<Result<_, _>>().expect("log item");
            let want: Vec<u64> = (start..=latest)
                .filter(|t| in_bounds(&TxId(*t), &range))
                .collect();
            let got_txids: Vec<u64> = got.iter().map(|r| r.txid.0).collect();
            assert_eq!(got_txids, want, "log({range:?}) txids");
            for record in &got {
                self.check_record(record);
            }
        }
        self.check_feed(start.saturating_sub(1));
        let stats = self.db().stats();
        assert_eq!(stats.latest_txid.0, latest);
        assert_eq!(stats.n_versions, self.model.n_versions());
        assert_eq!(stats.n_tables, self.model.tables.len());
        assert_eq!(stats.horizon.0, horizon);
    }

    /// `changes_since(position)`: every later transaction, or
    /// `HistoryPurged` for the first one below the horizon.
    fn check_feed(&self, position: u64) {
        let (latest, horizon) = (self.model.latest(), self.model.horizon);
        let mut feed = self.db().changes_since(TxId(position));
        if position < latest && position + 1 < horizon {
            let r = feed.next();
            assert!(
                matches!(r, Some(Err(Error::HistoryPurged { requested, horizon: h }))
                    if requested == TxId(position + 1) && h == TxId(horizon)),
                "changes_since({position}) below the horizon {horizon}: {r:?}"
            );
            assert_eq!(feed.position(), TxId(position));
            return;
        }
        let got: Vec<TxRecord> = feed.by_ref().collect::<Result<_, _>>().expect("feed item");
        let got_txids: Vec<u64> = got.iter().map(|r| r.txid.0).collect();
        let want: Vec<u64> = (position + 1..=latest).collect();
        assert_eq!(got_txids, want, "changes_since({position}) txids");
        for record in &got {
            self.check_record(record);
        }
        assert_eq!(feed.position().0, latest.max(position));
    }

    fn check_as_of_time(&self, frac: u16, offset_micros: i8) {
        let latest = self.model.latest();
        let t = u64::from(frac) % (latest + 1);
        let at = match t {
            0 => 0,
            t => self.model.txs[(t - 1) as usize].commit_time.as_micros(),
        };
        let time = Timestamp::from_micros(at.saturating_add_signed(i64::from(offset_micros)));
        let want = self
            .model
            .txs
            .iter()
            .take_while(|tx| tx.commit_time <= time)
            .count() as u64;
        let r = self.db().as_of_time(time);
        let horizon = self.model.horizon;
        if want < horizon {
            assert!(
                matches!(r, Err(Error::HistoryPurged { requested, horizon: h })
                    if requested == TxId(want) && h == TxId(horizon)),
                "as_of_time({time:?}) at {want}, below the horizon {horizon}: {r:?}"
            );
        } else {
            let view = r.expect("as_of_time");
            assert_eq!(view.txid().0, want, "as_of_time({time:?})");
        }
        let future = Timestamp::from_micros(u64::MAX);
        let view = self.db().as_of_time(future).expect("as_of_time");
        assert_eq!(view.txid().0, latest, "as_of_time(far future)");
    }

    fn purge_history(&mut self, pick: TxPick, in_tx: bool) {
        if in_tx {
            self.tx();
            let base = self.pending.base;
            let before = pick.resolve(base);
            let r = self.tx().purge_history(TxId(before));
            if before > base {
                assert!(
                    matches!(r, Err(Error::FutureTxid { requested, latest })
                        if requested == TxId(before) && latest == TxId(base)),
                    "purge_history({before}) in a transaction based on {base}: {r:?}"
                );
                return;
            }
            r.expect("purge_history in a transaction");
            // Recorded only if it raises the horizon as it is now.
            if before > self.model.horizon {
                self.pending.system.push(purge_change(before));
            }
            return;
        }
        let latest = self.model.latest();
        let before = pick.resolve(latest);
        let r = self.db().purge_history(TxId(before));
        if before > latest {
            assert!(
                matches!(r, Err(Error::FutureTxid { requested, latest: l })
                    if requested == TxId(before) && l == TxId(latest)),
                "purge_history({before}) with latest {latest}: {r:?}"
            );
            return;
        }
        let mut pending = Pending {
            base: latest,
            ..Pending::default()
        };
        if before > self.model.horizon {
            pending.system.push(purge_change(before));
        }
        let oldest_view = self.oldest_view(latest);
        self.expect_commit(r, &pending, oldest_view);
    }

    fn erase(&mut self, tk: TableKey, in_tx: bool) {
        if in_tx {
            self.tx()
                .erase(&tk.0, &tk.1)
                .expect("erase in a transaction");
            // Writes to the key earlier in the transaction are dropped.
            self.pending.writes.remove(&tk);
            self.pending.system.push(erase_change(&tk));
            self.pending.erasures.push(tk);
            return;
        }
        let latest = self.model.latest();
        let r = self.db().erase(&tk.0, &tk.1).map(Some);
        let pending = Pending {
            base: latest,
            system: vec![erase_change(&tk)],
            erasures: vec![tk],
            ..Pending::default()
        };
        let oldest_view = self.oldest_view(latest);
        self.expect_commit(r, &pending, oldest_view);
    }

    /// Compaction first commits the trims the retention policies allow
    /// now, then changes no answer.
    fn compact(&mut self) {
        let latest = self.model.latest();
        // Every commit so far is at most as recent as this, and compaction
        // reads the clock later: a `keep_for` of zero protects no commit,
        // one of a day or more every commit, whatever the clock says then.
        let now = Timestamp::now();
        let trims = self.model.trims(now, self.oldest_view(latest));
        let report = self.db().compact().expect("compact");
        self.checkpointed = false;
        if trims.is_empty() {
            assert_eq!(self.db().latest_txid().0, latest, "no trim to commit");
        } else {
            let txid = TxId(latest + 1);
            assert_eq!(self.db().latest_txid(), txid, "one transaction of trims");
            let record = self.db().transaction(txid).expect("the trim transaction");
            let prev = self.model.txs.last().map(|tx| tx.commit_time);
            assert!(
                prev.is_none_or(|prev| prev <= record.commit_time),
                "commit times never decrease"
            );
            let meta = Metadata::from([("reason".to_string(), "retention policy".to_string())]);
            self.model.apply(
                TxModel {
                    meta,
                    stored: trims.clone(),
                    changes: trims,
                    erasures: Vec::new(),
                    commit_time: record.commit_time,
                },
                &BTreeSet::new(),
            );
            self.check_record(&record);
        }
        let dropped = self.model.compact();
        if self.background || std::mem::take(&mut self.sealed) {
            // The sealer's merges may have dropped some already.
            assert!(
                report.versions_dropped <= dropped,
                "versions dropped: {report:?}, {dropped} hidden"
            );
        } else {
            assert_eq!(
                report.versions_dropped, dropped,
                "versions dropped: {report:?}"
            );
        }
        assert!(report.segments_rewritten <= report.segments_scanned);
        self.db().verify().expect("verify after compaction");
        self.check_all();
    }

    /// Sealing changes no answer; it deletes the checkpoint (with history
    /// runs) and drops hidden versions only from the runs it merges.
    fn seal(&mut self) {
        let report = self.db().seal().expect("seal");
        if self.config.history_runs {
            self.checkpointed = false;
            self.sealed = true;
        } else {
            assert_eq!(report.versions_dropped, 0, "nothing to seal into");
        }
        assert!(report.segments_rewritten <= report.segments_scanned);
        self.db().verify().expect("verify after a seal");
        self.check_all();
    }

    fn revert(&mut self, table: usize, key: usize, pick: TxPick) {
        self.tx();
        let base = self.pending.base;
        let to = pick.resolve(base);
        let tk = tk(table, key);
        let now = self.tx_view(&tk);
        let r = self.tx().revert(TABLES[table], KEYS[key], TxId(to));
        let horizon = self.model.horizon;
        if to > base {
            assert!(
                matches!(r, Err(Error::FutureTxid { requested, latest })
                    if requested == TxId(to) && latest == TxId(base)),
                "revert to {to} in a transaction based on {base}: {r:?}"
            );
        } else if to < horizon {
            assert!(
                matches!(r, Err(Error::HistoryPurged { requested, horizon: h })
                    if requested == TxId(to) && h == TxId(horizon)),
                "revert to {to} below the horizon {horizon}: {r:?}"
            );
        } else if let Some(h) = self.model.trimmed_after(TABLES[table], to) {
            assert!(
                is_purged(&r, to, h),
                "revert {tk:?} to {to} below the table horizon {h}: {r:?}"
            );
        } else {
            let old = self.model.get(&tk, to);
            let changes = r.expect("revert");
            assert_eq!(
                changes,
                now != old,
                "revert {tk:?} to {to} reports a change"
            );
            self.pending.writes.insert(tk, old);
        }
    }

    fn undo(&mut self, pick: TxPick) {
        self.tx();
        let base = self.pending.base;
        let t = pick.resolve(base);
        let r = self.tx().undo(TxId(t));
        let horizon = self.model.horizon;
        if t > base {
            assert!(
                matches!(r, Err(Error::FutureTxid { requested, latest })
                    if requested == TxId(t) && latest == TxId(base)),
                "undo({t}) in a transaction based on {base}: {r:?}"
            );
            return;
        }
        if t == 0 {
            assert!(
                matches!(r, Err(Error::NoSuchTransaction { txid: TxId(0) })),
                "undo(0): {r:?}"
            );
            return;
        }
        // Undo needs the state before `t`: refused first if it was purged.
        if t - 1 < horizon {
            assert!(
                matches!(r, Err(Error::HistoryPurged { requested, horizon: h })
                    if requested == TxId(t - 1) && h == TxId(horizon)),
                "undo({t}) needs the state at {} below the horizon {horizon}: {r:?}",
                t - 1
            );
            return;
        }
        let record = self.model.record_changes(t);
        let data: Vec<TableKey> = record
            .iter()
            .filter(|c| c.table != SYSTEM_TABLE)
            .map(|c| (c.table.clone(), c.key.clone()))
            .collect();
        // A later transaction up to the snapshot changed one of its keys:
        // the first such key in record order is named.
        let conflict = data.iter().find(|tk| {
            self.model
                .versions
                .get(*tk)
                .is_some_and(|chain| chain.keys().any(|x| (t + 1..=base).contains(x)))
        });
        if let Some(tk) = conflict {
            assert!(
                matches!(&r, Err(Error::Conflict { table, key })
                    if *table == tk.0 && key.0 == tk.1),
                "undo({t}) after a later change of {tk:?}: {r:?}"
            );
            return;
        }
        // Then the state before `t` is read key by key, in record order.
        // A change whose version a trim dropped is not in the record, so it
        // is neither undone nor refused (before the trim it conflicted with
        // the version that superseded it).
        let trimmed = data
            .iter()
            .find_map(|tk| Some((tk, self.model.trimmed_after(&tk.0, t - 1)?)));
        if let Some((tk, h)) = trimmed {
            assert!(
                is_purged(&r, t - 1, h),
                "undo({t}) reads {tk:?} at {} below the table horizon {h}: {r:?}",
                t - 1
            );
            return;
        }
        r.expect("undo");
        for tk in data {
            let old = self.model.get(&tk, t - 1);
            self.pending.writes.insert(tk, old);
        }
    }

    fn check_diff(&self, table: usize, from: u16, to: u16) {
        let (latest, horizon) = (self.model.latest(), self.model.horizon);
        let from = u64::from(from) % (latest + 2);
        let to = u64::from(to) % (latest + 2);
        let t = TABLES[table];
        let r = self.db().diff(t, TxId(from), TxId(to));
        // `from` is checked first.
        for x in [from, to] {
            if x > latest {
                assert!(
                    matches!(r, Err(Error::FutureTxid { requested, latest: l })
                        if requested == TxId(x) && l == TxId(latest)),
                    "diff({from}, {to}) with latest {latest}: {r:?}"
                );
                return;
            }
            if x < horizon {
                assert!(
                    matches!(r, Err(Error::HistoryPurged { requested, horizon: h })
                        if requested == TxId(x) && h == TxId(horizon)),
                    "diff({from}, {to}) below the horizon {horizon}: {r:?}"
                );
                return;
            }
        }
        // Then the table's horizon, at the older txid first.
        for x in [from.min(to), from.max(to)] {
            if let Some(h) = self.model.trimmed_after(t, x) {
                assert!(
                    is_purged(&r, x, h),
                    "diff({from}, {to}) of {t} below the table horizon {h}: {r:?}"
                );
                return;
            }
        }
        check_eq!(
            r.expect("diff"),
            self.model.diff(t, from, to),
            "diff of {t} from {from} to {to}"
        );
    }

    /// Every key and table at the latest txid, in the held view and on
    /// both sides of each table's horizon; the whole log, and a diff across
    /// all readable history.
    fn check_all(&self) {
        assert_eq!(
            self.db().stats().background_error,
            None,
            "background sealer"
        );
        let latest = self.model.latest();
        // Txids as fractions: `x % (latest + 2) == x` here.
        let frac = |x: u64| u16::try_from(x).expect("few txids");
        for (table, name) in TABLES.iter().enumerate() {
            let from = self.model.readable_from(name);
            let mut views = vec![ViewSel::Latest, ViewSel::Held];
            if from > self.model.horizon {
                views.extend([ViewSel::AsOf(frac(from - 1)), ViewSel::AsOf(frac(from))]);
            }
            let all = (Bound::Unbounded, Bound::Unbounded);
            for &view in &views {
                for key in 0..KEYS.len() {
                    self.check_get(view, table, key);
                    self.check_history(view, table, key, all, false, None);
                }
                self.check_count(view, table);
                let keys = (Bound::Unbounded, Bound::Unbounded);
                self.check_range(view, table, keys, &[]);
            }
            self.check_diff(table, frac(from), frac(latest));
            if from > self.model.horizon {
                self.check_diff(table, frac(from - 1), frac(latest));
            }
        }
        self.check_log((Bound::Unbounded, Bound::Unbounded));
    }
}

fn run(record_identical_updates: bool, history_runs: bool, background: bool, ops: &[TestOp]) {
    let mut h = Harness::new(record_identical_updates, history_runs, background);
    for op in ops {
        h.step(op);
    }
    // Everything committed survives a last reopen; horizon and erasures
    // persist.
    h.reopen();
    h.db().verify().expect("verify after the last reopen");
    h.check_all();
}

proptest! {
    #![proptest_config(proptest_config(1))]

    #[test]
    fn db_matches_reference_model(
        record_identical_updates in proptest::bool::weighted(0.2),
        history_runs in proptest::bool::weighted(0.75),
        background in proptest::bool::weighted(0.4),
        ops in proptest::collection::vec(op(), 1..96),
    ) {
        run(record_identical_updates, history_runs, background, &ops);
    }
}

// ---------------------------------------------------------------------------
// Scans across batch boundaries: many keys, most of them perhaps deleted, so
// range iterators refill from both ends several times.

fn scan_key(i: u32) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

proptest! {
    #![proptest_config(proptest_config(16))]

    #[test]
    fn scans_over_many_keys_match_model(
        n_keys in 0..1400u32,
        deleted_per_mille in 0..=1000u32,
        seed in any::<u64>(),
        bounds in (bound(0..1500u32), bound(0..1500u32)),
        runs in proptest::collection::vec((any::<bool>(), 0..400usize), 0..6),
    ) {
        let dir = tempfile::tempdir().expect("create temp dir");
        let db = Db::open_with(dir.path(), db_config(false, true, false)).expect("open");
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut tx = db.begin();
        for i in 0..n_keys {
            tx.put("t", scan_key(i), i.to_le_bytes()).expect("put");
            model.insert(scan_key(i), i.to_le_bytes().to_vec());
        }
        let t1 = tx.commit().expect("commit").unwrap_or(TxId(0));
        let mut tx = db.begin();
        let mut x = seed | 1;
        for i in 0..n_keys {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (x % 1000) < u64::from(deleted_per_mille) {
                tx.delete("t", scan_key(i)).expect("delete");
                model.remove(&scan_key(i));
            }
        }
        tx.commit().expect("commit");
        let bounds = (bounds.0.map(scan_key), bounds.1.map(scan_key));
        let want: Pairs = model
            .into_iter()
            .filter(|(k, _)| in_bounds(k, &bounds))
            .collect();
        let steps: Vec<bool> = runs
            .iter()
            .flat_map(|&(front, n)| std::iter::repeat_n(front, n))
            .collect();
        let view = db.snapshot();
        check_scan(|| view.range("t", bounds.clone()).expect("range"), &want, &steps, "latest");
        let n_live = want.len() as u64;
        if bounds == (Bound::Unbounded, Bound::Unbounded) {
            assert_eq!(view.count("t").expect("count"), n_live);
        }
        // The older view still sees every key.
        let old = db.as_of(t1).expect("as_of");
        let n_old = old.range("t", bounds.clone()).expect("range").count();
        let want_old = (0..n_keys).filter(|i| in_bounds(&scan_key(*i), &bounds)).count();
        assert_eq!(n_old, want_old);
        // A partly consumed iterator is not disturbed by a commit that
        // deletes every other key and inserts keys between the others.
        let iter = view.range("t", bounds.clone()).expect("range");
        let got: Pairs = walk_with(iter, &steps, || {
            let mut tx = db.begin();
            for i in 0..n_keys {
                if i % 2 == 0 {
                    tx.delete("t", scan_key(i)).expect("delete");
                } else {
                    let mut k = scan_key(i);
                    k.push(b'+');
                    tx.put("t", k, b"new").expect("put");
                }
            }
            tx.commit().expect("commit");
        })
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("scan item");
        check_eq!(got, walk(want.iter().cloned(), &steps), "walk across a commit");
    }
}
