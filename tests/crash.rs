//! Real crash tests: a child process commits in a loop and prints each
//! acknowledged txid; the parent SIGKILLs it at a random moment, reopens
//! the database and checks that every acknowledged commit is there, whole,
//! with dense txids and valid version chains.
//!
//! The child is this same test binary, re-executed with
//! `TIMECASK_CRASH_CHILD` set and filtered to `crash_child_entry`.
//! Rounds: 50 per durability mode by default, `TIMECASK_CRASH_ROUNDS` for more.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use timecask::{Config, Db, Durability, HistoryQuery, Op, TxId};

const CHILD_ENV: &str = "TIMECASK_CRASH_CHILD";
const KEYS: u64 = 40;

fn config(durability: Durability) -> Config {
    Config {
        durability,
        segment_roll_bytes: 256 * 1024,
        // The two tests fork children from one process: a child forked by
        // one test briefly holds (until exec) the lock the other test just
        // released.
        lock_timeout: Duration::from_secs(10),
        ..Config::default()
    }
}

/// The value transaction `i` writes: sometimes large, so a kill can land
/// in the middle of a multi-page write.
fn value_for(i: u64) -> Vec<u8> {
    let len = if i.is_multiple_of(17) {
        70_000 + (i % 5) * 1000
    } else {
        20 + i % 90
    };
    let mut v = format!("{i}:").into_bytes();
    v.resize(len as usize, b'a' + (i % 26) as u8);
    v
}

/// Child side: commit forever, print `txid i` after each acknowledged commit.
#[test]
fn crash_child_entry() {
    let Some(spec) = std::env::var_os(CHILD_ENV) else {
        return; // Only does something when re-executed by `run_crash_rounds`.
    };
    let spec = spec.into_string().expect("utf-8 spec");
    let (mode, dir) = spec.split_once(':').expect("mode:dir");
    let durability = if mode == "immediate" {
        Durability::Immediate
    } else {
        Durability::Buffered
    };
    let db = Db::open_with(dir, config(durability)).expect("child open");
    let mut stdout = std::io::stdout().lock();
    let mut i = db.latest_txid().0;
    loop {
        i += 1;
        let mut tx = db.begin();
        tx.set_meta("i", i.to_string()).expect("meta");
        tx.put("kv", (i % KEYS).to_be_bytes(), value_for(i))
            .expect("put");
        tx.put("seq", i.to_be_bytes(), i.to_le_bytes())
            .expect("put");
        if i.is_multiple_of(11) {
            tx.delete("kv", ((i + 3) % KEYS).to_be_bytes())
                .expect("delete");
        }
        let txid = tx.commit().expect("commit").expect("changed");
        assert_eq!(txid, TxId(i), "child txids follow i");
        writeln!(stdout, "{} {i}", txid.0).expect("stdout");
        stdout.flush().expect("flush");
    }
}

/// Checks everything the parent can know after a crash.
fn check_after_crash(dir: &Path, durability: Durability, acknowledged: u64) {
    let db = Db::open_with(dir, config(durability)).expect("reopen after SIGKILL");
    let latest = db.latest_txid();
    assert!(
        latest.0 >= acknowledged,
        "acknowledged txid {acknowledged} lost: latest is {latest}"
    );
    // Every transaction is whole and in order; txids are dense.
    let mut prev_time = None;
    for record in db.log(..).expect("log") {
        let record = record.expect("record");
        let i = record.txid.0;
        assert_eq!(record.meta["i"], i.to_string(), "tx {i} metadata");
        let seq: Vec<_> = record.changes.iter().filter(|c| c.table == "seq").collect();
        assert_eq!(seq.len(), 1, "tx {i} has its seq row");
        assert_eq!(seq[0].value.as_deref(), Some(&i.to_le_bytes()[..]));
        let kv = record
            .changes
            .iter()
            .find(|c| c.table == "kv" && c.key == (i % KEYS).to_be_bytes());
        assert_eq!(
            kv.and_then(|c| c.value.clone()),
            Some(value_for(i)),
            "tx {i} value intact"
        );
        assert!(prev_time <= Some(record.commit_time));
        prev_time = Some(record.commit_time);
    }
    // Chains: ops alternate by liveness, txids strictly increase.
    for k in 0..KEYS {
        let history = db
            .snapshot()
            .history("kv", k.to_be_bytes(), HistoryQuery::all())
            .expect("history");
        let mut live = false;
        let mut prev = TxId(0);
        for v in history {
            assert!(v.txid > prev);
            prev = v.txid;
            let expected = match (live, v.value.is_some()) {
                (false, true) => Op::Insert,
                (true, true) => Op::Update,
                (true, false) => Op::Delete,
                (false, false) => panic!("delete of a dead key recorded at {}", v.txid),
            };
            assert_eq!(v.op, expected, "key {k} at {}", v.txid);
            live = v.value.is_some();
        }
    }
    assert_eq!(db.snapshot().count("seq").expect("count"), latest.0);
}

fn run_crash_rounds(durability: Durability, mode: &str) {
    let rounds: u64 = std::env::var("TIMECASK_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let stderr_path = logs.path().join("child-stderr.log");
    let exe = std::env::current_exe().expect("test binary path");
    let mut seed = 0x2545_F491_4F6C_DD1Du64 ^ rounds;
    let mut acknowledged = 0;
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{mode}:{}", dir.path().display()))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).expect("child stderr file"))
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let (sender, receiver) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Some((txid, _)) = line.split_once(' ') else {
                    continue;
                };
                if let Ok(txid) = txid.parse::<u64>() {
                    let _ = sender.send(txid);
                }
            }
        });
        // Wait for the child to start committing, then kill it at a random
        // moment a little later.
        let first = receiver
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                panic!("round {round}: the child committed nothing ({e}); its stderr:\n{stderr}")
            });
        acknowledged = acknowledged.max(first);
        std::thread::sleep(Duration::from_micros(seed % 20_000));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap child");
        reader.join().expect("reader thread");
        acknowledged = receiver.try_iter().fold(acknowledged, u64::max);
        check_after_crash(dir.path(), durability, acknowledged);
        assert!(acknowledged > 0, "round {round} acknowledged nothing");
    }
}

#[test]
fn sigkill_loses_no_acknowledged_commit_immediate() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    run_crash_rounds(Durability::Immediate, "immediate");
}

#[test]
fn sigkill_loses_no_acknowledged_commit_buffered() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    run_crash_rounds(Durability::Buffered, "buffered");
}
