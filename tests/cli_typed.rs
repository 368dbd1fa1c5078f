//! The `timecask` binary on typed tables: the database of
//! `examples/users.rs` (the example itself, included as a module) shown
//! decoded in every read command, `put`/`import` encoding JSON with the
//! table's codec, tuple keys, compact tables, and the internal schema
//! table absent from every listing.

use std::path::{Path, PathBuf};
use std::process::Command;

use timecask::{Db, TableDef};

#[path = "../examples/users.rs"]
#[allow(dead_code, reason = "the example's main and types, used in part")]
mod users;

const BIN: &str = env!("CARGO_BIN_EXE_timecask");

/// Runs `timecask --db DB args...`; returns (exit code, stdout, stderr).
fn tc(db: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(["--lock-timeout", "5", "--utc"])
        .args(args)
        .env_remove("TIMECASK_DB")
        .env("NO_COLOR", "1")
        .output()
        .expect("run timecask");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("utf-8");
    let (stdout, stderr) = (text(out.stdout), text(out.stderr));
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    (out.status.code().expect("exit code"), stdout, stderr)
}

/// Runs and expects success and an empty stderr; returns stdout.
#[track_caller]
fn ok(db: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = tc(db, args);
    assert_eq!((code, stderr.as_str()), (0, ""), "{args:?}: {stdout}");
    stdout
}

/// Runs and expects exit code 1 with `needle` in the one error line.
#[track_caller]
fn fails(db: &Path, args: &[&str], needle: &str) {
    let (code, stdout, stderr) = tc(db, args);
    assert_eq!(code, 1, "{args:?}: {stdout}{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains(needle),
        "{args:?}: {stderr:?} lacks {needle:?}"
    );
}

/// The example's database: user 1 through tx 1–4 (tx 4 with the
/// `nickname` field of `UserV2`).
fn users_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    users::run(&path).expect("the example runs");
    (dir, path)
}

const ALICE: &str = r#"{"name":"Alice","email":"alice@example.com","age":30}"#;
const BOB: &str = r#"{"name":"Bob","email":"alice@example.com","age":30}"#;
const ALLY: &str = r#"{"name":"Alice","email":"alice@example.com","age":30,"nickname":"Ally"}"#;

#[test]
fn the_users_example_reads_decoded() {
    let (_dir, db) = users_db();
    assert_eq!(ok(&db, &["tables"]), "TABLE  KEYS\nuser   1\n");
    assert_eq!(ok(&db, &["get", "user", "1"]), format!("{ALLY}\n"));
    assert_eq!(
        ok(&db, &["get", "user", "1", "--as-of", "2"]),
        format!("{BOB}\n")
    );
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&db, &["--json", "get", "user", "1"])).expect("JSON");
    assert_eq!(doc["key"], "1");
    assert_eq!(doc["value"]["nickname"], "Ally");
    assert_eq!(
        ok(&db, &["scan", "user"]),
        format!("KEY  VALUE\n1    {ALLY}\n")
    );

    let history = ok(&db, &["history", "user", "1"]);
    for part in [
        ALICE,
        BOB,
        ALLY,
        "  name: \"Alice\" -> \"Bob\"",
        "  name: \"Bob\" -> \"Alice\"",
        "  nickname: null -> \"Ally\"",
    ] {
        assert!(history.contains(part), "{part:?} missing from\n{history}");
    }
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&db, &["--json", "history", "user", "1"])).expect("JSON");
    assert_eq!(
        doc["versions"][1]["changeset"]["name"],
        serde_json::json!(["Alice", "Bob"])
    );

    let tx = ok(&db, &["tx", "2"]);
    assert!(tx.contains(&format!("update  user  1  {BOB}")), "{tx}");
    assert!(tx.contains("name: \"Alice\" -> \"Bob\""), "{tx}");
    let log = ok(&db, &["log"]);
    assert_eq!(log.matches("  user  1  ").count(), 4, "{log}");
    assert!(!log.contains("__timecask"), "{log}");
    let oneline = ok(&db, &["log", "--oneline", "--key", "1"]);
    assert_eq!(oneline.lines().count(), 4, "{oneline}");
    let diff = ok(&db, &["diff", "user", "1", "4"]);
    assert!(diff.contains("nickname: null -> \"Ally\""), "{diff}");
    assert_eq!(
        ok(&db, &["export", "user"]),
        format!("{{\"key\":\"1\",\"value\":{ALLY}}}\n")
    );
    fails(&db, &["get", "user", "2"], "key \"2\" not found");
    fails(&db, &["get", "user", "x"], "u64 keys");
}

