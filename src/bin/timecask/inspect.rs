//! Reading state: `tables`, `get`, `scan`, `history`, `export`.

use std::io::Write;

use anyhow::{Result, bail};
use timecask::{HistoryQuery, KeyBytes, Op, TxId, Version};

use crate::common::{AtArgs, Ctx, Need, line, progress, require_table, view};
use crate::render::{
    J, changeset_json, field_changes, meta_json, op_json, show_field_changes, show_key, show_meta,
    show_raw_value, show_value, time_json, with_key,
};
use crate::style::Style;
use crate::table::Table;
use crate::typed::Schemas;

pub fn tables(ctx: &Ctx, out: &mut dyn Write, at: &AtArgs) -> Result<()> {
    let db = ctx.open(Need::Read)?;
    let view = view(ctx, &db, at)?;
    let mut rows = Vec::new();
    for name in view.tables() {
        let n_keys = view.count(&name)?;
        rows.push((name, n_keys));
    }
    if ctx.json {
        let items = rows
            .iter()
            .map(|(name, n)| {
                J::obj()
                    .with("table", J::Str(name.clone()))
                    .with("keys", J::Num(*n))
            })
            .collect();
        return line(out, J::Arr(items).pretty());
    }
    let mut table = Table::new(&["TABLE", "KEYS"]);
    for (name, n) in rows {
        table.row(vec![name, n.to_string()]);
    }
    table.print(ctx, out)
}

pub fn get(ctx: &Ctx, out: &mut dyn Write, table: &str, key: &str, at: &AtArgs) -> Result<()> {
    let db = ctx.open(Need::Read)?;
    require_table(&db, table)?;
    let schemas = Schemas::new(&db);
    let key = schemas.key_arg(ctx, table, key)?;
    let view = view(ctx, &db, at)?;
    let shown = KeyBytes(schemas.key_text(table, &key));
    let version = match view.get_version(table, &key)? {
        Some(live) if live.op != Op::Delete => live,
        Some(deleted) => bail!(
            "key {shown} of table {table:?} was deleted in tx {} (reading as of txid {})",
            deleted.txid,
            view.txid()
        ),
        None => bail!(
            "key {shown} not found in table {table:?} as of txid {}",
            view.txid()
        ),
    };
    let version = schemas
        .versions(table, vec![version])
        .pop()
        .expect("one version in, one out");
    let value = version.value.as_deref().unwrap_or_default();
    if ctx.json {
        let key = schemas.key_text(table, &key);
        let doc = with_key(J::obj().with("table", J::Str(table.to_string())), &key)
            .with("as_of", J::Num(view.txid().0));
        let doc = version_fields(doc, &version, None);
        return line(out, doc.pretty());
    }
    line(out, show_raw_value(value))
}

/// The fields of one version in JSON; `changes` adds Continuum's changeset.
fn version_fields(doc: J, v: &Version, changes: Option<J>) -> J {
    let doc = doc
        .with("txid", J::Num(v.txid.0))
        .with("end_txid", v.end_txid.map_or(J::Null, |t| J::Num(t.0)))
        .with("op", op_json(v.op))
        .with("time", time_json(v.commit_time))
        .with("meta", meta_json(&v.meta))
        .with_opt_bytes("value", v.value.as_deref());
    match changes {
        Some(changes) => doc.with("changeset", changes),
        None => doc,
    }
}

pub struct ScanArgs<'a> {
    pub table: &'a str,
    pub prefix: Option<&'a str>,
    pub at: &'a AtArgs,
    pub reverse: bool,
    pub limit: Option<usize>,
}

pub fn scan(ctx: &Ctx, out: &mut dyn Write, args: ScanArgs<'_>) -> Result<()> {
    let db = ctx.open(Need::Read)?;
    require_table(&db, args.table)?;
    let schemas = Schemas::new(&db);
    // A prefix of a typed table is a prefix of its key bytes: give it with
    // --key-hex, or as text for string keys.
    let prefix = args.prefix.map(|p| ctx.key(p)).transpose()?;
    let view = view(ctx, &db, args.at)?;
    let iter = match &prefix {
        Some(prefix) => view.prefix(args.table, prefix)?,
        None => view.iter(args.table)?,
    };
    let iter: Box<dyn Iterator<Item = _>> = if args.reverse {
        Box::new(iter.rev())
    } else {
        Box::new(iter)
    };
    let mut table = Table::new(&["KEY", "VALUE"]);
    for kv in iter.take(args.limit.unwrap_or(usize::MAX)) {
        let (key, value) = kv?;
        let (key, value) = (
            schemas.key_text(args.table, &key),
            schemas.value_text(args.table, &value),
        );
        if ctx.json {
            line(
                out,
                with_key(J::obj(), &key)
                    .with_bytes("value", &value)
                    .compact(),
            )?;
        } else {
            table.row(vec![show_key(&key), show_value(Some(&value))]);
        }
    }
    if !ctx.json {
        table.print(ctx, out)?;
    }
    Ok(())
}

