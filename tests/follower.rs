//! Followers: a read-only `Db` in this process follows a writer in another
//! process through `Db::refresh` and a blocking change feed, while the
//! writer rolls segments, seals them into history runs, merges runs and
//! deletes the segments the follower read.
//!
//! The writer is this same test binary, re-executed with
//! `TIMECASK_FOLLOW_CHILD=profile:dir` and filtered to
//! `follower_writer_entry`; it reads one command per line on stdin and
//! answers `ok <latest txid>` on stdout. What txid `i` writes is a
//! function of `i`, so the parent keeps a reference model of every key.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use timecask::{Config, Db, HistoryQuery, Op, TxId};

mod common;

const CHILD_ENV: &str = "TIMECASK_FOLLOW_CHILD";
/// Keys of table `kv` the writer updates.
const KEYS: u64 = 13;
/// How long anything may take before a test gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// The writer's settings, by name.
fn config(profile: &str) -> Config {
    let base = Config {
        lock_timeout: Duration::from_secs(10),
        ..Config::default()
    };
    match profile {
        // Tiny segments sealed by the background sealer into small runs,
        // which it merges as they pile up.
        "runs" => Config {
            segment_roll_bytes: 4096,
            seal_log_bytes: Some(4096),
            run_block_bytes: 512,
            ..base
        },
        // One large segment and no background sealing.
        "quiet" => Config {
            seal_log_bytes: None,
            ..base
        },
        // No history runs: compaction rewrites sealed segments in place.
        "plain" => Config {
            segment_roll_bytes: 4096,
            history_runs: false,
            seal_log_bytes: None,
            ..base
        },
        other => panic!("unknown profile {other}"),
    }
}

/// The value txid `i` writes to `kv`: sometimes larger than a run block.
fn value_for(i: u64) -> Vec<u8> {
    let len = if i.is_multiple_of(9) {
        700
    } else {
        10 + i % 40
    };
    let mut v = format!("{i}:").into_bytes();
    v.resize(len as usize, b'a' + (i % 26) as u8);
    v
}

/// The key txid `i` puts.
fn put_key(i: u64) -> u64 {
    i % KEYS
}

/// The key txid `i` deletes, if any (a delete of an absent key writes
/// nothing).
fn delete_key(i: u64) -> Option<u64> {
    i.is_multiple_of(7).then_some((i + 3) % KEYS)
}

/// Writer side: runs commands from stdin until `exit` or end of input.
#[test]
fn follower_writer_entry() {
    let Some(spec) = std::env::var_os(CHILD_ENV) else {
        return; // Only does something when re-executed by `Writer::spawn`.
    };
    let spec = spec.into_string().expect("utf-8 spec");
    let (profile, dir) = spec.split_once(':').expect("profile:dir");
    let db = Db::open_with(dir, config(profile)).expect("writer open");
    let mut out = std::io::stdout().lock();
    // The harness has printed "test follower_writer_entry ... " without
    // a newline: answers start on lines of their own.
    writeln!(out).expect("stdout");
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("command");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["commit", n] => {
                for _ in 0..n.parse::<u64>().expect("count") {
                    commit_next(&db);
                }
            }
            ["stream", n, pause_ms] => {
                let pause = Duration::from_millis(pause_ms.parse().expect("ms"));
                for _ in 0..n.parse::<u64>().expect("count") {
                    let txid = commit_next(&db);
                    writeln!(out, "txid {}", txid.0).expect("stdout");
                    out.flush().expect("flush");
                    std::thread::sleep(pause);
                }
            }
            ["compact"] => {
                db.compact().expect("compact");
            }
            ["erase", k] => {
                db.erase("kv", k.parse::<u64>().expect("key").to_be_bytes())
                    .expect("erase");
            }
            ["exit"] => return,
            _ => panic!("unknown command {line:?}"),
        }
        writeln!(out, "ok {}", db.latest_txid().0).expect("stdout");
        out.flush().expect("flush");
    }
}