#[test]
fn the_schema_table_appears_nowhere() {
    let (_dir, db) = users_db();
    for args in [
        &["tables"][..],
        &["--json", "tables"],
        &["log"],
        &["--json", "log"],
        &["log", "--stat"],
        &["tx", "1"],
        &["--json", "tx", "1"],
        &["stats"],
    ] {
        let out = ok(&db, args);
        assert!(!out.contains("__timecask"), "{args:?}: {out}");
    }
    let db = Db::open(&db).expect("open");
    assert_eq!(db.snapshot().tables(), ["user"]);
    let first = db.transaction(timecask::TxId(1)).expect("tx 1");
    assert_eq!(first.changes.len(), 1, "{first:?}");
    let feed: Vec<_> = db.changes_since(timecask::TxId(0)).collect();
    assert!(
        feed.iter()
            .flatten()
            .all(|r| r.changes.iter().all(|c| c.table == "user"))
    );
}

#[test]
fn put_and_import_encode_json_with_the_tables_codec() {
    let (_dir, db) = users_db();
    let carol = r#"{"name":"Carol","email":"c@x","age":41}"#;
    assert_eq!(
        ok(&db, &["put", "user", "2", carol]),
        "tx 5: insert user 2\n"
    );
    {
        let db = Db::open(&db).expect("open");
        let user = db
            .snapshot()
            .typed(users::USERS_V2)
            .get(&2)
            .expect("typed read");
        assert_eq!(
            user.map(|u| (u.name, u.nickname)),
            Some(("Carol".into(), None))
        );
    }
    fails(&db, &["put", "user", "3", "not json"], "must be JSON");
    let export = ok(&db, &["export", "user"]);
    let file = db.with_extension("jsonl");
    let more = "{\"key\":3,\"value\":{\"name\":\"Dan\",\"email\":\"d@x\",\"age\":5}}\n";
    std::fs::write(&file, format!("{export}{more}")).expect("write");
    let imported = ok(&db, &["import", "user", file.to_str().expect("utf-8")]);
    assert_eq!(
        imported,
        "tx 6: imported 3 rows into user (1 inserted, 0 updated)\n"
    );
    let db = Db::open(&db).expect("open");
    let dan = db
        .snapshot()
        .typed(users::USERS)
        .get(&3)
        .expect("typed read");
    assert_eq!(dan.map(|u| u.age), Some(5));
}

#[test]
fn tuple_keys_and_compact_tables() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Score {
        points: i64,
    }
    const SCORES: TableDef<(String, u32), Score> = TableDef::new("scores");
    const SAMPLES: TableDef<u64, (u64, f64)> = TableDef::compact("samples");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let db = Db::open(&path).expect("open");
        let mut tx = db.begin();
        tx.typed(SCORES)
            .put(&("ann".to_string(), 2), &Score { points: -3 })
            .expect("put");
        tx.typed(SAMPLES).put(&1, &(7, 0.5)).expect("put");
        tx.commit().expect("commit");
    }
    assert_eq!(
        ok(&path, &["scan", "scores"]),
        "KEY        VALUE\n[\"ann\",2]  {\"points\":-3}\n"
    );
    assert_eq!(
        ok(&path, &["get", "scores", r#"["ann",2]"#]),
        "{\"points\":-3}\n"
    );
    // bincode stores no field names: hex, and refused as JSON input.
    let scan = ok(&path, &["scan", "samples"]);
    assert!(scan.contains("1    0x07"), "{scan}");
    fails(
        &path,
        &["put", "samples", "2", "[1, 2.5]"],
        "fixed-layout codec",
    );
}