/// `export`: every live pair as JSON lines, the format `import` reads.
pub fn export(ctx: &Ctx, out: &mut dyn Write, table: &str, at: &AtArgs) -> Result<()> {
    let db = ctx.open(Need::Read)?;
    require_table(&db, table)?;
    let view = view(ctx, &db, at)?;
    let schemas = Schemas::new(&db);
    let bar = progress(view.count(table)?, "keys");
    bar.set_message(format!("exporting {table} as of txid {}", view.txid()));
    for kv in view.iter(table)? {
        let (key, value) = kv?;
        let (key, value) = (
            schemas.key_text(table, &key),
            schemas.value_text(table, &value),
        );
        line(
            out,
            with_key(J::obj(), &key)
                .with_bytes("value", &value)
                .compact(),
        )?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

pub struct HistoryArgs<'a> {
    pub table: &'a str,
    pub key: &'a str,
    pub newest_first: bool,
    pub limit: Option<usize>,
}

pub fn history(ctx: &Ctx, out: &mut dyn Write, args: HistoryArgs<'_>) -> Result<()> {
    let db = ctx.open(Need::Read)?;
    require_table(&db, args.table)?;
    let schemas = Schemas::new(&db);
    let key = schemas.key_arg(ctx, args.table, args.key)?;
    // Each version is shown with what changed since the one before it, so
    // newest-first pages fetch one more (older) version than they show.
    let mut query = HistoryQuery::all();
    if args.newest_first {
        query = query.newest_first();
    }
    if let Some(n) = args.limit {
        query = query.limit(if args.newest_first { n + 1 } else { n });
    }
    let versions = db.snapshot().history(args.table, &key, query)?;
    if versions.is_empty() {
        bail!(
            "key {} has no history in table {:?}",
            KeyBytes(schemas.key_text(args.table, &key)),
            args.table
        );
    }
    let mut versions = schemas.versions(args.table, versions);
    let key = schemas.key_text(args.table, &key);
    let shown = args.limit.unwrap_or(usize::MAX).min(versions.len());
    if args.newest_first {
        versions.reverse();
    }
    // Oldest first from here; with newest-first, versions[0] may be the extra one.
    let skip = versions.len() - shown;
    let mut rows: Vec<(&Version, Option<Vec<_>>)> = Vec::new();
    for (i, v) in versions
        .iter()
        .enumerate()
        .skip(if args.newest_first { skip } else { 0 })
    {
        // The first version shown has no predecessor here: either there is
        // none, or it was purged.
        let before = i.checked_sub(1).map(|p| versions[p].value.as_deref());
        let changes = match (v.op, before) {
            (Op::Update, Some(before)) => field_changes(before, v.value.as_deref()),
            _ => None,
        };
        rows.push((v, changes));
    }
    if args.newest_first {
        rows.reverse();
    }
    if ctx.json {
        let items = rows
            .iter()
            .map(|(v, changes)| version_fields(J::obj(), v, changes.as_deref().map(changeset_json)))
            .collect();
        let doc = with_key(J::obj().with("table", J::Str(args.table.to_string())), &key)
            .with("versions", J::Arr(items));
        return line(out, doc.pretty());
    }
    let mut table = Table::new(&["TXID", "END", "OP", "TIME", "META", "VALUE"])
        .op_column(2)
        .style_column(0, Style::Txid)
        .style_column(3, Style::Time);
    for (v, changes) in rows {
        table.row(vec![
            v.txid.to_string(),
            v.end_txid.map_or("-".to_string(), |t: TxId| t.to_string()),
            v.op.to_string(),
            ctx.show_time(v.commit_time),
            show_meta(&v.meta),
            show_value(v.value.as_deref()),
        ]);
        for change in show_field_changes(changes.as_deref().unwrap_or_default()) {
            table.note(change);
        }
    }
    table.print(ctx, out)
}
