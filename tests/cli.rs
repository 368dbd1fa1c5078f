//! The `timecask` binary, run as a user runs it: every subcommand, human
//! and `--json` output, and bad input (missing or locked database, unknown
//! table, txids in the future, malformed JSON, bad times).
//!
//! Conventions checked here: a read of a table the database has never had
//! is an error naming the tables it does have; a missing key is exit code 1
//! with one `error:` line; usage errors are exit code 2.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use timecask::{Db, Durability, TxId};

const BIN: &str = env!("CARGO_BIN_EXE_timecask");

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args` (and `stdin`), never from `TIMECASK_DB`.
fn run_with(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("TIMECASK_DB")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn timecask");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("run timecask");
    let out = Output {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    };
    assert!(
        !out.stderr.contains("panicked") && !out.stderr.contains("RUST_BACKTRACE"),
        "{args:?} panicked: {}",
        out.stderr
    );
    out
}

/// Runs `timecask --db DB --lock-timeout 5 args...`.
///
/// The wait covers a real race of the test harness, not of the CLI: while
/// one test holds a `Db` open, a child that another test thread forks
/// inherits the lock until it execs, so a database can stay locked for a
/// moment after the test closed it.
fn tc(db: &Path, args: &[&str]) -> Output {
    let mut all = vec![
        "--db",
        db.to_str().expect("utf-8 path"),
        "--lock-timeout",
        "5",
    ];
    all.extend_from_slice(args);
    run_with(&all, "")
}

/// `Db::open`, waiting out the fork-inherited lock described at [`tc`].
fn open(path: &Path) -> Db {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match Db::open(path) {
            Err(timecask::Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other.expect("open"),
        }
    }
}

/// Runs and expects success with nothing on stderr; returns stdout.
#[track_caller]
fn ok(db: &Path, args: &[&str]) -> String {
    let out = tc(db, args);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (0, ""),
        "{args:?}: {}",
        out.stdout
    );
    out.stdout
}

/// Runs and expects exit `code` with exactly one stderr line (for code 1)
/// containing `needle`, and nothing on stdout.
#[track_caller]
fn fails(db: &Path, args: &[&str], code: i32, needle: &str) {
    check_failure(tc(db, args), args, code, needle);
}

#[track_caller]
fn check_failure(out: Output, args: &[&str], code: i32, needle: &str) {
    assert_eq!(out.code, code, "{args:?}: {}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.starts_with("error: ") && out.stderr.contains(needle),
        "{args:?}: stderr {:?} lacks {needle:?}",
        out.stderr
    );
    if code == 1 {
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
    }
    assert_eq!(out.stdout, "", "{args:?}");
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().map(json).collect()
}

const ALICE: &str = r#"{"name":"Alice","email":"alice@example.com","age":30}"#;
const BOB: &str = r#"{"name":"Bob","email":"alice@example.com","age":30}"#;

/// tx 1 inserts user 1 = Alice (user=admin), tx 2 renames her to Bob
/// (user=alice), tx 3 inserts user 2 = "plain text" and user 0x00ff =
/// 0x0102, tx 4 deletes user 2. Made through the library; closed again.
fn scenario() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let db = Db::open(&path).expect("open");
    // One fsync at the end keeps the database open (and locked) briefly.
    let mut tx = db.begin();
    tx.set_durability(Durability::Buffered);
    tx.set_meta("user", "admin").expect("meta");
    tx.set_meta("reason", "sign-up").expect("meta");
    tx.insert("user", b"1", ALICE).expect("insert");
    tx.commit().expect("commit");
    let mut tx = db.begin();
    tx.set_durability(Durability::Buffered);
    tx.set_meta("user", "alice").expect("meta");
    tx.update("user", b"1", BOB).expect("update");
    tx.commit().expect("commit");
    let mut tx = db.begin();
    tx.set_durability(Durability::Buffered);
    tx.insert("user", b"2", "plain text").expect("insert");
    tx.insert("user", [0, 0xff], [1, 2]).expect("insert");
    tx.commit().expect("commit");
    let mut tx = db.begin();
    tx.delete("user", b"2").expect("delete");
    tx.commit().expect("commit");
    db.flush().expect("flush");
    (dir, path)
}

#[test]
fn demo_prints_the_whole_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("demo");
    let out = run_with(&["demo", target.to_str().expect("utf-8")], "");
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    for needle in [
        "tx 1: insert user 1",
        "current row:   {\"age\":30,\"email\":\"alice@example.com\",\"name\":\"Bob\"}",
        "as of tx 1:    {\"age\":30,\"email\":\"alice@example.com\",\"name\":\"Alice\"}",
        "  2     -     update  alice",
        "    name: \"Alice\" -> \"Bob\"",
        "revert user 1 to tx 1: committed as tx 3",
    ] {
        assert!(
            out.stdout.contains(needle),
            "demo lacks {needle:?}:\n{}",
            out.stdout
        );
    }
    // The database it leaves behind reads like any other.
    assert!(ok(&target, &["history", "user", "1"]).contains("name: \"Bob\" -> \"Alice\""));
    let again = run_with(&["demo", target.to_str().expect("utf-8")], "");
    assert!(again.code == 1 && again.stderr.contains("give the demo an empty directory"));
}

#[test]
fn tables_lists_live_key_counts() {
    let (_dir, db) = scenario();
    assert_eq!(ok(&db, &["tables"]), "TABLE  KEYS\nuser   2\n");
    assert_eq!(
        ok(&db, &["tables", "--as-of", "3"]),
        "TABLE  KEYS\nuser   3\n"
    );
    assert_eq!(ok(&db, &["tables", "--as-of", "0"]), "TABLE  KEYS\n");
    let doc = json(&ok(&db, &["--json", "tables"]));
    assert_eq!(doc, serde_json::json!([{"table": "user", "keys": 2}]));
}

#[test]
fn get_reads_the_present_and_the_past() {
    let (_dir, db) = scenario();
    assert_eq!(ok(&db, &["get", "user", "1"]), format!("{BOB}\n"));
    assert_eq!(
        ok(&db, &["get", "user", "1", "--as-of", "1"]),
        format!("{ALICE}\n")
    );
    assert_eq!(ok(&db, &["--key-hex", "get", "user", "00ff"]), "0x0102\n");
    assert_eq!(
        ok(&db, &["--key-hex", "get", "user", "0x31"]),
        format!("{BOB}\n")
    );
    let doc = json(&ok(&db, &["--json", "get", "user", "1", "--as-of", "3"]));
    assert_eq!(doc["value"]["name"], "Bob");
    assert_eq!(
        (doc["txid"].as_u64(), doc["as_of"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(
        (doc["op"].as_str(), doc["end_txid"].as_u64()),
        (Some("update"), None)
    );
    assert_eq!(doc["meta"]["user"], "alice");
    let binary = json(&ok(&db, &["--json", "--key-hex", "get", "user", "00ff"]));
    assert_eq!(
        (&binary["key_hex"], &binary["value_hex"]),
        (&"00ff".into(), &"0102".into())
    );

    // --at: the time of tx 1 reads tx 1; before it, nothing; later, the latest.
    let t1 = json(&ok(&db, &["--json", "tx", "1"]))["time"]
        .as_str()
        .expect("time")
        .to_string();
    assert_eq!(
        ok(&db, &["get", "user", "1", "--at", &t1]),
        format!("{ALICE}\n")
    );
    let t1_offset = t1.replace('Z', "+00:00");
    assert_eq!(
        ok(&db, &["get", "user", "1", "--at", &t1_offset]),
        format!("{ALICE}\n")
    );
    fails(
        &db,
        &["get", "user", "1", "--at", "1999-12-31T23:00:00Z"],
        1,
        "as of txid 0",
    );
    assert_eq!(
        ok(&db, &["get", "user", "1", "--at", "2999-01-01T00:00:00Z"]),
        format!("{BOB}\n")
    );
}

#[test]
fn get_refuses_what_is_not_there() {
    let (_dir, db) = scenario();
    // (args, exit code, message)
    let cases: [(&[&str], i32, &str); 9] = [
        (
            &["get", "user", "9"],
            1,
            "key \"9\" not found in table \"user\" as of txid 4",
        ),
        (&["get", "user", "2"], 1, "was deleted in tx 4"),
        (&["get", "usr", "1"], 1, "no table \"usr\" in"),
        (&["get", "usr", "1"], 1, "(tables: user)"),
        (
            &["get", "user", "1", "--as-of", "5"],
            1,
            "txid 5 is in the future: the latest committed txid is 4",
        ),
        (
            &["get", "user", "1", "--at", "yesterdayish"],
            2,
            "\"yesterdayish\" is not a time",
        ),
        (
            &["get", "user", "1", "--at", "2025-02-30"],
            2,
            "is not a time",
        ),
        (
            &[
                "get",
                "user",
                "1",
                "--as-of",
                "1",
                "--at",
                "2025-01-31T12:00:00Z",
            ],
            2,
            "cannot be used with",
        ),
        (&["--key-hex", "get", "user", "xyz"], 1, "is not hex"),
    ];
    for (args, code, needle) in cases {
        fails(&db, args, code, needle);
    }
}

#[test]
fn scan_lists_pairs_in_key_order() {
    let (_dir, db) = scenario();
    assert_eq!(
        ok(&db, &["scan", "user"]),
        format!("KEY     VALUE\n0x00ff  0x0102\n1       {BOB}\n")
    );
    let lines = json_lines(&ok(
        &db,
        &["--json", "scan", "user", "--as-of", "3", "--reverse"],
    ));
    let keys: Vec<String> = lines.iter().map(|l| l["key"].to_string()).collect();
    assert_eq!(keys, ["\"2\"", "\"1\"", "null"]);
    assert_eq!(lines[0]["value"], "plain text");
    assert_eq!(lines[2]["value_hex"], "0102");
    let limited = ok(
        &db,
        &["--json", "scan", "user", "--as-of", "3", "--limit", "1"],
    );
    assert_eq!(json_lines(&limited).len(), 1);
    let prefixed = ok(&db, &["scan", "user", "--as-of", "3", "--prefix", "2"]);
    assert_eq!(prefixed, "KEY  VALUE\n2    plain text\n");
    assert_eq!(ok(&db, &["scan", "user", "--prefix", "zz"]), "KEY  VALUE\n");
    fails(&db, &["scan", "nope"], 1, "no table \"nope\"");
    fails(&db, &["scan", "user", "--as-of", "9"], 1, "in the future");
    fails(&db, &["scan", "user", "--limit", "0"], 2, "--limit");
}

#[test]
fn history_shows_versions_with_field_changes() {
    let (_dir, db) = scenario();
    let text = ok(&db, &["history", "user", "1"]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("TXID  END  OP      TIME"), "{text}");
    assert!(lines[1].starts_with("1     2    insert  "), "{text}");
    assert!(lines[1].contains("reason=sign-up user=admin") && lines[1].ends_with(ALICE));
    assert!(lines[2].starts_with("2     -    update  ") && lines[2].contains("user=alice"));
    assert_eq!(lines[3], "  name: \"Alice\" -> \"Bob\"");
    assert_eq!(lines.len(), 4);

    let doc = json(&ok(
        &db,
        &[
            "--json",
            "history",
            "user",
            "1",
            "--newest-first",
            "--limit",
            "1",
        ],
    ));
    let versions = doc["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["txid"], 2);
    assert_eq!(
        versions[0]["changeset"],
        serde_json::json!({"name": ["Alice", "Bob"]})
    );
    let deleted = json(&ok(
        &db,
        &["--json", "history", "user", "2", "--newest-first"],
    ));
    let ops: Vec<&str> = deleted["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["op"].as_str().expect("op"))
        .collect();
    assert_eq!(ops, ["delete", "insert"]);
    assert!(deleted["versions"][0]["value"].is_null());
    fails(
        &db,
        &["history", "user", "9"],
        1,
        "key \"9\" has no history in table \"user\"",
    );
    fails(&db, &["history", "nope", "1"], 1, "no table \"nope\"");
}

#[test]
fn log_and_tx_show_transactions() {
    let (_dir, db) = scenario();
    let text = ok(&db, &["log"]);
    assert_eq!(text.lines().filter(|l| l.starts_with("tx ")).count(), 4);
    assert!(text.contains("reason=sign-up user=admin\n  insert  user  1  {"));
    assert!(text.contains("  insert  user  0x00ff  0x0102\n"));
    let since = json_lines(&ok(&db, &["--json", "log", "--since", "2"]));
    let txids: Vec<u64> = since
        .iter()
        .map(|l| l["txid"].as_u64().expect("txid"))
        .collect();
    assert_eq!(txids, [4, 3], "newest first");
    assert_eq!(since[0]["changes"][0]["op"], "delete");
    assert!(ok(&db, &["log", "--since", "4"]).is_empty());
    fails(&db, &["log", "--since", "5"], 1, "txid 5 is in the future");

    let tx2 = ok(&db, &["tx", "2"]);
    assert!(
        tx2.starts_with("tx 2  ") && tx2.contains("  user=alice\n"),
        "{tx2}"
    );
    assert!(tx2.contains(&format!(
        "  update  user  1  {BOB}\n    name: \"Alice\" -> \"Bob\"\n"
    )));
    let doc = json(&ok(&db, &["--json", "tx", "2"]));
    assert_eq!(
        doc["changes"][0]["changeset"]["name"],
        serde_json::json!(["Alice", "Bob"])
    );
    assert!(doc["time"].as_str().expect("time").ends_with('Z'));
    fails(&db, &["tx", "0"], 1, "no transaction has txid 0");
    fails(&db, &["tx", "7"], 1, "txid 7 is in the future");
    fails(&db, &["tx", "-1"], 2, "unexpected argument");
}

#[test]
fn log_follow_prints_commits_from_other_processes() {
    let (_dir, db) = scenario();
    let mut child = Command::new(BIN)
        .args([
            "--db",
            db.to_str().expect("utf-8"),
            "--lock-timeout",
            "5",
            "--json",
            "log",
            "--since",
            "3",
            "--follow",
        ])
        .env_remove("TIMECASK_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn follower");
    let stdout = child.stdout.take().expect("stdout");
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if send.send(line.expect("line")).is_err() {
                break;
            }
        }
    });
    let next = || json(&lines.recv_timeout(Duration::from_secs(10)).expect("a line"));
    assert_eq!(next()["txid"], 4);
    // The follower holds the database read-only (no lock), so writers get
    // in; its change feed refreshes it, reading only what is new.
    ok(&db, &["put", "user", "3", "carol"]);
    let record = next();
    assert_eq!(
        (&record["txid"], &record["changes"][0]["value"]),
        (&5.into(), &"carol".into())
    );
    // Compaction seals the log into history runs and deletes the segments
    // the follower read: it follows on through the new manifest.
    ok(&db, &["compact"]);
    ok(&db, &["put", "user", "4", "dave"]);
    let record = next();
    assert_eq!(
        (&record["txid"], &record["changes"][0]["value"]),
        (&6.into(), &"dave".into())
    );
    child.kill().expect("kill follower");
    child.wait().expect("reap follower");
}

#[test]
fn diff_lists_changed_keys_both_ways() {
    let (_dir, db) = scenario();
    let text = ok(&db, &["diff", "user", "1", "4"]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("KEY     OP      BEFORE   "), "{text}");
    let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(words(lines[1]), "0x00ff insert - 0x0102");
    assert!(lines[2].starts_with("1       update  {\"name\":\"Alice\""));
    assert_eq!(lines[3], "  name: \"Alice\" -> \"Bob\"");
    assert_eq!(lines.len(), 4);
    let doc = json(&ok(&db, &["--json", "diff", "user", "4", "1"]));
    assert_eq!(
        (doc["from"].as_u64(), doc["to"].as_u64()),
        (Some(4), Some(1))
    );
    let changes = doc["changes"].as_array().expect("changes");
    assert_eq!(changes[0]["op"], "delete");
    assert_eq!(
        changes[1]["changeset"]["name"],
        serde_json::json!(["Bob", "Alice"])
    );
    assert_eq!(
        ok(&db, &["diff", "user", "2", "2"]),
        "KEY  OP  BEFORE  AFTER\n"
    );
    fails(
        &db,
        &["diff", "user", "1", "9"],
        1,
        "txid 9 is in the future",
    );
    fails(&db, &["diff", "nope", "1", "2"], 1, "no table \"nope\"");
}

#[test]
fn put_and_delete_write_one_transaction_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("new");
    // put creates the database.
    assert_eq!(
        ok(&db, &["put", "user", "1", ALICE, "--meta", "user=admin"]),
        "tx 1: insert user 1\n"
    );
    assert_eq!(ok(&db, &["put", "user", "1", BOB]), "tx 2: update user 1\n");
    assert_eq!(
        ok(&db, &["put", "user", "1", BOB]),
        "unchanged: user 1 already has this value (no transaction written)\n"
    );
    let doc = json(&ok(
        &db,
        &[
            "--json",
            "--key-hex",
            "put",
            "bin",
            "00ff",
            "--value-hex",
            "0x0102",
        ],
    ));
    assert_eq!(doc["txid"], 3);
    assert_eq!(
        doc["changes"][0],
        serde_json::json!({"table": "bin", "key_hex": "00ff", "op": "insert"})
    );
    assert_eq!(ok(&db, &["--key-hex", "get", "bin", "00ff"]), "0x0102\n");
    assert_eq!(
        json(&ok(&db, &["--json", "tx", "1"]))["meta"]["user"],
        "admin"
    );

    assert_eq!(
        ok(&db, &["delete", "user", "1", "--meta", "reason=cleanup"]),
        "tx 4: delete user 1\n"
    );
    fails(
        &db,
        &["delete", "user", "1"],
        1,
        "key \"1\" not found in table \"user\"; nothing to delete",
    );
    fails(
        &db,
        &["put", "user", "1", "x", "--meta", "novalue"],
        2,
        "is not KEY=VALUE",
    );
    fails(
        &db,
        &["put", "user", "1", "zz", "--value-hex"],
        1,
        "is not hex",
    );
    fails(&db, &["put", "", "1", "x"], 1, "invalid table name");
}

#[test]
fn revert_and_undo_write_the_past_back() {
    let (_dir, db) = scenario();
    assert_eq!(
        ok(&db, &["revert", "user", "1", "1", "--meta", "user=admin"]),
        "tx 5: update user 1\n"
    );
    assert_eq!(ok(&db, &["get", "user", "1"]), format!("{ALICE}\n"));
    assert!(
        ok(&db, &["revert", "user", "1", "1"])
            .starts_with("unchanged: user 1 already has its value as of tx 1")
    );
    // Undo tx 4 (the delete of user 2): it comes back.
    assert_eq!(ok(&db, &["undo", "4"]), "tx 6: insert user 2\n");
    assert_eq!(ok(&db, &["get", "user", "2"]), "plain text\n");
    let doc = json(&ok(&db, &["--json", "undo", "6"]));
    assert_eq!(
        (doc["txid"].as_u64(), doc["changes"][0]["op"].as_str()),
        (Some(7), Some("delete"))
    );
    fails(
        &db,
        &["undo", "2"],
        1,
        "cannot undo tx 2: key \"1\" of table \"user\" was changed by a later transaction",
    );
    fails(&db, &["undo", "99"], 1, "txid 99 is in the future");
    fails(
        &db,
        &["revert", "user", "1", "99"],
        1,
        "txid 99 is in the future",
    );
    fails(&db, &["revert", "nope", "1", "1"], 1, "no table \"nope\"");
}

#[test]
fn export_then_import_reproduces_every_byte() {
    let (dir, db) = scenario();
    let exported = ok(&db, &["export", "user", "--as-of", "3"]);
    assert_eq!(
        exported,
        format!(
            "{{\"key_hex\":\"00ff\",\"value_hex\":\"0102\"}}\n{{\"key\":\"1\",\"value\":{BOB}}}\n{{\"key\":\"2\",\"value\":\"plain text\"}}\n"
        )
    );
    let file = dir.path().join("user.jsonl");
    std::fs::write(&file, &exported).expect("write export");
    let copy = dir.path().join("copy");
    let file_arg = file.to_str().expect("utf-8");
    let imported = ok(
        &copy,
        &["import", "user", file_arg, "--meta", "reason=restore"],
    );
    assert_eq!(
        imported,
        "tx 1: imported 3 rows into user (3 inserted, 0 updated)\n"
    );
    assert_eq!(ok(&copy, &["export", "user"]), exported);
    assert_eq!(
        ok(&copy, &["import", "user", file_arg]),
        "unchanged: all 3 rows already had these values in user\n"
    );
    // From stdin, with a blank line, updating one row.
    let out = run_with(
        &[
            "--db",
            copy.to_str().expect("utf-8"),
            "--json",
            "import",
            "user",
            "-",
        ],
        "{\"key\": \"2\", \"value\": [1, 2]}\n\n{\"key\": \"3\", \"value\": \"new\"}\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        json(&out.stdout),
        serde_json::json!({"txid": 2, "rows": 2, "inserted": 1, "updated": 1})
    );
    assert_eq!(ok(&copy, &["get", "user", "2"]), "[1, 2]\n");
    fails(&db, &["export", "nope"], 1, "no table \"nope\"");
    fails(&db, &["export", "user", "--as-of", "5"], 1, "in the future");
}

#[test]
fn import_of_malformed_json_imports_nothing() {
    let (dir, db) = scenario();
    let file = dir.path().join("bad.jsonl");
    let cases = [
        (
            "{\"key\":\"a\",\"value\":1}\n{\"key\":\"b\",\n",
            "line 2: EOF while parsing",
        ),
        (
            "{\"key\":\"a\"}\n",
            "line 1: needs exactly one of \"value\" and \"value_hex\"",
        ),
        (
            "{\"key\":\"a\",\"value\":1,\"x\":2}\n",
            "line 1: unknown field \"x\"",
        ),
        (
            "{\"key\":1,\"value\":1}\n",
            "line 1: \"key\" must be a string",
        ),
        ("?\n", "line 1: expected value at column 1"),
    ];
    for (content, needle) in cases {
        std::fs::write(&file, content).expect("write");
        fails(
            &db,
            &["import", "user", file.to_str().expect("utf-8")],
            1,
            needle,
        );
        assert!(
            tc(&db, &["log", "--since", "4"]).stdout.is_empty(),
            "{content} imported something"
        );
    }
    let missing = dir.path().join("missing.jsonl");
    let fresh = dir.path().join("fresh");
    fails(
        &fresh,
        &["import", "user", missing.to_str().expect("utf-8")],
        1,
        "cannot open",
    );
    assert!(!fresh.exists(), "a failed import created a database");
}

#[test]
fn verify_backup_and_stats() {
    let (dir, db) = scenario();
    assert!(
        ok(&db, &["verify"])
            .starts_with("ok: verified up to txid 4: 1 segments, 4 transactions, 5 versions")
    );
    let doc = json(&ok(&db, &["--json", "verify"]));
    assert_eq!(
        (doc["ok"].as_bool(), doc["txid"].as_u64()),
        (Some(true), Some(4))
    );

    let dest = dir.path().join("backup");
    let text = ok(&db, &["backup", dest.to_str().expect("utf-8")]);
    assert!(text.starts_with(&format!(
        "backup as of txid 4 written to {}",
        dest.display()
    )));
    assert_eq!(ok(&dest, &["get", "user", "1"]), format!("{BOB}\n"));
    fails(
        &db,
        &["backup", dest.to_str().expect("utf-8")],
        1,
        "is not empty",
    );

    let stats = ok(&db, &["stats"]);
    assert!(
        stats.contains("latest txid                4\n")
            && stats.contains("live keys                  2\n"),
        "{stats}"
    );
    let doc = json(&ok(&db, &["--json", "stats"]));
    assert_eq!(
        (doc["n_versions"].as_u64(), doc["n_tables"].as_u64()),
        (Some(5), Some(1))
    );
    assert!(doc["bytes_on_disk"].as_u64().expect("bytes") > 0);

    // Damage in the middle of the log: named with file and offset.
    let segment = std::fs::read_dir(&db)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "tcseg"))
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("read segment");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&segment, bytes).expect("write segment");
    fails(&db, &["verify"], 1, "corrupt data in");
    fails(&db, &["verify"], 1, "at offset");
}

#[test]
fn purge_erase_and_compact() {
    let (_dir, db) = scenario();
    assert!(ok(&db, &["purge", "--before", "2"]).starts_with("tx 5: history before txid 2 purged"));
    fails(&db, &["get", "user", "1", "--as-of", "1"], 1, "was purged");
    assert_eq!(
        ok(&db, &["get", "user", "1", "--as-of", "2"]),
        format!("{BOB}\n")
    );
    assert!(ok(&db, &["log", "--since", "4"]).contains("  purge  history before txid 2\n"));
    let erased = ok(
        &db,
        &["erase", "user", "1", "--meta", "reason=privacy request"],
    );
    assert!(
        erased.starts_with("tx 6: every version of user 1 erased"),
        "{erased}"
    );
    fails(&db, &["history", "user", "1"], 1, "no history");
    fails(&db, &["erase", "user", "1"], 1, "nothing to erase");
    let doc = json(&ok(&db, &["--json", "compact"]));
    assert!(
        doc["versions_dropped"].as_u64().expect("dropped") >= 2,
        "{doc}"
    );
    assert_eq!(json(&ok(&db, &["--json", "stats"]))["horizon"], 2);
    assert!(ok(&db, &["verify"]).starts_with("ok:"));
    fails(&db, &["purge", "--before", "99"], 1, "in the future");
}

#[test]
fn missing_database_is_an_error_and_never_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let commands: [&[&str]; 18] = [
        &["tables"],
        &["get", "t", "k"],
        &["scan", "t"],
        &["history", "t", "k"],
        &["log"],
        &["tx", "1"],
        &["diff", "t", "0", "1"],
        &["delete", "t", "k"],
        &["revert", "t", "k", "1"],
        &["undo", "1"],
        &["export", "t"],
        &["verify"],
        &["backup", "/nonexistent/dest"],
        &["stats"],
        &["purge", "--before", "1"],
        &["erase", "t", "k"],
        &["compact"],
        &["log", "--follow"],
    ];
    for args in commands {
        fails(&missing, args, 1, "no database at");
        fails(&empty, args, 1, "no database at");
    }
    assert!(!missing.exists(), "a read created the database");
    assert_eq!(std::fs::read_dir(&empty).expect("list").count(), 0);
}

#[test]
fn locked_database_names_the_way_out_for_writes() {
    let (_dir, db) = scenario();
    let held = open(&db);
    let db_arg = db.to_str().expect("utf-8");
    for args in [
        &["put", "user", "1", "x"][..],
        &["delete", "user", "1"],
        &["purge", "--before", "2"],
        &["compact"],
    ] {
        let all = [&["--db", db_arg, "--lock-timeout", "0.1"], args].concat();
        check_failure(
            run_with(&all, ""),
            args,
            1,
            "is in use by another process; close it there, or wait for it with --lock-timeout",
        );
    }
    assert_eq!(held.latest_txid(), TxId(4));
    drop(held);
    assert_eq!(ok(&db, &["get", "user", "1"]), format!("{BOB}\n"));
}

#[test]
fn read_commands_work_while_a_writer_holds_the_database() {
    let (dir, db) = scenario();
    let held = open(&db);
    let mut tx = held.begin();
    tx.put("user", "3", r#"{"name":"Carol"}"#).expect("put");
    tx.commit().expect("commit");
    let files = |db: &Path| {
        let mut files: Vec<_> = std::fs::read_dir(db)
            .expect("list")
            .map(|e| {
                let path = e.expect("entry").path();
                (path.clone(), std::fs::read(&path).expect("read"))
            })
            .collect();
        files.sort();
        files
    };
    let before = files(&db);
    let dest = dir.path().join("backup");
    let dest_arg = dest.to_str().expect("utf-8");
    for args in [
        &["tables"][..],
        &["get", "user", "3"],
        &["scan", "user"],
        &["history", "user", "1"],
        &["log"],
        &["tx", "5"],
        &["diff", "user", "1", "5"],
        &["export", "user"],
        &["verify"],
        &["stats"],
        &["backup", dest_arg],
    ] {
        // No --lock-timeout: a read takes no lock, so it cannot wait for one.
        let all = [&["--db", db.to_str().expect("utf-8")], args].concat();
        let out = run_with(&all, "");
        assert_eq!(
            out.code, 0,
            "{args:?} failed beside a writer: {}",
            out.stderr
        );
    }
    assert!(ok(&db, &["get", "user", "3"]).contains("Carol"));
    assert_eq!(
        ok(&dest, &["get", "user", "3"]),
        ok(&db, &["get", "user", "3"])
    );
    assert_eq!(files(&db), before, "a read command changed a file");
    // The writer goes on, and the next read sees its commit.
    let mut tx = held.begin();
    tx.delete("user", "3").expect("delete");
    tx.commit().expect("commit");
    fails(&db, &["get", "user", "3"], 1, "");
    drop(held);
}

#[test]
fn the_database_comes_from_db_or_the_environment() {
    let (_dir, db) = scenario();
    let out = run_with(&["tables"], "");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("error: no database given: pass --db PATH or set TIMECASK_DB")
    );
    let out = Command::new(BIN)
        .args(["get", "user", "1"])
        .env("TIMECASK_DB", &db)
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{BOB}\n"));
    for bad in [&["frobnicate"][..], &[], &["get", "user"]] {
        let out = run_with(bad, "");
        assert_eq!(out.code, 2, "{bad:?}");
    }
    assert_eq!(run_with(&["--help"], "").code, 0);
}

/// Runs `timecask --db DB args...` with extra environment variables.
fn tc_env(db: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args([
            "--db",
            db.to_str().expect("utf-8 path"),
            "--lock-timeout",
            "5",
        ])
        .args(args)
        .env_remove("TIMECASK_DB")
        .stdin(Stdio::null());
    for (k, v) in envs {
        command.env(k, v);
    }
    let out = command.output().expect("run timecask");
    Output {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// The txids of `--json log` output, in the order printed.
#[track_caller]
fn log_txids(db: &Path, args: &[&str]) -> Vec<u64> {
    let mut all = vec!["--json", "log"];
    all.extend_from_slice(args);
    json_lines(&ok(db, &all))
        .iter()
        .map(|l| l["txid"].as_u64().expect("txid"))
        .collect()
}

/// The commit time of `txid` as the JSON output gives it (UTC).
fn commit_time(db: &Path, txid: u64) -> String {
    json(&ok(db, &["--json", "tx", &txid.to_string()]))["time"]
        .as_str()
        .expect("time")
        .to_string()
}

#[test]
fn log_is_newest_first_and_filters_like_git() {
    let (_dir, db) = scenario();
    // (args, txids printed)
    let cases: [(&[&str], &[u64]); 16] = [
        (&[], &[4, 3, 2, 1]),
        (&["--reverse"], &[1, 2, 3, 4]),
        (&["-n", "2"], &[4, 3]),
        (&["--limit", "2", "--reverse"], &[3, 4]),
        (&["--since", "1", "--until", "3"], &[3, 2]),
        (&["--until", "0"], &[]),
        (&["--meta", "user=admin"], &[1]),
        (&["--meta", "user=admin", "--meta", "reason=sign-up"], &[1]),
        (&["--meta", "user=admin", "--meta", "reason=other"], &[]),
        (&["--meta", "nobody=x"], &[]),
        (&["--table", "user"], &[4, 3, 2, 1]),
        (&["--table", "other"], &[]),
        (&["--key", "2"], &[4, 3]),
        (&["--key", "2", "--key", "1", "-n", "3"], &[4, 3, 2]),
        (&["--key-hex", "--key", "00ff"], &[3]),
        (&["--oneline", "--reverse", "--since", "2"], &[3, 4]),
    ];
    for (args, want) in cases {
        assert_eq!(log_txids(&db, args), want, "log {args:?}");
    }
    // A key filter shows only the matching changes of a transaction.
    let filtered = json_lines(&ok(&db, &["--json", "log", "--key", "2", "--since", "2"]));
    assert_eq!(filtered[1]["n_changes"], 2);
    assert_eq!(filtered[1]["changes"].as_array().map(Vec::len), Some(1));
    let text = ok(&db, &["log", "--key", "2", "--since", "2", "--reverse"]);
    assert!(
        text.contains("  insert  user  2  plain text\n  (1 other changes not shown)\n"),
        "{text}"
    );
    fails(&db, &["log", "--until", "9"], 1, "txid 9 is in the future");
    fails(&db, &["log", "-n", "0"], 2, "--limit");
    fails(&db, &["log", "--meta", "user"], 2, "is not KEY=VALUE");
    fails(
        &db,
        &["log", "--oneline", "--stat"],
        2,
        "cannot be used with",
    );
}

#[test]
fn log_since_and_until_take_times() {
    let (_dir, db) = scenario();
    let t2 = commit_time(&db, 2);
    let t3 = commit_time(&db, 3);
    assert_eq!(log_txids(&db, &["--since", &t2, "--until", &t3]), [3, 2]);
    assert_eq!(log_txids(&db, &["--until", &t2, "--reverse"]), [1, 2]);
    // Everything was committed in the last hour, nothing before yesterday.
    assert_eq!(log_txids(&db, &["--since", "1 hour ago"]), [4, 3, 2, 1]);
    assert_eq!(log_txids(&db, &["--since", "yesterday", "-n", "1"]), [4]);
    assert_eq!(log_txids(&db, &["--until", "yesterday"]), Vec::<u64>::new());
    assert_eq!(
        log_txids(&db, &["--until", "2000-01-01"]),
        Vec::<u64>::new()
    );
    assert_eq!(
        log_txids(&db, &["--since", "2999-01-01"]),
        Vec::<u64>::new()
    );
    fails(
        &db,
        &["log", "--since", "2 days"],
        2,
        "a relative time needs \"ago\"",
    );
    fails(
        &db,
        &["log", "--follow", "--until", "3"],
        2,
        "cannot be used with",
    );
}

#[test]
fn log_oneline_and_stat_summarise_each_transaction() {
    let (_dir, db) = scenario();
    let text = ok(&db, &["--utc", "log", "--oneline"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("4  ") && lines[0].ends_with("Z  delete user 2"),
        "{text}"
    );
    assert!(lines[1].ends_with("Z  user: 2 insert"), "{text}");
    assert!(
        lines[3].ends_with("Z  insert user 1  reason=sign-up user=admin"),
        "{text}"
    );

    let text = ok(&db, &["log", "--stat", "-n", "2"]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("tx 4  "), "{text}");
    assert_eq!(lines[1], "  user  1 key  1 delete");
    assert_eq!(lines[2], "  1 table, 1 key changed");
    assert!(lines[3].starts_with("tx 3  "), "{text}");
    assert_eq!(lines[4], "  user  2 keys  2 insert");
    assert_eq!(lines.len(), 6, "{text}");

    let stat = json_lines(&ok(&db, &["--json", "log", "--stat", "--since", "2"]));
    assert_eq!(
        stat[1]["tables"],
        serde_json::json!({"user": {"keys": 2, "insert": 2, "update": 0, "delete": 0}})
    );
    let oneline = json_lines(&ok(&db, &["--json", "log", "--oneline", "-n", "1"]));
    assert_eq!(oneline[0]["n_changes"], 1);
    assert!(oneline[0].get("changes").is_none());
}

#[test]
fn times_are_shown_local_or_utc_as_asked() {
    let (_dir, db) = scenario();
    let utc = commit_time(&db, 1);
    assert!(utc.ends_with('Z') && utc.len() == "2026-01-01T00:00:00.000000Z".len());
    // A zone 5:30 east of UTC without daylight saving time (POSIX TZ rule).
    let india = [("TZ", "IST-5:30")];
    let local = tc_env(&db, &["tx", "1"], &india);
    assert_eq!(local.code, 0, "{}", local.stderr);
    let header = local.stdout.lines().next().expect("a line").to_string();
    assert!(header.contains("+05:30  "), "{header}");
    let forced = tc_env(&db, &["--utc", "tx", "1"], &india);
    assert!(
        forced.stdout.starts_with(&format!("tx 1  {utc}  ")),
        "{}",
        forced.stdout
    );
    // JSON is UTC whatever the zone.
    let doc = tc_env(&db, &["--json", "tx", "1"], &india);
    assert_eq!(json(&doc.stdout)["time"], utc.as_str());
    // A time printed in local time reads back as the same microsecond.
    let shown = header.split("  ").nth(1).expect("time").to_string();
    let back = tc_env(&db, &["get", "user", "1", "--at", &shown], &[]);
    assert_eq!(back.stdout, format!("{ALICE}\n"), "{}", back.stderr);
    // Dates without an offset are local, or UTC with --utc.
    let day = &utc[..10];
    let next_day = tc_env(&db, &["--json", "log", "--until", day], &india);
    assert!(json_lines(&next_day.stdout).is_empty());
}

#[test]
fn get_at_takes_dates_and_relative_times() {
    let (_dir, db) = scenario();
    // (--at, exit code): the scenario was committed moments ago.
    for (at, code) in [
        ("yesterday", 1),
        ("1 hour ago", 1),
        ("2000-01-31", 1),
        ("now", 0),
        ("today", 1),
        ("2999-01-01", 0),
    ] {
        let out = tc(&db, &["get", "user", "1", "--at", at]);
        if at == "today" {
            // Midnight today: before the scenario unless it ran at midnight.
            assert!(out.code == 0 || out.code == 1, "{at}: {}", out.stderr);
            continue;
        }
        assert_eq!(out.code, code, "--at {at}: {}{}", out.stdout, out.stderr);
        if code == 1 {
            assert!(out.stderr.contains("as of txid 0"), "{at}: {}", out.stderr);
        } else {
            assert_eq!(out.stdout, format!("{BOB}\n"));
        }
    }
    fails(
        &db,
        &["tables", "--at", "2 parsecs ago"],
        2,
        "is not a time",
    );
}

#[test]
fn put_reads_stdin_and_can_require_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let path = db.to_str().expect("utf-8");
    let piped = run_with(
        &["--db", path, "put", "user", "1", "-"],
        "{\"name\":\"Ann\"}\n",
    );
    assert_eq!((piped.code, piped.stderr.as_str()), (0, ""));
    assert_eq!(ok(&db, &["get", "user", "1"]), "{\"name\":\"Ann\"}\n");
    let hex = run_with(
        &["--db", path, "put", "bin", "k", "-", "--value-hex"],
        "00ff\n",
    );
    assert_eq!(hex.code, 0, "{}", hex.stderr);
    assert_eq!(ok(&db, &["get", "bin", "k"]), "0x00ff\n");

    // --require-json refuses what is not JSON and writes nothing.
    fails(
        &db,
        &["put", "user", "2", "{bad json", "--require-json"],
        1,
        "is not valid JSON",
    );
    fails(
        &db,
        &["put", "user", "2", "plain", "--require-json"],
        1,
        "nothing was written",
    );
    let from_stdin = run_with(
        &["--db", path, "put", "user", "2", "-", "--require-json"],
        "{",
    );
    check_failure(from_stdin, &["put -"], 1, "not valid JSON");
    assert_eq!(log_txids(&db, &[]), [2, 1]);
    assert_eq!(
        ok(&db, &["put", "user", "2", "[1,2]", "--require-json"]),
        "tx 3: insert user 2\n"
    );
    fails(
        &db,
        &["put", "u", "k", "00", "--value-hex", "--require-json"],
        2,
        "cannot be used with",
    );
    // Without it, JSON-looking text is stored, with a warning.
    let warned = tc(&db, &["put", "user", "3", "{bad json"]);
    assert_eq!(warned.code, 0);
    assert!(
        warned
            .stderr
            .starts_with("warning: the value starts like JSON"),
        "{}",
        warned.stderr
    );
    assert_eq!(ok(&db, &["get", "user", "3"]), "{bad json\n");
}

#[test]
fn import_can_require_json_values() {
    let (_dir, db) = scenario();
    let path = db.to_str().expect("utf-8");
    let args = [
        "--db",
        path,
        "--lock-timeout",
        "5",
        "import",
        "t",
        "-",
        "--require-json",
    ];
    let good = run_with(&args, "{\"key\":\"a\",\"value\":{\"x\":1}}\n");
    assert_eq!(good.code, 0, "{}", good.stderr);
    for (line, needle) in [
        (
            "{\"key\":\"b\",\"value\":\"text\"}\n",
            "line 1: the value would be stored as text",
        ),
        ("{\"key\":\"b\",\"value_hex\":\"00\"}\n", "--require-json"),
    ] {
        check_failure(run_with(&args, line), &args, 1, needle);
    }
    assert_eq!(log_txids(&db, &["--table", "t"]), [5]);
}

#[test]
fn checkpoint_purge_by_time_and_csv() {
    let (_dir, db) = scenario();
    assert!(ok(&db, &["checkpoint"]).starts_with("checkpoint written: covers up to txid 4 ("));
    let doc = json(&ok(&db, &["--json", "checkpoint"]));
    assert_eq!(doc["txid"], 4);
    assert!(doc["bytes"].as_u64().is_some_and(|n| n > 0));
    fails(
        &db,
        &["purge", "--before", "yesterday"],
        1,
        "no transaction was committed by yesterday",
    );
    let t2 = commit_time(&db, 2);
    assert!(ok(&db, &["purge", "--before", &t2]).starts_with("tx 5: history before txid 2 purged"));
    assert_eq!(
        ok(&db, &["--csv", "tx", "5"]),
        "OP,TABLE,KEY,VALUE\npurge,,,2\n"
    );

    assert_eq!(ok(&db, &["--csv", "tables"]), "TABLE,KEYS\nuser,2\n");
    assert_eq!(
        ok(&db, &["--csv", "scan", "user"]),
        format!(
            "KEY,VALUE\n0x00ff,0x0102\n1,\"{}\"\n",
            BOB.replace('"', "\"\"")
        )
    );
    let diff = ok(&db, &["--csv", "diff", "user", "2", "4"]);
    assert_eq!(diff, "KEY,OP,BEFORE,AFTER\n0x00ff,insert,-,0x0102\n");
    let log = ok(
        &db,
        &["--csv", "--utc", "log", "--until", "3", "--since", "2"],
    );
    let mut lines = log.lines();
    assert_eq!(lines.next(), Some("TXID,TIME,META,OP,TABLE,KEY,VALUE"));
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("3,") && l.ends_with(",-,insert,user,0x00ff,0x0102"))
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.ends_with(",-,insert,user,2,plain text"))
    );
    assert_eq!(lines.next(), None);
    let stat = ok(
        &db,
        &[
            "--csv", "log", "--stat", "-n", "1", "--since", "2", "--until", "3",
        ],
    );
    assert!(
        stat.starts_with("TXID,TIME,META,TABLE,KEYS,INSERT,UPDATE,DELETE\n3,"),
        "{stat}"
    );
    assert!(stat.ends_with(",-,user,2,2,0,0\n"), "{stat}");
    fails(&db, &["--csv", "get", "user", "1"], 2, "--csv is for");
    fails(
        &db,
        &["--csv", "--json", "tables"],
        2,
        "cannot be used with",
    );
}

#[test]
fn completions_and_man_pages_are_generated() {
    let bash = run_with(&["completions", "bash"], "");
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    assert!(bash.stdout.contains("_timecask()") && bash.stdout.contains("checkpoint"));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = run_with(&["completions", shell], "");
        assert!(out.code == 0 && out.stdout.contains("timecask"), "{shell}");
    }
    check_failure(
        run_with(&["completions", "tcsh"], ""),
        &["tcsh"],
        2,
        "invalid value",
    );
    let man = run_with(&["man"], "");
    assert_eq!(man.code, 0, "{}", man.stderr);
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH timecask"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    assert!(man.stdout.contains("checkpoint"));
    let dir = tempfile::tempdir().expect("tempdir");
    let pages = dir.path().join("man1");
    let out = run_with(&["man", "--dir", pages.to_str().expect("utf-8")], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let log_page = std::fs::read_to_string(pages.join("timecask-log.1")).expect("log page");
    assert!(
        log_page.contains("timecask\\-log") && log_page.contains("oneline"),
        "{log_page}"
    );
    assert!(pages.join("timecask.1").exists());
}

/// Starts `timecask` with stdout on a pseudo-terminal (stdin and stderr
/// are not); what the terminal shows arrives on the channel, in chunks.
#[cfg(unix)]
fn spawn_on_terminal(
    db: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (std::process::Child, mpsc::Receiver<Vec<u8>>) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use std::io::Read;

    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().expect("utf-8 pty name"))
        .expect("open pty");
    let child = {
        let mut command = Command::new(BIN);
        command
            .args(["--db", db.to_str().expect("utf-8"), "--lock-timeout", "5"])
            .args(args)
            .env_remove("TIMECASK_DB")
            .env_remove("NO_COLOR")
            .env_remove("TIMECASK_PAGER")
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .stdout(Stdio::from(terminal))
            .stderr(Stdio::null());
        for (k, v) in envs {
            command.env(k, v);
        }
        // The command (and its copy of the terminal) is dropped here, so the
        // master reads end of file once the child and its pager are done.
        command.spawn().expect("spawn timecask")
    };
    let mut master = std::fs::File::from(master);
    let (send, chunks) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0; 4096];
        loop {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break, // EIO: every terminal end is closed
                Ok(n) => {
                    if send.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    (child, chunks)
}

/// Runs `timecask` with stdout on a pseudo-terminal; returns its exit code
/// and what the terminal showed (`\r\n` from the terminal's output
/// processing turned back into `\n`).
#[cfg(unix)]
fn on_terminal(db: &Path, args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let (mut child, chunks) = spawn_on_terminal(db, args, envs);
    let code = child.wait().expect("wait").code().expect("exit code");
    let shown: Vec<u8> = chunks.iter().flatten().collect();
    let text = String::from_utf8(shown).expect("utf-8 terminal output");
    (code, text.replace("\r\n", "\n"))
}

#[cfg(unix)]
#[test]
fn pager_and_colour_only_on_a_terminal() {
    let (_dir, db) = scenario();
    // A "pager" that marks every line it shows.
    let pager = [("PAGER", "sed 's/^/paged: /'")];
    let plain = ok(&db, &["log"]);

    // On a terminal: through the pager, in colour.
    let (code, shown) = on_terminal(&db, &["log"], &pager);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.lines().all(|l| l.starts_with("paged: ")), "{shown}");
    assert!(
        shown.contains("\x1b["),
        "no colour on a terminal: {shown:?}"
    );
    // TIMECASK_PAGER wins over PAGER.
    let (_, shown) = on_terminal(
        &db,
        &["log"],
        &[("PAGER", "false"), ("TIMECASK_PAGER", "sed 's/^/tc: /'")],
    );
    assert!(shown.starts_with("tc: "), "{shown}");

    // --no-pager, or an empty or `cat` pager: straight to the terminal.
    for (args, envs) in [
        (&["--no-pager", "log"][..], &pager[..]),
        (&["log"][..], &[("PAGER", "")][..]),
        (&["log"][..], &[("PAGER", "cat")][..]),
    ] {
        let (code, shown) = on_terminal(&db, args, envs);
        assert_eq!(code, 0);
        assert!(
            !shown.contains("paged: ") && shown.contains("tx 4"),
            "{args:?} {envs:?}: {shown}"
        );
    }
    // NO_COLOR, --color never, and --json turn colour off on a terminal.
    for args in [
        &["--no-pager", "--color", "never", "log"][..],
        &["--no-pager", "--json", "log"][..],
    ] {
        let (_, shown) = on_terminal(&db, args, &[]);
        assert!(!shown.contains('\x1b'), "{args:?}: {shown:?}");
    }
    let (_, shown) = on_terminal(&db, &["--no-pager", "log"], &[("NO_COLOR", "1")]);
    assert_eq!(shown, plain, "NO_COLOR output differs from piped output");

    // Not a terminal: no pager and no colour, whatever PAGER says.
    let piped = tc_env(&db, &["log"], &pager);
    assert_eq!((piped.code, piped.stdout.as_str()), (0, plain.as_str()));
    assert!(!plain.contains('\x1b'));
    // --color always colours even a pipe (for `| less -R`).
    let forced = tc_env(&db, &["--color", "always", "log"], &[]);
    assert!(forced.stdout.contains("\x1b["), "{}", forced.stdout);
    // Other long listings page too.
    let (code, shown) = on_terminal(&db, &["history", "user", "1"], &pager);
    assert!(code == 0 && shown.starts_with("paged: "), "{shown}");
}

#[cfg(unix)]
#[test]
fn log_follow_on_a_terminal_never_pages() {
    let (_dir, db) = scenario();
    let pager = [("PAGER", "sed 's/^/paged: /'")];
    let (mut child, chunks) = spawn_on_terminal(&db, &["log", "--follow", "--since", "3"], &pager);
    // A pager would hold the output until its input ends, which --follow's
    // never does: the first transaction must reach the terminal directly.
    let mut shown = String::new();
    while !shown.contains('\n') {
        let chunk = chunks
            .recv_timeout(Duration::from_secs(10))
            .expect("log --follow printed nothing");
        shown.push_str(&String::from_utf8_lossy(&chunk));
    }
    child.kill().expect("kill follower");
    child.wait().expect("reap follower");
    assert!(
        shown.starts_with("tx 4  ") || shown.contains("tx 4"),
        "{shown:?}"
    );
    assert!(!shown.contains("paged: "), "{shown:?}");
}

/// `timecask replicate|restore|follow` run `timecask-replicate` from PATH.
#[test]
fn replication_subcommands_run_timecask_replicate_from_path_or_say_how_to_install_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = Command::new(BIN)
        .args(["restore", "--from", "s3://b/p", "--at", "1", "out"])
        .env("PATH", dir.path())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(
        stderr.contains("`timecask-replicate`, which is not installed"),
        "{stderr}"
    );
    let fake = dir.path().join("timecask-replicate");
    std::fs::write(&fake, "#!/bin/sh\necho \"args: $*\"\nexit 3\n").expect("write");
    let mut perms = std::fs::metadata(&fake).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&fake, perms).expect("chmod");
    let ran = Command::new(BIN)
        .args(["follow", "--from", "s3://b/p", "replica"])
        .env("PATH", dir.path())
        .output()
        .expect("run");
    assert_eq!(ran.status.code(), Some(3), "its exit code is passed on");
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "args: follow --from s3://b/p replica\n"
    );
}