/// Commits the transaction whose content is a function of its txid.
fn commit_next(db: &Db) -> TxId {
    let i = db.latest_txid().0 + 1;
    let mut tx = db.begin();
    tx.set_meta("i", i.to_string()).expect("meta");
    tx.put("kv", put_key(i).to_be_bytes(), value_for(i))
        .expect("put");
    tx.put("seq", i.to_be_bytes(), i.to_le_bytes())
        .expect("put");
    if let Some(k) = delete_key(i) {
        tx.delete("kv", k.to_be_bytes()).expect("delete");
    }
    let txid = tx.commit().expect("commit").expect("changed");
    assert_eq!(txid, TxId(i));
    txid
}

/// The writer process and the lines it prints.
struct Writer {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Writer {
    fn spawn(profile: &str, dir: &Path) -> Writer {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "follower_writer_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{profile}:{}", dir.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn writer");
        let stdin = child.stdin.take().expect("writer stdin");
        let stdout = child.stdout.take().expect("writer stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The test harness prints its own lines too.
                if (line.starts_with("ok ") || line.starts_with("txid "))
                    && send.send(line).is_err()
                {
                    break;
                }
            }
        });
        Writer {
            child,
            stdin,
            lines,
        }
    }

    /// Sends one command without waiting for its answer.
    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("send to writer");
        self.stdin.flush().expect("flush to writer");
    }

    /// The next line the writer prints: `(word, txid)`.
    #[track_caller]
    fn next_line(&self) -> (String, TxId) {
        let line = self
            .lines
            .recv_timeout(PATIENCE)
            .expect("the writer answers (see its stderr above)");
        let (word, txid) = line.split_once(' ').expect("word and txid");
        (word.to_string(), TxId(txid.parse().expect("txid")))
    }

    /// Runs one command; returns the writer's latest txid after it.
    #[track_caller]
    fn run(&mut self, command: &str) -> TxId {
        self.send(command);
        let (word, txid) = self.next_line();
        assert_eq!(word, "ok", "answer to {command:?}");
        txid
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "exit");
        let _ = self.stdin.flush();
        if std::thread::panicking() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// What the writer wrote: per key of `kv`, its versions (`None` a delete).
#[derive(Default)]
struct Model {
    kv: BTreeMap<u64, BTreeMap<TxId, Option<Vec<u8>>>>,
    latest: TxId,
}

impl Model {
    fn live(&self, k: u64) -> bool {
        self.kv
            .get(&k)
            .and_then(|versions| versions.values().next_back())
            .is_some_and(Option::is_some)
    }

    /// Adds what `commit_next` wrote up to `txid`.
    fn commits_through(&mut self, txid: TxId) {
        while self.latest < txid {
            let i = self.latest.0 + 1;
            self.kv
                .entry(put_key(i))
                .or_default()
                .insert(TxId(i), Some(value_for(i)));
            if let Some(k) = delete_key(i)
                && self.live(k)
            {
                self.kv.entry(k).or_default().insert(TxId(i), None);
            }
            self.latest = TxId(i);
        }
    }

    /// An erasure of `k` at `txid` (the next txid).
    fn erase(&mut self, k: u64, txid: TxId) {
        assert_eq!(txid, self.latest.next());
        self.kv.remove(&k);
        self.latest = txid;
    }

    /// The versions of `k` up to `at`: (txid, op, value).
    fn history(&self, k: u64, at: TxId) -> Vec<(TxId, Op, Option<Vec<u8>>)> {
        let mut live = false;
        let mut out = Vec::new();
        for (txid, value) in self.kv.get(&k).into_iter().flatten() {
            if *txid > at {
                break;
            }
            let op = match (live, value.is_some()) {
                (false, _) => Op::Insert,
                (true, true) => Op::Update,
                (true, false) => Op::Delete,
            };
            live = value.is_some();
            out.push((*txid, op, value.clone()));
        }
        out
    }
}

/// The versions of `k` a view shows: (txid, op, value).
fn history(view: &timecask::Snapshot, k: u64) -> Vec<(TxId, Op, Option<Vec<u8>>)> {
    view.history("kv", k.to_be_bytes(), HistoryQuery::all())
        .expect("history")
        .into_iter()
        .map(|v| (v.txid, v.op, v.value))
        .collect()
}

