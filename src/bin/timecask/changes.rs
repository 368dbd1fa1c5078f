//! Reading transactions: `log` (and `log --follow`), `tx`, `diff`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use timecask::{Change, Error, Op, Timestamp, TxId, TxRecord};

use crate::common::{
    Ctx, Need, TxidOrTime, line, parse_meta, parse_txid_or_time, require_table, txid_at,
};
use crate::render::{
    J, SystemChange, changeset_json, field_changes, meta_json, op_json, show_field_changes,
    show_key, show_meta, show_raw_value, show_value, system_change, time_json, with_key,
};
use crate::style::Style;
use crate::table::Table;
use crate::typed::Schemas;

/// How long `log --follow` waits on its change feed at a time (the feed
/// itself looks for new commits every `timecask::FOLLOW_POLL_INTERVAL`).
const FOLLOW_WAIT: Duration = Duration::from_secs(60);

/// `log`'s options: which transactions, in which order, shown how.
#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// Only transactions after TXID, or committed at or after TIME
    /// (RFC 3339, a date, yesterday, "2 days ago")
    #[arg(long, value_name = "TXID|TIME", value_parser = parse_txid_or_time)]
    since: Option<TxidOrTime>,
    /// Only transactions up to TXID, or committed at or before TIME
    #[arg(long, value_name = "TXID|TIME", value_parser = parse_txid_or_time, conflicts_with = "follow")]
    until: Option<TxidOrTime>,
    /// At most N transactions: the newest N that match
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Oldest first (the default is newest first)
    #[arg(long)]
    reverse: bool,
    /// Only transactions that changed TABLE (and only those changes); repeatable
    #[arg(long = "table", value_name = "TABLE")]
    tables: Vec<String>,
    /// Only transactions that changed KEY (text, or hex with --key-hex; a
    /// typed table's key as shown: 1, ["ann",2]); repeatable
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// Only transactions whose metadata has KEY=VALUE; repeatable, all must match
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_meta)]
    meta: Vec<(String, String)>,
    /// One line per transaction: txid, time, what changed, metadata
    #[arg(long, conflicts_with = "stat")]
    oneline: bool,
    /// Per transaction, the tables it touched and how many keys of each
    #[arg(long)]
    stat: bool,
    /// Print the matching transactions oldest first, then new ones as they
    /// commit, until Ctrl-C
    #[arg(long)]
    follow: bool,
}

impl LogArgs {
    /// `--follow`: prints as commits land, so never through a pager.
    pub fn follows(&self) -> bool {
        self.follow
    }
}

/// The filters of a `log`, resolved.
struct Filter {
    tables: Vec<String>,
    keys: Vec<Vec<u8>>,
    meta: Vec<(String, String)>,
}

impl Filter {
    /// The indices of `record`'s changes to show, or `None` if the
    /// transaction does not match.
    fn matches(&self, record: &TxRecord) -> Option<Vec<usize>> {
        if !self
            .meta
            .iter()
            .all(|(k, v)| record.meta.get(k).is_some_and(|have| have == v))
        {
            return None;
        }
        let shown: Vec<usize> = record
            .changes
            .iter()
            .enumerate()
            .filter(|(_, c)| self.change_matches(c))
            .map(|(i, _)| i)
            .collect();
        // A transaction with no changes left after filtering is not shown,
        // unless no filter on changes was given (a purge-only transaction).
        let filtered = !self.tables.is_empty() || !self.keys.is_empty();
        (!filtered || !shown.is_empty()).then_some(shown)
    }

    fn change_matches(&self, change: &Change) -> bool {
        let (table, key) = match system_change(change) {
            Some(SystemChange::Erase { table, key }) => (Some(table), key),
            Some(SystemChange::Purge { .. }) => (None, None),
            None => (Some(change.table.clone()), Some(change.key.clone())),
        };
        let table_ok = self.tables.is_empty() || table.is_some_and(|t| self.tables.contains(&t));
        let key_ok = self.keys.is_empty() || key.is_some_and(|k| self.keys.contains(&k));
        table_ok && key_ok
    }
}

/// How `log` shows transactions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Full,
    OneLine,
    Stat,
}

/// Writes transactions in the chosen shape and format, one at a time.
struct LogPrinter<'a> {
    ctx: &'a Ctx,
    shape: Shape,
    /// Width of the widest txid, for `--oneline` alignment.
    txid_width: usize,
    csv_header_written: bool,
}

