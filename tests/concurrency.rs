//! Concurrency stress with invariants: bank transfers by several writers
//! under snapshot isolation while readers check totals and held snapshots.
//! Bounded in count, not in wall-clock time.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use timecask::{Config, Db, Durability, Error, TxId};

const ACCOUNTS: u64 = 16;
const START_BALANCE: u64 = 1_000;

fn key(account: u64) -> [u8; 8] {
    account.to_be_bytes()
}

fn balance(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("8-byte balance"))
}

/// A tiny deterministic PRNG per thread (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Every balance at the view's txid, by account.
fn balances(view: &timecask::Snapshot) -> BTreeMap<Vec<u8>, u64> {
    view.iter("bank")
        .expect("iter")
        .map(|kv| kv.map(|(k, v)| (k, balance(&v))))
        .collect::<Result<_, _>>()
        .expect("scan")
}

fn open_bank(dir: &std::path::Path, durability: Durability) -> Db {
    let db = Db::open_with(
        dir,
        Config {
            durability,
            // Small segments and a low sealing threshold: the background
            // sealer moves history into runs while readers scan, read as
            // of the past and hold snapshots across the switch.
            segment_roll_bytes: timecask::limits::SEGMENT_ROLL_SIZE_MIN,
            seal_log_bytes: Some(16 * 1024),
            run_block_bytes: 1024,
            ..Config::default()
        },
    )
    .expect("open");
    let mut tx = db.begin();
    for a in 0..ACCOUNTS {
        tx.insert("bank", key(a), START_BALANCE.to_le_bytes())
            .expect("insert");
    }
    tx.commit().expect("commit");
    db
}

/// Moves a random amount between two random accounts, retrying on conflict.
/// Returns whether it committed (an empty account has nothing to move) and
/// how many conflicts it met.
fn transfer(db: &Db, rng: &mut Rng) -> (bool, u64) {
    let mut conflicts = 0;
    loop {
        let from = rng.below(ACCOUNTS);
        let to = (from + 1 + rng.below(ACCOUNTS - 1)) % ACCOUNTS;
        let mut tx = db.begin();
        let a = balance(
            &tx.get("bank", key(from))
                .expect("get")
                .expect("account exists"),
        );
        let b = balance(
            &tx.get("bank", key(to))
                .expect("get")
                .expect("account exists"),
        );
        let amount = 1 + rng.below(a.clamp(1, 50));
        if amount > a {
            return (false, conflicts);
        }
        tx.set_meta("kind", "transfer").expect("meta");
        tx.update("bank", key(from), (a - amount).to_le_bytes())
            .expect("update");
        tx.update("bank", key(to), (b + amount).to_le_bytes())
            .expect("update");
        match tx.commit() {
            Ok(Some(_)) => return (true, conflicts),
            Ok(None) => unreachable!("a transfer of a positive amount changes two keys"),
            Err(Error::Conflict { table, .. }) => {
                assert_eq!(table, "bank");
                conflicts += 1;
            }
            Err(e) => panic!("transfer failed: {e}"),
        }
    }
}

