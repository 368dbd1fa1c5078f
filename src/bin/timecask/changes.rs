//! Reading transactions: `log` (and `log --follow`), `tx`, `diff`.

use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use timecask::{Db, Error, Op, TxId, TxRecord};

use crate::common::{Ctx, Need, line, require_table, segment_files};
use crate::render::{
    J, SystemChange, changeset_json, field_changes, meta_json, op_json, show_field_changes,
    show_key, show_meta, show_value, system_change, time_json, with_key,
};
use crate::table::Table;
use crate::time::format_rfc3339;

/// How often `log --follow` looks for new commits.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

pub fn log(ctx: &Ctx, out: &mut dyn Write, since: Option<u64>, follow: bool) -> Result<()> {
    let db = ctx.open(Need::Read)?;
    let latest = db.latest_txid();
    // By default, from the oldest transaction history still has.
    let since = since.unwrap_or_else(|| db.stats().horizon.0.saturating_sub(1));
    if since > latest.0 {
        return Err(Error::FutureTxid {
            requested: TxId(since),
            latest,
        }
        .into());
    }
    let mut position = print_new(ctx, out, &db, TxId(since))?;
    if !follow {
        return Ok(());
    }
    // A read-only database shows the log as of its open, so the follower
    // watches the segment files and opens it again (read-only, beside the
    // writer) when they change.
    drop(db);
    let mut seen = signature(ctx)?;
    loop {
        std::thread::sleep(FOLLOW_POLL);
        let now = signature(ctx)?;
        if now == seen {
            continue;
        }
        let db = ctx.open(Need::Read)?;
        position = print_new(ctx, out, &db, position)?;
        seen = now;
    }
}

/// What the segment files look like: changes when anything is committed.
fn signature(ctx: &Ctx) -> Result<Vec<(std::path::PathBuf, u64, Option<SystemTime>)>> {
    Ok(segment_files(&ctx.db)?
        .into_iter()
        .map(|(path, meta)| (path, meta.len(), meta.modified().ok()))
        .collect())
}

/// Prints every transaction after `after` from the change feed; returns
/// the last txid printed.
fn print_new(ctx: &Ctx, out: &mut dyn Write, db: &Db, after: TxId) -> Result<TxId> {
    let mut feed = db.changes_since(after);
    while let Some(record) = feed.wait_next(Duration::ZERO)? {
        if ctx.json {
            line(out, tx_json(&record, None).compact())?;
        } else {
            write!(out, "{}", tx_text(&record, None))?;
        }
        out.flush()?;
    }
    Ok(feed.position())
}

pub fn tx(ctx: &Ctx, out: &mut dyn Write, txid: u64) -> Result<()> {
    let db = ctx.open(Need::Read)?;
    let record = db.transaction(TxId(txid))?;
    // The value of each key before this transaction, for field-level changes.
    let before = db.as_of(TxId(txid - 1))?;
    let mut changes = Vec::with_capacity(record.changes.len());
    for change in &record.changes {
        changes.push(match change.op {
            Op::Update => {
                let old = before.get(&change.table, &change.key)?;
                field_changes(old.as_deref(), change.value.as_deref())
            }
            Op::Insert | Op::Delete => None,
        });
    }
    if ctx.json {
        line(out, tx_json(&record, Some(&changes)).pretty())
    } else {
        write!(out, "{}", tx_text(&record, Some(&changes)))?;
        Ok(())
    }
}

type FieldChanges = Option<Vec<crate::render::FieldChange>>;

