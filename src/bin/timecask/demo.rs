//! The SPEC.md §5 scenario: insert Alice (tx 1), rename to Bob (tx 2), show
//! the present, the past, the history, what tx 2 changed, and a revert.

use std::error::Error;
use std::path::PathBuf;

use serde_json::{Value, json};
use timecask::{Db, HistoryQuery, TxId};

type DemoResult<T> = Result<T, Box<dyn Error>>;

pub fn run(dir: Option<PathBuf>) -> DemoResult<()> {
    let temp_dir = match dir {
        Some(_) => None,
        None => Some(std::env::temp_dir().join(format!("timecask-demo-{}", std::process::id()))),
    };
    let dir = dir.or_else(|| temp_dir.clone()).ok_or("no directory")?;
    let db = Db::open(&dir)?;
    if db.latest_txid() != TxId(0) {
        return Err(format!(
            "{} already holds a database; give the demo an empty directory",
            dir.display()
        )
        .into());
    }
    println!("timecask demo: database in {}\n", dir.display());

    let alice = json!({"name": "Alice", "email": "alice@example.com", "age": 30});
    let mut tx = db.begin();
    tx.set_meta("user", "admin")?;
    tx.set_meta("reason", "sign-up")?;
    tx.insert("user", b"1", alice.to_string())?;
    let t1 = tx.commit()?.ok_or("tx 1 wrote nothing")?;
    println!("tx {t1}: insert user 1 = {alice}");

    let mut bob = alice.clone();
    bob["name"] = json!("Bob");
    let mut tx = db.begin();
    tx.set_meta("user", "alice")?;
    tx.set_meta("reason", "rename")?;
    tx.update("user", b"1", bob.to_string())?;
    let t2 = tx.commit()?.ok_or("tx 2 wrote nothing")?;
    println!("tx {t2}: update user 1 name -> Bob\n");

    println!("current row:   {}", show(db.snapshot().get("user", b"1")?));
    println!(
        "as of tx {t1}:    {}\n",
        show(db.as_of(t1)?.get("user", b"1")?)
    );

    print_history(&db)?;

    println!("what tx {t2} changed:");
    let record = db.transaction(t2)?;
    for change in &record.changes {
        let before = db.as_of(TxId(t2.0 - 1))?.get(&change.table, &change.key)?;
        let key = String::from_utf8_lossy(&change.key);
        println!(
            "  {} {key} ({}) by {}:",
            change.table,
            change.op,
            meta(&record.meta, "user")
        );
        for (field, old, new) in field_changes(before.as_deref(), change.value.as_deref()) {
            println!("    {field}: {old} -> {new}");
        }
    }
    println!();

    let old = db
        .as_of(t1)?
        .get("user", b"1")?
        .ok_or("user 1 missing at tx 1")?;
    let mut tx = db.begin();
    tx.set_meta("user", "admin")?;
    tx.set_meta("reason", format!("revert to tx {t1}"))?;
    tx.put("user", b"1", old)?;
    let t3 = tx.commit()?.ok_or("revert wrote nothing")?;
    println!("revert user 1 to tx {t1}: committed as tx {t3}");
    println!(
        "current row:   {}\n",
        show(db.snapshot().get("user", b"1")?)
    );
    print_history(&db)?;
    drop(db);
    if let Some(temp) = temp_dir {
        std::fs::remove_dir_all(&temp)?;
    }
    Ok(())
}

fn print_history(db: &Db) -> DemoResult<()> {
    println!("history of user 1:");
    println!(
        "  {:<5} {:<5} {:<7} {:<10} value",
        "txid", "end", "op", "by"
    );
    for v in db.snapshot().history("user", b"1", HistoryQuery::all())? {
        let end = v.end_txid.map_or("-".to_string(), |t| t.to_string());
        println!(
            "  {:<5} {:<5} {:<7} {:<10} {}",
            v.txid,
            end,
            v.op,
            meta(&v.meta, "user"),
            show(v.value)
        );
    }
    println!();
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

/// Field-level changes between two JSON object values: (field, old, new).
fn field_changes(before: Option<&[u8]>, after: Option<&[u8]>) -> Vec<(String, Value, Value)> {
    let parse = |b: Option<&[u8]>| match b.map(serde_json::from_slice::<Value>) {
        Some(Ok(Value::Object(map))) => map,
        _ => serde_json::Map::new(),
    };
    let (before, after) = (parse(before), parse(after));
    let mut fields: Vec<&String> = before.keys().chain(after.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter_map(|f| {
            let old = before.get(f).cloned().unwrap_or(Value::Null);
            let new = after.get(f).cloned().unwrap_or(Value::Null);
            (old != new).then(|| (f.clone(), old, new))
        })
        .collect()
}