pub fn log(ctx: &Ctx, out: &mut dyn Write, args: &LogArgs) -> Result<()> {
    let filter = Filter {
        tables: args.tables.clone(),
        keys: args
            .keys
            .iter()
            .map(|k| ctx.key(k))
            .collect::<Result<_>>()?,
        meta: args.meta.clone(),
    };
    let db = ctx.open(Need::Read)?;
    let schemas = Schemas::new(&db);
    let latest = db.latest_txid();
    // From the oldest transaction history still has.
    let oldest = db.stats().horizon.0.max(1);
    let future = |txid: u64| Error::FutureTxid {
        requested: TxId(txid),
        latest,
    };
    let first = match &args.since {
        None => oldest,
        Some(TxidOrTime::Txid(txid)) if *txid > latest.0 => return Err(future(*txid).into()),
        Some(TxidOrTime::Txid(txid)) => (txid + 1).max(oldest),
        Some(TxidOrTime::Time(text)) => {
            let time = ctx.time_arg(text)?;
            let before = Timestamp::from_micros(time.as_micros().saturating_sub(1));
            let last_before = if time.as_micros() == 0 {
                0
            } else {
                txid_at(&db, before)?.0
            };
            (last_before + 1).max(oldest)
        }
    };
    let last = match &args.until {
        None => latest.0,
        Some(TxidOrTime::Txid(txid)) if *txid > latest.0 => return Err(future(*txid).into()),
        Some(TxidOrTime::Txid(txid)) => *txid,
        Some(TxidOrTime::Time(text)) => txid_at(&db, ctx.time_arg(text)?)?.0,
    };
    let shape = if args.oneline {
        Shape::OneLine
    } else if args.stat {
        Shape::Stat
    } else {
        Shape::Full
    };
    let mut printer = LogPrinter {
        ctx,
        shape,
        txid_width: latest.0.to_string().len(),
        csv_header_written: false,
    };
    let limit = args
        .limit
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let oldest_first = args.reverse || args.follow;
    if oldest_first && args.limit.is_none() {
        // Stream: nothing to hold in memory.
        if first <= last {
            for record in db.log(TxId(first)..=TxId(last))? {
                let record = schemas.record(record?);
                if let Some(shown) = filter.matches(&record) {
                    printer.print(out, &record, &shown)?;
                }
            }
        }
    } else {
        // Newest first, up to the limit; with --reverse or --follow, those
        // are then shown oldest first (as `git log --reverse -n N`).
        let mut picked = Vec::new();
        let mut n_picked = 0;
        let mut txid = last;
        while txid >= first && n_picked < limit {
            let record = schemas.record(db.transaction(TxId(txid))?);
            if let Some(shown) = filter.matches(&record) {
                n_picked += 1;
                if oldest_first {
                    picked.push((record, shown));
                } else {
                    printer.print(out, &record, &shown)?;
                }
            }
            txid -= 1;
        }
        if oldest_first {
            for (record, shown) in picked.iter().rev() {
                printer.print(out, record, shown)?;
            }
        }
    }
    out.flush()?;
    if !args.follow {
        return Ok(());
    }
    // The read-only database follows the writer: its change feed refreshes
    // it (reading only what is new) while it waits.
    let mut feed = db.changes_since(TxId(last));
    loop {
        let Some(record) = feed.wait_next(FOLLOW_WAIT)? else {
            continue;
        };
        // A typed table created since has a schema the printer needs.
        let schemas = Schemas::new(&db);
        let mut next = Some(record);
        while let Some(record) = next {
            let record = schemas.record(record);
            if let Some(shown) = filter.matches(&record) {
                printer.print(out, &record, &shown)?;
            }
            next = feed.try_next()?;
        }
        out.flush()?;
    }
}

/// Per table of one transaction: keys touched, by op.
#[derive(Default)]
struct TableStat {
    insert: u64,
    update: u64,
    delete: u64,
}

impl TableStat {
    fn keys(&self) -> u64 {
        self.insert + self.update + self.delete
    }

    /// `2 insert, 1 update`: the ops that occur.
    fn ops(&self) -> String {
        let parts: Vec<String> = [
            ("insert", self.insert),
            ("update", self.update),
            ("delete", self.delete),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(op, n)| format!("{n} {op}"))
        .collect();
        parts.join(", ")
    }
}

