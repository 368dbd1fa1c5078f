//! Looking after a database: `verify`, `backup`, `stats`, and the
//! retention tools `purge`, `erase`, `compact`.

use std::io::Write;
use std::path::Path;

use anyhow::{Result, bail};
use indicatif::HumanBytes;

use timecask::{KeyBytes, TxId};

use crate::common::{
    Ctx, Need, TxidOrTime, bytes_on_disk, line, progress, require_table, segment_files, spinner,
    txid_at,
};
use crate::render::{J, show_key};
use crate::table::Table;
use crate::write::{Meta, begin};

pub fn verify(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let db = ctx.open(Need::Read)?;
    let bar = spinner(&format!("verifying {}", db.path().display()));
    let report = db.verify();
    bar.finish_and_clear();
    let report = report?;
    if ctx.json {
        let doc = J::obj()
            .with("ok", J::Raw("true".to_string()))
            .with("txid", J::Num(report.txid.0))
            .with("n_segments", J::Num(report.n_segments as u64))
            .with("n_frames", J::Num(report.n_frames))
            .with("n_versions", J::Num(report.n_versions))
            .with("n_bytes", J::Num(report.n_bytes));
        return line(out, doc.pretty());
    }
    line(
        out,
        format!(
            "ok: verified up to txid {}: {} segments, {} transactions, {} versions, {} read",
            report.txid,
            report.n_segments,
            report.n_frames,
            report.n_versions,
            HumanBytes(report.n_bytes)
        ),
    )
}

pub fn backup(ctx: &Ctx, out: &mut dyn Write, dest: &Path) -> Result<()> {
    // Checked here too so the message names the command's argument.
    let occupied = dest.exists()
        && (!dest.is_dir() || std::fs::read_dir(dest).is_ok_and(|mut d| d.next().is_some()));
    if occupied {
        bail!(
            "backup destination {} already exists and is not empty; give a new directory",
            dest.display()
        );
    }
    let db = ctx.open(Need::Read)?;
    let bar = spinner(&format!("backing up to {}", dest.display()));
    let txid = db.backup(dest);
    bar.finish_and_clear();
    let txid = txid?;
    let bytes = bytes_on_disk(dest)?;
    if ctx.json {
        let doc = J::obj()
            .with("txid", J::Num(txid.0))
            .with("path", J::Str(dest.display().to_string()))
            .with("bytes", J::Num(bytes));
        return line(out, doc.pretty());
    }
    line(
        out,
        format!(
            "backup as of txid {txid} written to {} ({})",
            dest.display(),
            HumanBytes(bytes)
        ),
    )
}

pub fn stats(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let db = ctx.open(Need::Read)?;
    let stats = db.stats();
    let view = db.snapshot();
    let mut n_keys = 0;
    for table in view.tables() {
        n_keys += view.count(&table)?;
    }
    let n_segments = segment_files(db.path())?.len() as u64;
    let bytes = bytes_on_disk(db.path())?;
    let fields: [(&str, &str, u64); 9] = [
        ("latest_txid", "latest txid", stats.latest_txid.0),
        ("horizon", "oldest readable txid", stats.horizon.0),
        ("n_tables", "tables", stats.n_tables as u64),
        ("n_keys", "live keys", n_keys),
        ("n_versions", "versions", stats.n_versions),
        ("n_segments", "segment files", n_segments),
        ("history_runs", "history runs", stats.history_runs as u64),
        ("bytes_on_disk", "bytes on disk", bytes),
        (
            "torn_tail_bytes",
            "torn tail ignored at open",
            stats.torn_tail_bytes,
        ),
    ];
    if ctx.json {
        let doc = J::Obj(
            fields
                .iter()
                .map(|(name, _, n)| (name.to_string(), J::Num(*n)))
                .collect(),
        );
        return line(out, doc.pretty());
    }
    let mut table = Table::plain(0);
    for (name, label, n) in fields {
        let shown = if name.contains("bytes") && n >= 1024 {
            format!("{n} ({})", HumanBytes(n))
        } else {
            n.to_string()
        };
        table.row(vec![label.to_string(), shown]);
    }
    table.print(ctx, out)
}