fn run_bank(durability: Durability, writers: u64, transfers_each: u64, readers: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_bank(dir.path(), durability);
    let total = ACCOUNTS * START_BALANCE;
    let done = Arc::new(AtomicBool::new(false));
    let conflicts = Arc::new(AtomicU64::new(0));
    let committed = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new((writers + readers) as usize));
    let mut handles = Vec::new();
    for w in 0..writers {
        let (db, barrier) = (db.clone(), Arc::clone(&barrier));
        let (conflicts, committed) = (Arc::clone(&conflicts), Arc::clone(&committed));
        handles.push(thread::spawn(move || {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w + 1));
            barrier.wait();
            for _ in 0..transfers_each {
                let (ok, n_conflicts) = transfer(&db, &mut rng);
                conflicts.fetch_add(n_conflicts, Ordering::Relaxed);
                committed.fetch_add(u64::from(ok), Ordering::Relaxed);
            }
        }));
    }
    let mut reader_handles = Vec::new();
    for r in 0..readers {
        let (db, done, barrier) = (db.clone(), Arc::clone(&done), Arc::clone(&barrier));
        reader_handles.push(thread::spawn(move || {
            let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (r + 1));
            let held = db.snapshot();
            let held_state = balances(&held);
            barrier.wait();
            let mut checks = 0u64;
            // Check at least a few times even if the writers finish first.
            while !done.load(Ordering::Relaxed) || checks < 20 {
                let latest = db.latest_txid();
                let view = if rng.below(2) == 0 {
                    db.snapshot()
                } else {
                    db.as_of(TxId(1 + rng.below(latest.0))).expect("past view")
                };
                let state = balances(&view);
                assert_eq!(state.len() as u64, ACCOUNTS, "at txid {}", view.txid());
                assert_eq!(
                    state.values().sum::<u64>(),
                    total,
                    "total at txid {}",
                    view.txid()
                );
                // Reading the same view twice gives the same answer.
                assert_eq!(
                    balances(&view),
                    state,
                    "view at txid {} changed",
                    view.txid()
                );
                assert_eq!(balances(&held), held_state, "held snapshot changed");
                checks += 1;
            }
            checks
        }));
    }
    for h in handles {
        h.join().expect("writer thread");
    }
    done.store(true, Ordering::Relaxed);
    for h in reader_handles {
        assert!(h.join().expect("reader thread") >= 20);
    }
    // Every transfer committed exactly once, with dense txids.
    let latest = db.latest_txid();
    assert_eq!(latest, TxId(1 + committed.load(Ordering::Relaxed)));
    let log: Vec<_> = db
        .log(..)
        .expect("log")
        .collect::<Result<_, _>>()
        .expect("records");
    for r in log.iter().skip(1) {
        assert!(
            r.changes.len() == 2 && r.meta.get("kind").map(String::as_str) == Some("transfer"),
            "record {:?} of {} (latest {latest})",
            r,
            log.len()
        );
    }
    assert!(
        log.windows(2)
            .all(|w| w[0].txid.next() == w[1].txid && w[0].commit_time <= w[1].commit_time)
    );
    // Every past state still sums to the total, after a reopen too.
    let sample: Vec<TxId> = (1..=latest.0).step_by(7).map(TxId).collect();
    let before: Vec<_> = sample
        .iter()
        .map(|t| balances(&db.as_of(*t).expect("view")))
        .collect();
    assert_eq!(db.stats().background_error, None);
    assert!(
        common::run_file_count(dir.path()) > 0,
        "the sealer ran meanwhile"
    );
    db.verify().expect("verify");
    drop(db);
    let db = Db::open(dir.path()).expect("reopen");
    for (t, state) in sample.iter().zip(&before) {
        let again = balances(&db.as_of(*t).expect("view"));
        assert_eq!(&again, state, "as of {t} after reopen");
        assert_eq!(again.values().sum::<u64>(), total);
    }
    eprintln!(
        "bank {durability:?}: {} transfers by {writers} writers, {} conflicts retried",
        committed.load(Ordering::Relaxed),
        conflicts.load(Ordering::Relaxed)
    );
}

#[test]
fn bank_transfers_keep_total_buffered() {
    run_bank(Durability::Buffered, 4, 300, 2);
}

#[test]
fn bank_transfers_keep_total_immediate() {
    run_bank(Durability::Immediate, 4, 60, 2);
}