/// The tables a transaction's shown changes touched, by name; purge and
/// erase records apart, as text.
fn stats_of(record: &TxRecord, shown: &[usize]) -> (BTreeMap<String, TableStat>, Vec<String>) {
    let mut tables: BTreeMap<String, TableStat> = BTreeMap::new();
    let mut system = Vec::new();
    for change in shown.iter().filter_map(|&i| record.changes.get(i)) {
        match system_change(change) {
            Some(SystemChange::Purge { before }) => {
                system.push(format!("purge history before txid {before}"));
            }
            Some(SystemChange::Erase { table, key }) => {
                let key = key.map_or("(key removed by compaction)".into(), |k| show_key(&k));
                system.push(format!("erase {table} {key}"));
            }
            None => {
                let stat = tables.entry(change.table.clone()).or_default();
                match change.op {
                    Op::Insert => stat.insert += 1,
                    Op::Update => stat.update += 1,
                    Op::Delete => stat.delete += 1,
                }
            }
        }
    }
    (tables, system)
}

impl LogPrinter<'_> {
    fn print(&mut self, out: &mut dyn Write, record: &TxRecord, shown: &[usize]) -> Result<()> {
        let ctx = self.ctx;
        if ctx.json {
            return line(out, self.json(record, shown).compact());
        }
        if ctx.csv {
            return self.csv(out, record, shown);
        }
        let hidden = record.changes.len() - shown.len();
        match self.shape {
            Shape::Full => {
                let subset: Vec<Change> = shown
                    .iter()
                    .filter_map(|&i| record.changes.get(i).cloned())
                    .collect();
                let view = TxRecord {
                    changes: subset,
                    ..record.clone()
                };
                write!(out, "{}", tx_text(ctx, &view, None))?;
                if hidden > 0 {
                    line(out, format!("  ({hidden} other changes not shown)"))?;
                }
                Ok(())
            }
            Shape::OneLine => {
                let (tables, system) = stats_of(record, shown);
                let mut summary: Vec<String> = system;
                if let [only] = shown {
                    if let Some(c) = record
                        .changes
                        .get(*only)
                        .filter(|c| system_change(c).is_none())
                    {
                        let op = c.op.to_string();
                        let op = ctx.paint(Style::of_op(&op).unwrap_or(Style::Header), &op);
                        summary.push(format!("{op} {} {}", c.table, show_key(&c.key)));
                    }
                } else {
                    for (name, stat) in &tables {
                        summary.push(format!("{name}: {}", stat.ops()));
                    }
                }
                if hidden > 0 {
                    summary.push(format!("(+{hidden} not shown)"));
                }
                let txid = format!("{:>width$}", record.txid.0, width = self.txid_width);
                let mut text = format!(
                    "{}  {}  {}",
                    ctx.paint(Style::Txid, &txid),
                    ctx.paint(Style::Time, &ctx.show_time(record.commit_time)),
                    summary.join("; ")
                );
                if !record.meta.is_empty() {
                    text.push_str("  ");
                    text.push_str(&show_meta(&record.meta));
                }
                line(out, text)
            }
            Shape::Stat => {
                line(out, tx_header(ctx, record))?;
                let (tables, system) = stats_of(record, shown);
                let mut table = Table::plain(2);
                let n_keys: u64 = tables.values().map(TableStat::keys).sum();
                for (name, stat) in &tables {
                    let keys = stat.keys();
                    let noun = if keys == 1 { "key" } else { "keys" };
                    table.row(vec![name.clone(), format!("{keys} {noun}"), stat.ops()]);
                }
                for text in system {
                    table.row(vec![text]);
                }
                write!(out, "{}", table.render_with(ctx.paint))?;
                let n_tables = tables.len();
                line(
                    out,
                    format!(
                        "  {n_tables} {}, {n_keys} {} changed{}",
                        if n_tables == 1 { "table" } else { "tables" },
                        if n_keys == 1 { "key" } else { "keys" },
                        if hidden > 0 {
                            format!(" ({hidden} other changes not shown)")
                        } else {
                            String::new()
                        }
                    ),
                )
            }
        }
    }

    fn json(&self, record: &TxRecord, shown: &[usize]) -> J {
        let head = J::obj()
            .with("txid", J::Num(record.txid.0))
            .with("time", time_json(record.commit_time))
            .with("meta", meta_json(&record.meta))
            .with("n_changes", J::Num(record.changes.len() as u64));
        match self.shape {
            Shape::Full => {
                let changes = shown
                    .iter()
                    .filter_map(|&i| record.changes.get(i))
                    .map(change_json)
                    .collect();
                head.with("changes", J::Arr(changes))
            }
            Shape::OneLine => head,
            Shape::Stat => {
                let (tables, system) = stats_of(record, shown);
                let tables = tables
                    .into_iter()
                    .map(|(name, stat)| {
                        let doc = J::obj()
                            .with("keys", J::Num(stat.keys()))
                            .with("insert", J::Num(stat.insert))
                            .with("update", J::Num(stat.update))
                            .with("delete", J::Num(stat.delete));
                        (name, doc)
                    })
                    .collect();
                head.with("tables", J::Obj(tables))
                    .with("system", J::Arr(system.into_iter().map(J::Str).collect()))
            }
        }
    }

    fn csv(&mut self, out: &mut dyn Write, record: &TxRecord, shown: &[usize]) -> Result<()> {
        let ctx = self.ctx;
        let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(out);
        if !self.csv_header_written {
            let header: &[&str] = match self.shape {
                Shape::Full => &["TXID", "TIME", "META", "OP", "TABLE", "KEY", "VALUE"],
                Shape::OneLine => &["TXID", "TIME", "META", "CHANGES"],
                Shape::Stat => &[
                    "TXID", "TIME", "META", "TABLE", "KEYS", "INSERT", "UPDATE", "DELETE",
                ],
            };
            writer.write_record(header)?;
            self.csv_header_written = true;
        }
        let head = [
            record.txid.to_string(),
            ctx.show_time(record.commit_time),
            show_meta(&record.meta),
        ];
        let row = |rest: Vec<String>| head.iter().cloned().chain(rest).collect::<Vec<String>>();
        match self.shape {
            Shape::Full => {
                for change in shown.iter().filter_map(|&i| record.changes.get(i)) {
                    let cells = match system_change(change) {
                        Some(SystemChange::Purge { before }) => {
                            vec![
                                "purge".into(),
                                String::new(),
                                String::new(),
                                before.to_string(),
                            ]
                        }
                        Some(SystemChange::Erase { table, key }) => vec![
                            "erase".into(),
                            table,
                            key.map(|k| show_key(&k)).unwrap_or_default(),
                            String::new(),
                        ],
                        None => vec![
                            change.op.to_string(),
                            change.table.clone(),
                            show_key(&change.key),
                            change
                                .value
                                .as_deref()
                                .map(show_raw_value)
                                .unwrap_or_default(),
                        ],
                    };
                    writer.write_record(row(cells))?;
                }
            }
            Shape::OneLine => writer.write_record(row(vec![record.changes.len().to_string()]))?,
            Shape::Stat => {
                let (tables, _) = stats_of(record, shown);
                for (name, stat) in tables {
                    writer.write_record(row(vec![
                        name,
                        stat.keys().to_string(),
                        stat.insert.to_string(),
                        stat.update.to_string(),
                        stat.delete.to_string(),
                    ]))?;
                }
            }
        }
        writer.flush()?;
        Ok(())
    }
}

