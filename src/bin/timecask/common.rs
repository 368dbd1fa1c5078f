//! What every subcommand shares: the global options, opening the database,
//! parsing keys and metadata, picking a view, progress bars and output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use timecask::{Config, Db, Error, Snapshot, Timestamp, TxId};

use crate::render::parse_hex;
use crate::style::{Paint, Style};

/// Global options, resolved.
pub struct Ctx {
    pub db: PathBuf,
    /// `--json`: JSON documents or JSON lines.
    pub json: bool,
    /// `--csv`: one CSV table (for the commands that print tables).
    pub csv: bool,
    pub key_hex: bool,
    pub lock_timeout: Duration,
    /// The zone times are read and shown in (`--utc`, else the system's).
    pub tz: jiff::tz::TimeZone,
    /// When the command started: the anchor of `yesterday`, `2 days ago`.
    pub now: jiff::Timestamp,
    /// Colour for human output (a terminal, no `NO_COLOR`, or `--color`).
    pub paint: Paint,
}

/// How a subcommand needs the database.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Reads only: it must exist, and is opened read-only beside any writer
    /// that holds it (no lock, no file touched; the log as of the open).
    Read,
    /// It must exist already (writes that refer to history).
    Existing,
    /// Create an empty database if there is none (`put`, `import`).
    CreateIfMissing,
}

/// `--as-of TXID` or `--at TIME`: which state a read looks at.
#[derive(Args, Clone, Debug, Default)]
pub struct AtArgs {
    /// Read the state right after transaction TXID (0: before the first commit)
    #[arg(long, value_name = "TXID", conflicts_with = "at")]
    pub as_of: Option<u64>,
    /// Read the state at wall-clock TIME: RFC 3339, a date (local time, UTC
    /// with --utc), yesterday, "2 days ago"
    #[arg(long, value_name = "TIME", value_parser = check_time)]
    pub at: Option<String>,
}

/// Checks a time on the command line (a usage error if it is not one); it
/// is read for real by [`Ctx::time_arg`] once `--utc` is known.
pub fn check_time(text: &str) -> Result<String, String> {
    let tz = jiff::tz::TimeZone::UTC;
    crate::time::parse_time(text, &tz, jiff::Timestamp::now()).map(|_| text.to_string())
}

/// A txid, or a time (anything that is not a plain number).
#[derive(Clone, Debug)]
pub enum TxidOrTime {
    Txid(u64),
    Time(String),
}

/// Parses `--since`/`--until`/`--before`: digits are a txid, anything else a time.
pub fn parse_txid_or_time(text: &str) -> Result<TxidOrTime, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(TxidOrTime::Txid)
            .map_err(|_| format!("{text:?} is too large for a txid"));
    }
    check_time(text).map(TxidOrTime::Time)
}

/// Parses `k=v` for `--meta`.
pub fn parse_meta(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!(
            "{text:?} is not KEY=VALUE (e.g. --meta user=alice)"
        )),
    }
}

impl Ctx {
    /// Reads a time argument checked by [`check_time`], in `--utc` or local time.
    pub fn time_arg(&self, text: &str) -> Result<Timestamp> {
        crate::time::parse_time(text, &self.tz, self.now).map_err(|e| anyhow!(e))
    }

    /// A commit time for people, in the zone asked for.
    pub fn show_time(&self, time: Timestamp) -> String {
        crate::time::format_time(time, &self.tz)
    }

    /// `text` in `style` when colour is on.
    pub fn paint(&self, style: Style, text: &str) -> String {
        self.paint.paint(style, text)
    }

    /// A key as given on the command line: text, or hex with `--key-hex`.
    pub fn key(&self, text: &str) -> Result<Vec<u8>> {
        if self.key_hex {
            parse_hex(text).map_err(|e| anyhow!("{e}; --key-hex wants keys like 00ff or 0x00ff"))
        } else {
            Ok(text.as_bytes().to_vec())
        }
    }

