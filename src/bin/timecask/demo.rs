//! The quick-start scenario (the README's first example): insert Alice
//! (tx 1), rename to Bob (tx 2), show the present, the past, the history,
//! what tx 2 changed, and a revert.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::json;
use timecask::{Db, HistoryQuery, TxId};

use crate::render::{field_changes, show_field_changes};

type DemoResult<T> = anyhow::Result<T>;

/// Runs the scenario in `dir`, or in a temporary directory removed
/// afterwards (also when the scenario fails).
pub fn run(out: &mut dyn Write, dir: Option<PathBuf>) -> DemoResult<()> {
    if let Some(dir) = dir {
        return scenario(out, &dir);
    }
    let temp = std::env::temp_dir().join(format!("timecask-demo-{}", std::process::id()));
    let result = scenario(out, &temp);
    let cleanup = std::fs::remove_dir_all(&temp)
        .with_context(|| format!("cannot remove the demo database {}", temp.display()));
    result.and(cleanup)
}

fn scenario(out: &mut dyn Write, dir: &Path) -> DemoResult<()> {
    let db = Db::open(dir)?;
    if db.latest_txid() != TxId(0) {
        bail!(
            "{} already holds a database; give the demo an empty directory",
            dir.display()
        );
    }
    writeln!(out, "timecask demo: database in {}\n", dir.display())?;

    let alice = json!({"name": "Alice", "email": "alice@example.com", "age": 30});
    let mut tx = db.begin();
    tx.set_meta("user", "admin")?;
    tx.set_meta("reason", "sign-up")?;
    tx.insert("user", b"1", alice.to_string())?;
    let t1 = tx.commit()?.context("tx 1 wrote nothing")?;
    writeln!(out, "tx {t1}: insert user 1 = {alice}")?;

    let mut bob = alice.clone();
    bob["name"] = json!("Bob");
    let mut tx = db.begin();
    tx.set_meta("user", "alice")?;
    tx.set_meta("reason", "rename")?;
    tx.update("user", b"1", bob.to_string())?;
    let t2 = tx.commit()?.context("tx 2 wrote nothing")?;
    writeln!(out, "tx {t2}: update user 1 name -> Bob\n")?;

    writeln!(
        out,
        "current row:   {}",
        show(db.snapshot().get("user", b"1")?)
    )?;
    writeln!(
        out,
        "as of tx {t1}:    {}\n",
        show(db.as_of(t1)?.get("user", b"1")?)
    )?;

    print_history(out, &db)?;

    writeln!(out, "what tx {t2} changed:")?;
    let record = db.transaction(t2)?;
    for change in &record.changes {
        let before = db.as_of(TxId(t2.0 - 1))?.get(&change.table, &change.key)?;
        let key = String::from_utf8_lossy(&change.key);
        writeln!(
            out,
            "  {} {key} ({}) by {}:",
            change.table,
            change.op,
            meta(&record.meta, "user")
        )?;
        let changes = field_changes(before.as_deref(), change.value.as_deref());
        for line in show_field_changes(&changes.unwrap_or_default()) {
            writeln!(out, "    {line}")?;
        }
    }
    writeln!(out)?;

    let mut tx = db.begin();
    tx.set_meta("user", "admin")?;
    tx.set_meta("reason", format!("revert to tx {t1}"))?;
    tx.revert("user", b"1", t1)?;
    let t3 = tx.commit()?.context("revert wrote nothing")?;
    writeln!(out, "revert user 1 to tx {t1}: committed as tx {t3}")?;
    writeln!(
        out,
        "current row:   {}\n",
        show(db.snapshot().get("user", b"1")?)
    )?;
    print_history(out, &db)
}

fn print_history(out: &mut dyn Write, db: &Db) -> DemoResult<()> {
    writeln!(out, "history of user 1:")?;
    writeln!(
        out,
        "  {:<5} {:<5} {:<7} {:<10} value",
        "txid", "end", "op", "by"
    )?;
    for v in db.snapshot().history("user", b"1", HistoryQuery::all())? {
        let end = v.end_txid.map_or("-".to_string(), |t| t.to_string());
        writeln!(
            out,
            "  {:<5} {:<5} {:<7} {:<10} {}",
            v.txid,
            end,
            v.op,
            meta(&v.meta, "user"),
            show(v.value)
        )?;
    }
    writeln!(out)?;
    Ok(())
}

fn meta<'a>(meta: &'a timecask::Metadata, key: &str) -> &'a str {
    meta.get(key).map_or("-", String::as_str)
}

fn show(value: Option<Vec<u8>>) -> String {
    match value {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => "(none)".to_string(),
    }
}