pub fn tx(ctx: &Ctx, out: &mut dyn Write, txid: u64) -> Result<()> {
    let db = ctx.open(Need::Read)?;
    let schemas = Schemas::new(&db);
    let raw = crate::typed::with_maintenance(db.transaction(TxId(txid))?);
    // The value of each key before this transaction, for field-level changes.
    let before = db.as_of(TxId(txid - 1))?;
    let mut changes = Vec::with_capacity(raw.changes.len());
    for change in &raw.changes {
        changes.push(match change.op {
            Op::Update => {
                let old = before.get(&change.table, &change.key)?;
                let old = old.map(|v| schemas.value_text(&change.table, &v));
                let new = change
                    .value
                    .as_deref()
                    .map(|v| schemas.value_text(&change.table, v));
                field_changes(old.as_deref(), new.as_deref())
            }
            Op::Insert | Op::Delete => None,
        });
    }
    let record = schemas.record(raw);
    if ctx.json {
        return line(out, tx_json(&record, &changes).pretty());
    }
    if ctx.csv {
        let mut table = Table::new(&["OP", "TABLE", "KEY", "VALUE"]);
        for (c, changes) in record.changes.iter().zip(&changes) {
            table.row(match system_change(c) {
                Some(SystemChange::Purge { before }) => {
                    vec![
                        "purge".into(),
                        String::new(),
                        String::new(),
                        before.to_string(),
                    ]
                }
                Some(SystemChange::Erase { table, key }) => vec![
                    "erase".into(),
                    table,
                    key.map(|k| show_key(&k)).unwrap_or_default(),
                    String::new(),
                ],
                None => vec![
                    c.op.to_string(),
                    c.table.clone(),
                    show_key(&c.key),
                    c.value.as_deref().map(show_raw_value).unwrap_or_default(),
                ],
            });
            for change in show_field_changes(changes.as_deref().unwrap_or_default()) {
                table.note(change);
            }
        }
        return table.write_csv(out);
    }
    write!(out, "{}", tx_text(ctx, &record, Some(&changes)))?;
    Ok(())
}