/// Checks a view against the model: every key's value and history as of
/// the view's txid.
#[track_caller]
fn check_view(view: &timecask::Snapshot, model: &Model) {
    let at = view.txid();
    for k in 0..KEYS {
        let expected = model.history(k, at);
        assert_eq!(history(view, k), expected, "history of key {k} as of {at}");
        let value = expected.last().and_then(|(_, _, v)| v.clone());
        assert_eq!(
            view.get("kv", k.to_be_bytes()).expect("get"),
            value,
            "key {k} as of {at}"
        );
    }
}

/// Checks the follower as of its latest txid and a few older ones against
/// the model, and against a fresh read-only open of the same directory.
#[track_caller]
fn check_follower(follower: &Db, dir: &Path, model: &Model) {
    let latest = follower.latest_txid();
    assert_eq!(latest, model.latest, "the follower caught up");
    check_view(&follower.snapshot(), model);
    for back in [1, 5, 17] {
        if let Some(t) = latest.0.checked_sub(back) {
            check_view(&follower.as_of(TxId(t)).expect("as_of"), model);
        }
    }
    // The follower equals what a new open reads from the same files.
    let fresh = Db::open_read_only(dir).expect("fresh read-only open");
    assert!(fresh.latest_txid() >= latest);
    let fresh_view = fresh.as_of(latest).expect("fresh as_of");
    let view = follower.snapshot();
    for k in 0..KEYS {
        let query = HistoryQuery::all();
        assert_eq!(
            view.history("kv", k.to_be_bytes(), query.clone())
                .expect("history"),
            fresh_view
                .history("kv", k.to_be_bytes(), query)
                .expect("fresh history"),
            "key {k}: the follower and a fresh open differ"
        );
    }
    assert_eq!(
        view.count("seq").expect("count"),
        fresh_view.count("seq").expect("count")
    );
    let from = TxId(latest.0.saturating_sub(3).max(1));
    if latest > TxId::ZERO {
        let mine: Vec<_> = follower.log(from..=latest).expect("log").collect();
        let theirs: Vec<_> = fresh.log(from..=latest).expect("log").collect();
        assert_eq!(
            mine.into_iter()
                .map(|r| r.expect("record"))
                .collect::<Vec<_>>(),
            theirs
                .into_iter()
                .map(|r| r.expect("record"))
                .collect::<Vec<_>>(),
        );
    }
}

/// A database with a few commits made by a writer that then exits, so a
/// follower can open it before the test's writer starts.
fn seeded(profile: &str, n: u64) -> (tempfile::TempDir, Model) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Model::default();
    let mut writer = Writer::spawn(profile, dir.path());
    model.commits_through(writer.run(&format!("commit {n}")));
    drop(writer);
    (dir, model)
}

fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

#[test]
fn refresh_follows_commits_rolls_seals_and_merges_of_another_process() {
    if is_child() {
        return;
    }
    let (dir, mut model) = seeded("runs", 3);
    let follower = Db::open_read_only(dir.path()).expect("follower open");
    let mut writer = Writer::spawn("runs", dir.path());
    // Views taken along the way, each checked again after every refresh.
    let mut held = vec![follower.snapshot()];
    for round in 0..40u64 {
        let n = 1 + round % 6;
        let txid = writer.run(&format!("commit {n}"));
        model.commits_through(txid);
        if round % 10 == 9 {
            // Seals the active segment too, and merges every run.
            writer.run("compact");
        }
        // Sometimes several rounds pass between refreshes.
        if round % 4 == 2 {
            continue;
        }
        assert_eq!(follower.refresh().expect("refresh"), txid);
        check_follower(&follower, dir.path(), &model);
        for view in &held {
            check_view(view, &model);
        }
        if round % 8 == 0 {
            held.push(follower.snapshot());
        }
    }
    // The segments the first views were read from are gone: they answer
    // from the runs that replaced them.
    let first = dir.path().join("0000000001.tcseg");
    assert!(!first.exists(), "the writer deleted {}", first.display());
    for view in &held {
        check_view(view, &model);
    }
    // The whole-database readers work on what the follower has now.
    let report = follower.verify().expect("verify the follower");
    assert_eq!(report.txid, model.latest);
    let copy = tempfile::tempdir().expect("tempdir");
    let copied = follower
        .backup(copy.path().join("copy"))
        .expect("backup from the follower");
    assert_eq!(copied, model.latest);
    let restored = Db::open_read_only(copy.path().join("copy")).expect("open the copy");
    check_view(&restored.snapshot(), &model);
}

