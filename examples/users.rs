//! The quick-start scenario (SPEC.md §5) with typed tables: a `user` table
//! with `name`, `email` and `age`. Insert Alice (tx 1), rename her to Bob
//! (tx 2), then show the current row, the row as of tx 1, the history with
//! ops and txids, what tx 2 changed field by field, and a revert to tx 1
//! that becomes tx 3. Then the struct gains a field (`nickname`): the old
//! rows still read, and tx 4 sets it.
//!
//! Run with `cargo run --example users [DIR]` (a temporary directory by
//! default), then look at it with the CLI: `timecask --db DIR get user 1`,
//! `timecask --db DIR history user 1`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use timecask::{Db, HistoryQuery, TableDef, TypedError};

/// The user as the application first wrote it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct User {
    pub name: String,
    pub email: String,
    pub age: u32,
}

/// The same table's struct a release later: one field more. Rows written
/// before it read with `nickname: None` (`TableDef::new` stores field
/// names, so the struct may gain, lose and rename fields).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct UserV2 {
    pub name: String,
    pub email: String,
    pub age: u32,
    #[serde(default)]
    pub nickname: Option<String>,
}

pub const USERS: TableDef<u64, User> = TableDef::new("user");
pub const USERS_V2: TableDef<u64, UserV2> = TableDef::new("user");

#[allow(dead_code, reason = "tests include this file for `run` only")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| temp.path().to_path_buf(), Into::into);
    run(&dir)
}

/// The whole scenario in a new database at `dir`.
pub fn run(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let db = Db::open(dir)?;
    if db.latest_txid().0 != 0 {
        return Err(format!("{} already holds a database", dir.display()).into());
    }
    println!("database in {}\n", dir.display());

    let alice = User {
        name: "Alice".into(),
        email: "alice@example.com".into(),
        age: 30,
    };
    let mut tx = db.begin();
    tx.set_meta("user", "admin")?;
    tx.set_meta("reason", "sign-up")?;
    tx.typed(USERS).insert(&1, &alice)?;
    let t1 = tx.commit()?.ok_or("tx 1 wrote nothing")?;
    println!("tx {t1}: insert user 1 = {alice:?}");

    let bob = User {
        name: "Bob".into(),
        ..alice.clone()
    };
    let mut tx = db.begin();
    tx.set_meta("user", "alice")?;
    tx.set_meta("reason", "rename")?;
    tx.typed(USERS).update(&1, &bob)?;
    let t2 = tx.commit()?.ok_or("tx 2 wrote nothing")?;
    println!("tx {t2}: update user 1 name -> Bob\n");

    let users = db.snapshot().typed(USERS);
    println!("current row:  {:?}", users.get(&1)?);
    println!(
        "as of tx {t1}:  {:?}\n",
        db.as_of(t1)?.typed(USERS).get(&1)?
    );

    print_history(&db)?;

    println!("what tx {t2} changed in user 1:");
    for change in users.changeset_at(&1, t2)? {
        println!("  {change}");
    }
    println!();

    let old = db
        .as_of(t1)?
        .typed(USERS)
        .get(&1)?
        .ok_or("user 1 missing at tx 1")?;
    let mut tx = db.begin();
    tx.set_meta("user", "admin")?;
    tx.set_meta("reason", format!("revert to tx {t1}"))?;
    tx.typed(USERS).put(&1, &old)?;
    let t3 = tx.commit()?.ok_or("the revert wrote nothing")?;
    println!("revert user 1 to tx {t1}: committed as tx {t3}");
    println!("current row:  {:?}\n", db.snapshot().typed(USERS).get(&1)?);
    print_history(&db)?;

    // A release later the struct has a `nickname`: every old version reads.
    let mut tx = db.begin();
    tx.set_meta("user", "alice")?;
    tx.set_meta("reason", "nickname")?;
    let mut users = tx.typed(USERS_V2);
    let mut user = users.get(&1)?.ok_or("user 1 missing")?;
    println!("user 1 read with UserV2: {user:?}");
    user.nickname = Some("Ally".into());
    users.update(&1, &user)?;
    let t4 = tx.commit()?.ok_or("tx 4 wrote nothing")?;
    let users = db.snapshot().typed(USERS_V2);
    println!("what tx {t4} changed in user 1:");
    for change in users.changeset_at(&1, t4)? {
        println!("  {change}");
    }
    println!(
        "as of tx {t1} with UserV2: {:?}",
        db.as_of(t1)?.typed(USERS_V2).get(&1)?
    );
    Ok(())
}

fn print_history(db: &Db) -> Result<(), TypedError> {
    println!("history of user 1:");
    println!("  txid  end   op      user   reason           name");
    let history = db
        .snapshot()
        .typed(USERS)
        .history(&1, HistoryQuery::all())?;
    for v in &history {
        let end = v.end_txid.map_or("-".to_string(), |t| t.to_string());
        let meta = |k: &str| v.meta.get(k).cloned().unwrap_or_default();
        let name = v.value.as_ref().map_or("(deleted)", |u| u.name.as_str());
        println!(
            "  {:<5} {:<5} {:<7} {:<6} {:<16} {name}",
            v.txid,
            end,
            v.op,
            meta("user"),
            meta("reason"),
        );
    }
    println!();
    Ok(())
}