type FieldChanges = Option<Vec<crate::render::FieldChange>>;

/// One change in JSON; purge and erase records by what they did.
fn change_json(c: &Change) -> J {
    match system_change(c) {
        Some(SystemChange::Purge { before }) => J::obj()
            .with("op", J::Str("purge".into()))
            .with("before", J::Num(before)),
        Some(SystemChange::Erase { table, key }) => {
            let doc = J::obj()
                .with("op", J::Str("erase".into()))
                .with("table", J::Str(table));
            match key {
                Some(key) => with_key(doc, &key),
                None => doc,
            }
        }
        None => with_key(J::obj().with("table", J::Str(c.table.clone())), &c.key)
            .with("op", op_json(c.op))
            .with_opt_bytes("value", c.value.as_deref()),
    }
}

fn tx_json(record: &TxRecord, field_changes: &[FieldChanges]) -> J {
    let changes = record
        .changes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let doc = change_json(c);
            match field_changes.get(i).and_then(|f| f.as_deref()) {
                Some(changes) if system_change(c).is_none() => {
                    doc.with("changeset", changeset_json(changes))
                }
                _ => doc,
            }
        })
        .collect();
    J::obj()
        .with("txid", J::Num(record.txid.0))
        .with("time", time_json(record.commit_time))
        .with("meta", meta_json(&record.meta))
        .with("changes", J::Arr(changes))
}

/// `tx 2  2025-…Z  user=alice`.
fn tx_header(ctx: &Ctx, record: &TxRecord) -> String {
    let mut text = format!(
        "{}  {}",
        ctx.paint(Style::Txid, &format!("tx {}", record.txid)),
        ctx.paint(Style::Time, &ctx.show_time(record.commit_time))
    );
    if !record.meta.is_empty() {
        text.push_str("  ");
        text.push_str(&show_meta(&record.meta));
    }
    text
}

/// The header line, then one indented line per change.
fn tx_text(ctx: &Ctx, record: &TxRecord, field_changes: Option<&[FieldChanges]>) -> String {
    let mut text = tx_header(ctx, record);
    text.push('\n');
    let mut table = Table::plain(2).op_column(0);
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
        if let Some(changes) = field_changes
            .and_then(|f| f.get(i))
            .and_then(|f| f.as_deref())
        {
            for change in show_field_changes(changes) {
                table.note(change);
            }
        }
    }
    text.push_str(&table.render_with(ctx.paint));
    text
}

pub fn diff(ctx: &Ctx, out: &mut dyn Write, table: &str, from: u64, to: u64) -> Result<()> {
    let db = ctx.open(Need::Read)?;
    require_table(&db, table)?;
    let (from, to) = (TxId(from), TxId(to));
    let entries = Schemas::new(&db).diff(table, db.diff(table, from, to)?);
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
    let mut text = Table::new(&["KEY", "OP", "BEFORE", "AFTER"]).op_column(1);
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
    text.print(ctx, out)
}

/// What going from `before` to `after` amounts to.
fn op_of(before: bool, after: bool) -> Op {
    match (before, after) {
        (false, _) => Op::Insert,
        (true, true) => Op::Update,
        (true, false) => Op::Delete,
    }
}