#[test]
fn a_follower_far_behind_catches_up_after_its_segments_were_sealed_and_deleted() {
    if is_child() {
        return;
    }
    let (dir, mut model) = seeded("runs", 5);
    let follower = Db::open_read_only(dir.path()).expect("follower open");
    let early = follower.snapshot();
    let mut writer = Writer::spawn("runs", dir.path());
    model.commits_through(writer.run("commit 150"));
    writer.run("compact");
    model.commits_through(writer.run("commit 20"));
    // Everything the follower had read is now in runs, its segments gone.
    assert!(common::segments(dir.path()).iter().all(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        name > "0000000001.tcseg"
    }));
    assert_eq!(follower.refresh().expect("refresh"), model.latest);
    check_follower(&follower, dir.path(), &model);
    check_view(&early, &model);
    // A refresh with nothing new changes nothing.
    assert_eq!(follower.refresh().expect("refresh"), model.latest);
    check_follower(&follower, dir.path(), &model);
}

#[test]
fn a_blocking_feed_on_a_follower_delivers_each_commit_of_another_process() {
    if is_child() {
        return;
    }
    let (dir, mut model) = seeded("runs", 2);
    let follower = Db::open_read_only(dir.path()).expect("follower open");
    let mut feed = follower.changes_since(follower.latest_txid());
    let mut writer = Writer::spawn("runs", dir.path());
    writer.send("stream 60 3");
    for _ in 0..60 {
        let record = feed
            .wait_next(PATIENCE)
            .expect("wait_next")
            .expect("a commit arrives");
        let i = record.txid.0;
        assert_eq!(record.meta["i"], i.to_string());
        let put = record
            .changes
            .iter()
            .find(|c| c.table == "kv" && c.key == put_key(i).to_be_bytes())
            .expect("the put of this txid");
        assert_eq!(put.value, Some(value_for(i)));
        assert!(
            record
                .changes
                .iter()
                .any(|c| c.table == "seq" && c.value == Some(i.to_le_bytes().to_vec()))
        );
        assert_eq!(feed.position(), record.txid);
    }
    let (word, _) = writer.next_line();
    assert_eq!(word, "txid");
    let mut last = TxId::ZERO;
    loop {
        let (word, txid) = writer.next_line();
        if word == "ok" {
            last = last.max(txid);
            break;
        }
    }
    model.commits_through(last);
    // Nothing more was committed: the feed times out.
    assert!(matches!(
        feed.wait_next(Duration::from_millis(100)),
        Ok(None)
    ));
    check_follower(&follower, dir.path(), &model);
}

#[test]
fn a_torn_tail_of_the_writer_is_not_an_error_for_a_follower() {
    if is_child() {
        return;
    }
    let (dir, mut model) = seeded("quiet", 4);
    let follower = Db::open_read_only(dir.path()).expect("follower open");
    let mut writer = Writer::spawn("quiet", dir.path());
    model.commits_through(writer.run("commit 3"));
    // The writer is idle; the start of a frame after its last one is what
    // a follower sees while it appends: a header announcing 100 bytes and
    // two of them. Its next frame is written over it (and is longer).
    let newest = common::segments(dir.path()).pop().expect("a segment");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .expect("open the newest segment");
    file.write_all(&[100, 0, 0, 0, 1, 2, 3, 4, 9, 9])
        .expect("append a torn frame");
    drop(file);
    assert_eq!(follower.refresh().expect("refresh"), model.latest);
    check_follower(&follower, dir.path(), &model);
    let mut feed = follower.changes_since(follower.latest_txid());
    assert!(matches!(
        feed.wait_next(Duration::from_millis(50)),
        Ok(None)
    ));
    model.commits_through(writer.run("commit 2"));
    let record = feed
        .wait_next(PATIENCE)
        .expect("wait_next")
        .expect("the commit over the torn frame arrives");
    assert_eq!(record.txid, TxId(model.latest.0 - 1));
    assert_eq!(follower.refresh().expect("refresh"), model.latest);
    check_follower(&follower, dir.path(), &model);
}