fn tx_json(record: &TxRecord, field_changes: Option<&[FieldChanges]>) -> J {
    let changes = record
        .changes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            match system_change(c) {
                Some(SystemChange::Purge { before }) => {
                    return J::obj()
                        .with("op", J::Str("purge".into()))
                        .with("before", J::Num(before));
                }
                Some(SystemChange::Erase { table, key }) => {
                    let doc = J::obj()
                        .with("op", J::Str("erase".into()))
                        .with("table", J::Str(table));
                    return match key {
                        Some(key) => with_key(doc, &key),
                        None => doc,
                    };
                }
                None => {}
            }
            let doc = with_key(J::obj().with("table", J::Str(c.table.clone())), &c.key)
                .with("op", op_json(c.op))
                .with_opt_bytes("value", c.value.as_deref());
            match field_changes.and_then(|f| f[i].as_deref()) {
                Some(changes) => doc.with("changeset", changeset_json(changes)),
                None => doc,
            }
        })
        .collect();
    J::obj()
        .with("txid", J::Num(record.txid.0))
        .with("time", time_json(record.commit_time))
        .with("meta", meta_json(&record.meta))
        .with("changes", J::Arr(changes))
}

/// `tx 2  2025-…Z  user=alice` then one indented line per change.
fn tx_text(record: &TxRecord, field_changes: Option<&[FieldChanges]>) -> String {
    let mut text = format!("tx {}  {}", record.txid, format_rfc3339(record.commit_time));
    if !record.meta.is_empty() {
        text.push_str("  ");
        text.push_str(&show_meta(&record.meta));
    }
    text.push('\n');
    let mut table = Table::plain(2);
    for (i, c) in record.changes.iter().enumerate() {
        match system_change(c) {
            Some(SystemChange::Purge { before }) => {
                table.row(vec![
                    "purge".into(),
                    format!("history before txid {before}"),
                ]);
                continue;
            }
            Some(SystemChange::Erase { table: name, key }) => {
                let key = key.map_or("(key removed by compaction)".into(), |k| show_key(&k));
                table.row(vec!["erase".into(), name, key]);
                continue;
            }
            None => {}
        }
        table.row(vec![
            c.op.to_string(),
            c.table.clone(),
            show_key(&c.key),
            show_value(c.value.as_deref()),
        ]);
        if let Some(changes) = field_changes.and_then(|f| f[i].as_deref()) {
            for change in show_field_changes(changes) {
                table.note(change);
            }
        }
    }
    text.push_str(&table.render());
    text
}

pub fn diff(ctx: &Ctx, out: &mut dyn Write, table: &str, from: u64, to: u64) -> Result<()> {
    let db = ctx.open(Need::Read)?;
    require_table(&db, table)?;
    let (from, to) = (TxId(from), TxId(to));
    let entries = db.diff(table, from, to)?;
    if ctx.json {
        let items = entries
            .iter()
            .map(|e| {
                let op = op_of(e.before.is_some(), e.after.is_some());
                let doc = with_key(J::obj(), &e.key)
                    .with("op", op_json(op))
                    .with_opt_bytes("before", e.before.as_deref())
                    .with_opt_bytes("after", e.after.as_deref());
                match field_changes(e.before.as_deref(), e.after.as_deref()) {
                    Some(changes) if op == Op::Update => {
                        doc.with("changeset", changeset_json(&changes))
                    }
                    _ => doc,
                }
            })
            .collect();
        let doc = J::obj()
            .with("table", J::Str(table.to_string()))
            .with("from", J::Num(from.0))
            .with("to", J::Num(to.0))
            .with("changes", J::Arr(items));
        return line(out, doc.pretty());
    }
    let mut text = Table::new(&["KEY", "OP", "BEFORE", "AFTER"]);
    for e in &entries {
        let op = op_of(e.before.is_some(), e.after.is_some());
        text.row(vec![
            show_key(&e.key),
            op.to_string(),
            show_value(e.before.as_deref()),
            show_value(e.after.as_deref()),
        ]);
        if op == Op::Update {
            let changes = field_changes(e.before.as_deref(), e.after.as_deref());
            for change in show_field_changes(changes.as_deref().unwrap_or_default()) {
                text.note(change);
            }
        }
    }
    write!(out, "{}", text.render())?;
    Ok(())
}

/// What going from `before` to `after` amounts to.
fn op_of(before: bool, after: bool) -> Op {
    match (before, after) {
        (false, _) => Op::Insert,
        (true, true) => Op::Update,
        (true, false) => Op::Delete,
    }
}