/// `purge --before TXID|TIME`: drops history superseded at or before TXID
/// (for a TIME: the last txid committed at or before it, whose state stays
/// readable).
pub fn purge(ctx: &Ctx, out: &mut dyn Write, before: &TxidOrTime, meta: &Meta) -> Result<()> {
    let db = ctx.open(Need::Existing)?;
    let before = match before {
        TxidOrTime::Txid(txid) => *txid,
        TxidOrTime::Time(text) => {
            let txid = txid_at(&db, ctx.time_arg(text)?)?;
            if txid.0 == 0 {
                bail!("no transaction was committed by {text}; nothing to purge");
            }
            txid.0
        }
    };
    let mut tx = begin(&db, meta)?;
    tx.purge_history(TxId(before))?;
    let txid = tx.commit()?;
    if ctx.json {
        let doc = J::obj()
            .with("txid", txid.map_or(J::Null, |t| J::Num(t.0)))
            .with("horizon", J::Num(db.stats().horizon.0));
        return line(out, doc.pretty());
    }
    match txid {
        Some(txid) => line(
            out,
            format!(
                "tx {txid}: history before txid {before} purged; run compact to return the disk space"
            ),
        ),
        None => line(
            out,
            format!(
                "unchanged: history is already purged up to txid {}",
                db.stats().horizon
            ),
        ),
    }
}

/// `erase TABLE KEY`: removes every version of one key.
pub fn erase(ctx: &Ctx, out: &mut dyn Write, table: &str, key: &str, meta: &Meta) -> Result<()> {
    let db = ctx.open(Need::Existing)?;
    require_table(&db, table)?;
    let key = crate::typed::Schemas::new(&db).key_arg(ctx, table, key)?;
    if db
        .snapshot()
        .history(table, &key, timecask::HistoryQuery::all().limit(1))?
        .is_empty()
    {
        bail!(
            "key {} has no versions in table {table:?}; nothing to erase",
            KeyBytes(key)
        );
    }
    let mut tx = begin(&db, meta)?;
    tx.erase(table, &key)?;
    let txid = tx.commit()?;
    if ctx.json {
        return line(
            out,
            J::obj()
                .with("txid", txid.map_or(J::Null, |t| J::Num(t.0)))
                .pretty(),
        );
    }
    let txid = txid.map_or("-".to_string(), |t| t.to_string());
    line(
        out,
        format!(
            "tx {txid}: every version of {table} {} erased; run compact to remove them from disk",
            show_key(&key)
        ),
    )
}

/// `compact`: moves the log into history runs and merges every run into
/// one (or, without runs, rewrites segments), dropping purged and erased
/// versions.
pub fn compact(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let db = ctx.open(Need::Existing)?;
    let bar = progress(0, "segments");
    bar.set_message(format!("compacting {}", db.path().display()));
    let report = db.compact_with_progress(|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let report = report?;
    if ctx.json {
        let doc = J::obj()
            .with("segments_scanned", J::Num(report.segments_scanned as u64))
            .with(
                "segments_rewritten",
                J::Num(report.segments_rewritten as u64),
            )
            .with("versions_dropped", J::Num(report.versions_dropped))
            .with("bytes_before", J::Num(report.bytes_before))
            .with("bytes_after", J::Num(report.bytes_after));
        return line(out, doc.pretty());
    }
    line(
        out,
        format!(
            "compacted: {} of {} segments rewritten, {} versions dropped, {} -> {}",
            report.segments_rewritten,
            report.segments_scanned,
            report.versions_dropped,
            HumanBytes(report.bytes_before),
            HumanBytes(report.bytes_after)
        ),
    )
}

/// `checkpoint`: writes the index checkpoint now.
pub fn checkpoint(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let db = ctx.open(Need::Existing)?;
    let bar = spinner(&format!("checkpointing {}", db.path().display()));
    let report = db.checkpoint();
    bar.finish_and_clear();
    let report = report?;
    if ctx.json {
        let doc = J::obj()
            .with("txid", J::Num(report.txid.0))
            .with("bytes", J::Num(report.bytes));
        return line(out, doc.pretty());
    }
    line(
        out,
        format!(
            "checkpoint written: covers up to txid {} ({})",
            report.txid,
            HumanBytes(report.bytes)
        ),
    )
}