#[test]
fn a_follower_without_runs_follows_compaction_and_erasure() {
    if is_child() {
        return;
    }
    let (dir, mut model) = seeded("plain", 30);
    let follower = Db::open_read_only(dir.path()).expect("follower open");
    let held = follower.snapshot();
    let mut writer = Writer::spawn("plain", dir.path());
    model.commits_through(writer.run("commit 40"));
    assert_eq!(follower.refresh().expect("refresh"), model.latest);
    check_follower(&follower, dir.path(), &model);
    // Segments the follower has not read, then an erasure of a key whose
    // versions it has read, more commits and a compaction that rewrites
    // the sealed segments (the erase record loses its key) before the
    // follower reads them.
    model.commits_through(writer.run("commit 80"));
    let erased = put_key(model.latest.0 + 5);
    let txid = writer.run(&format!("erase {erased}"));
    model.erase(erased, txid);
    model.commits_through(writer.run("commit 60"));
    writer.run("compact");
    model.commits_through(writer.run("commit 3"));
    assert_eq!(follower.refresh().expect("refresh"), model.latest);
    check_follower(&follower, dir.path(), &model);
    // Erasure removes the key from every view, old ones too.
    check_view(&held, &model);
}

#[test]
fn refresh_on_a_writable_db_returns_its_latest_txid() {
    if is_child() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    assert_eq!(db.refresh().expect("refresh"), TxId::ZERO);
    let txid = commit_next(&db);
    assert_eq!(db.refresh().expect("refresh"), txid);
    assert_eq!(db.latest_txid(), txid);
}

#[test]
fn a_follower_in_the_same_process_follows_through_refresh() {
    if is_child() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Db::open_with(dir.path(), config("runs")).expect("open");
    let mut model = Model::default();
    model.commits_through(commit_next(&writer));
    let follower = Db::open_read_only(dir.path()).expect("follower open");
    for round in 0..30 {
        for _ in 0..(round % 5) {
            model.commits_through(commit_next(&writer));
        }
        if round % 7 == 6 {
            writer.compact().expect("compact");
        }
        assert_eq!(follower.refresh().expect("refresh"), model.latest);
        check_follower(&follower, dir.path(), &model);
    }
}

#[test]
fn a_damaged_frame_is_corrupt_once_the_writer_has_rolled_past_it() {
    if is_child() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Db::open_with(dir.path(), config("plain")).expect("open");
    let mut model = Model::default();
    model.commits_through(commit_next(&writer));
    model.commits_through(commit_next(&writer));
    let follower = Db::open_read_only(dir.path()).expect("follower open");
    let first = dir.path().join("0000000001.tcseg");
    // Where the frames end (the file is longer: preallocated zeros).
    let read_to = common::frames_end(&first);
    commit_next(&writer);
    assert_eq!(common::segments(dir.path()).len(), 1, "no roll yet");
    // A bit flips in the payload of the frame after what the follower
    // read: while it is the newest frame, it may be one being appended.
    let mut bytes = std::fs::read(&first).expect("read segment");
    bytes[read_to as usize + 20] ^= 0x10;
    std::fs::write(&first, &bytes).expect("damage segment");
    assert_eq!(follower.refresh().expect("refresh"), model.latest);
    // Once the writer has rolled to a new segment, it is damage.
    // (New keys of another table: nothing reads the damaged frame.)
    for i in 0u64.. {
        if common::segments(dir.path()).len() >= 2 {
            break;
        }
        let mut tx = writer.begin();
        tx.put("pad", i.to_be_bytes(), [7u8; 200]).expect("put");
        tx.commit().expect("commit");
    }
    let err = follower.refresh().expect_err("damage is reported");
    assert!(
        matches!(&err, timecask::Error::Corrupt { path, offset, .. }
            if *path == first && *offset == read_to),
        "{err:?}"
    );
    // The follower keeps what it had.
    assert_eq!(follower.latest_txid(), model.latest);
    check_view(&follower.snapshot(), &model);
}