    /// Opens the database behind a spinner on stderr: read-only for
    /// [`Need::Read`] (works while an application holds it), otherwise for
    /// writing, waiting up to `--lock-timeout` for another process to let
    /// go of it.
    pub fn open(&self, need: Need) -> Result<Db> {
        if need != Need::CreateIfMissing {
            check_exists(&self.db)?;
        }
        if need == Need::Read {
            let spinner = spinner(&format!("opening {} read-only", self.db.display()));
            let result = Db::open_read_only(&self.db);
            spinner.finish_and_clear();
            return Ok(result?);
        }
        let config = Config {
            create_if_missing: need == Need::CreateIfMissing,
            ..Config::default()
        };
        let spinner = spinner(&format!("opening {}", self.db.display()));
        let deadline = Instant::now() + self.lock_timeout;
        let result = loop {
            match Db::open_with(&self.db, config.clone()) {
                Err(Error::Locked { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other,
            }
        };
        spinner.finish_and_clear();
        result.map_err(|e| match e {
            Error::Locked { path } => anyhow::Error::new(InUse(path)),
            other => anyhow::Error::new(other),
        })
    }
}

/// The database is held open by another process.
#[derive(Debug)]
pub struct InUse(pub PathBuf);

impl std::fmt::Display for InUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "database {} is in use by another process; close it there, \
             or wait for it with --lock-timeout SECONDS",
            self.0.display()
        )
    }
}

impl std::error::Error for InUse {}

/// Refuses a path that holds no database, before `Db::open` would make one.
fn check_exists(dir: &Path) -> Result<()> {
    let hint = "check --db (or TIMECASK_DB); put and import create a database";
    if !dir.exists() {
        bail!("no database at {}; {hint}", dir.display());
    }
    if !dir.is_dir() {
        bail!("{} is not a directory; {hint}", dir.display());
    }
    if segment_files(dir)?.is_empty() {
        bail!(
            "no database at {} (no .tcseg segment files there); {hint}",
            dir.display()
        );
    }
    Ok(())
}

/// The segment files of a database directory with their sizes, by name.
pub fn segment_files(dir: &Path) -> Result<Vec<(PathBuf, std::fs::Metadata)>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "tcseg") {
            let meta = entry
                .metadata()
                .with_context(|| format!("cannot read {}", path.display()))?;
            files.push((path, meta));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// Bytes of all files under `dir`.
pub fn bytes_on_disk(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let meta = entry
            .metadata()
            .with_context(|| format!("cannot read {}", entry.path().display()))?;
        total += if meta.is_dir() {
            bytes_on_disk(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// The view a read looks at: the latest state, `--as-of` or `--at`.
pub fn view(ctx: &Ctx, db: &Db, at: &AtArgs) -> Result<Snapshot> {
    Ok(match (at.as_of, &at.at) {
        (Some(txid), _) => db.as_of(TxId(txid))?,
        (None, Some(time)) => db.as_of_time(ctx.time_arg(time)?)?,
        (None, None) => db.snapshot(),
    })
}

/// The last txid committed at or before `time` (0: none), clamped up to the
/// oldest transaction history still has.
pub fn txid_at(db: &Db, time: Timestamp) -> Result<TxId> {
    match db.as_of_time(time) {
        Ok(view) => Ok(view.txid()),
        Err(Error::HistoryPurged { .. }) => Ok(TxId(db.stats().horizon.0.saturating_sub(1))),
        Err(e) => Err(e.into()),
    }
}

/// Refuses a table the database has never had (at any txid up to now).
/// A table created after the view's txid is fine: it was empty then.
pub fn require_table(db: &Db, table: &str) -> Result<()> {
    let tables = db.snapshot().tables();
    if tables.iter().any(|t| t == table) {
        return Ok(());
    }
    let known = if tables.is_empty() {
        "the database has no tables yet".to_string()
    } else {
        format!("tables: {}", tables.join(", "))
    };
    bail!("no table {table:?} in {} ({known})", db.path().display())
}

/// A spinner on stderr; hidden when stderr is not a terminal.
pub fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message.to_string());
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(100));
    }
    bar
}

/// A progress bar on stderr counting `unit`s; hidden when stderr is not a
/// terminal.
pub fn progress(len: u64, unit: &str) -> ProgressBar {
    let template = format!("{{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{eta}})");
    let style = ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(len).with_style(style)
}

/// A progress bar on stderr counting bytes.
pub fn byte_progress(len: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} ({eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    ProgressBar::new(len).with_style(style)
}

/// Writes one line to stdout (broken pipes end the program quietly, see main).
pub fn line(out: &mut dyn Write, text: impl AsRef<str>) -> Result<()> {
    out.write_all(text.as_ref().as_bytes())?;
    out.write_all(b"\n")?;
    Ok(())
}