#[test]
fn concurrent_immediate_commits_are_all_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let threads = 8u64;
    let per_thread = 25u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            thread::spawn(move || {
                let mut txids = Vec::new();
                for i in 0..per_thread {
                    let mut tx = db.begin();
                    tx.put("t", format!("{t}-{i}"), i.to_le_bytes())
                        .expect("put");
                    let txid = tx.commit().expect("commit").expect("changed");
                    // Visible to this thread as soon as commit returns.
                    assert!(db.latest_txid() >= txid);
                    assert!(
                        db.snapshot()
                            .contains("t", format!("{t}-{i}"))
                            .expect("contains")
                    );
                    txids.push(txid);
                }
                assert!(txids.windows(2).all(|w| w[0] < w[1]));
                txids
            })
        })
        .collect();
    let mut all: Vec<TxId> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    all.sort();
    assert_eq!(
        all,
        (1..=threads * per_thread).map(TxId).collect::<Vec<_>>()
    );
    drop(db);
    let db = Db::open(dir.path()).expect("reopen");
    assert_eq!(
        db.snapshot().count("t").expect("count"),
        threads * per_thread
    );
}

#[test]
fn first_committer_wins_and_loser_names_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let mut setup = db.begin();
    setup.put("t", "k", "0").expect("put");
    setup.commit().expect("commit");
    let mut a = db.begin();
    let mut b = db.begin();
    a.put("t", "k", "a").expect("put");
    b.put("t", "k", "b").expect("put");
    b.put("t", "other", "b").expect("put");
    assert_eq!(a.commit().expect("first wins"), Some(TxId(2)));
    match b.commit() {
        Err(Error::Conflict { table, key }) => {
            assert_eq!(table, "t");
            assert_eq!(key.0, b"k".to_vec());
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The loser wrote nothing; disjoint writers both commit.
    assert!(!db.snapshot().contains("t", "other").expect("contains"));
    let mut c = db.begin();
    let mut d = db.begin();
    c.put("t", "c", "1").expect("put");
    d.put("t", "d", "1").expect("put");
    assert_eq!(c.commit().expect("commit"), Some(TxId(3)));
    assert_eq!(d.commit().expect("commit"), Some(TxId(4)));
}

#[test]
fn write_skew_is_possible_under_snapshot_isolation() {
    // Documented behaviour: two transactions that each read both keys and
    // write a different one both commit (SI, not serializable).
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let mut setup = db.begin();
    setup.put("oncall", "alice", "1").expect("put");
    setup.put("oncall", "bob", "1").expect("put");
    setup.commit().expect("commit");
    let mut a = db.begin();
    let mut b = db.begin();
    assert_eq!(a.range::<&str>("oncall", ..).expect("range").len(), 2);
    assert_eq!(b.range::<&str>("oncall", ..).expect("range").len(), 2);
    a.delete("oncall", "alice").expect("delete");
    b.delete("oncall", "bob").expect("delete");
    a.commit().expect("commit");
    b.commit().expect("commit");
    assert_eq!(db.snapshot().count("oncall").expect("count"), 0);
}

#[test]
fn a_write_that_looks_like_a_no_op_still_loses_to_a_newer_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let mut setup = db.begin();
    setup.put("t", "k", "x").expect("put");
    setup.commit().expect("commit");
    // Identical put vs a concurrent change: a lost update unless refused.
    let mut t1 = db.begin();
    t1.put("t", "k", "x").expect("put");
    let mut t2 = db.begin();
    t2.put("t", "k", "y").expect("put");
    t2.commit().expect("commit");
    assert!(matches!(t1.commit(), Err(Error::Conflict { .. })));
    // Delete of an absent key vs a concurrent insert.
    let mut t1 = db.begin();
    t1.delete("t", "new").expect("delete");
    let mut t2 = db.begin();
    t2.insert("t", "new", "v").expect("insert");
    t2.commit().expect("commit");
    assert!(matches!(t1.commit(), Err(Error::Conflict { .. })));
    assert_eq!(
        db.snapshot().get("t", "k").expect("get"),
        Some(b"y".to_vec())
    );
}

#[test]
fn creating_a_table_someone_else_created_meanwhile_commits_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let mut t1 = db.begin();
    t1.create_table("new").expect("create");
    let mut t2 = db.begin();
    t2.put("new", "k", "v").expect("put");
    assert_eq!(t2.commit().expect("commit"), Some(TxId(1)));
    assert_eq!(t1.commit().expect("commit"), None);
    assert_eq!(db.latest_txid(), TxId(1));
}
