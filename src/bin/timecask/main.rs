//! `timecask`: inspect, query and edit a timecask database from a shell.
//!
//! One module per group of subcommands: `inspect` (tables, get, scan,
//! history, export), `changes` (log, tx, diff), `write` (put, delete,
//! revert, undo, import), `admin` (verify, backup, stats, purge, erase,
//! compact, checkpoint), `docs` (completions, man) and `demo`.
//! Output goes through `render`, `table` and `style` (colour), to stdout
//! or a `pager`; `time` reads and shows times; `common` opens the database.
//!
//! Exit codes: 0 success, 1 an error (one `error: ...` line on stderr),
//! 2 a usage error (from clap).

mod admin;
mod changes;
mod common;
mod demo;
mod docs;
mod external;
mod inspect;
mod pager;
mod render;
mod style;
mod table;
mod time;
mod typed;
mod write;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

use crate::changes::LogArgs;
use crate::common::{AtArgs, Ctx, TxidOrTime, parse_meta, parse_txid_or_time};
use crate::inspect::{HistoryArgs, ScanArgs};
use crate::pager::{Out, Pager};
use crate::style::{ColorChoice, Paint};

/// Inspect, query and edit a timecask database: every version kept.
///
/// Read commands (tables, get, scan, history, export, log, tx, diff,
/// verify, backup, stats) open the database read-only, so they work while
/// an application holds it open; they show the commits made before they
/// started. Write commands need the database to themselves.
#[derive(Parser)]
#[command(
    name = "timecask",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(after_help = "Examples:
  timecask demo
  timecask --db my-db put user 1 '{\"name\":\"Alice\"}' --meta user=admin
  timecask --db my-db get user 1 --as-of 1
  timecask --db my-db history user 1
  timecask --db my-db log --since yesterday --table user --stat
  timecask --db my-db get user 1 --at \"2 days ago\"
  timecask --db my-db export user > user.jsonl")]
struct Cli {
    /// Database directory [env: TIMECASK_DB]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "TIMECASK_DB",
        value_name = "PATH",
        hide_env = true
    )]
    db: Option<PathBuf>,
    /// Print JSON: one document, or JSON lines for scan, export and log
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        conflicts_with = "csv"
    )]
    json: bool,
    /// Print CSV (tables, scan, history, log, tx, diff, stats)
    #[arg(long, global = true, help_heading = "Global options")]
    csv: bool,
    /// Show times in UTC, and read dates and times without an offset as UTC
    /// (default: the local time zone)
    #[arg(long, global = true, help_heading = "Global options")]
    utc: bool,
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always, never
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "WHEN",
        default_value = "auto"
    )]
    color: ColorChoice,
    /// Do not page long output through $PAGER (less) on a terminal
    #[arg(long, global = true, help_heading = "Global options")]
    no_pager: bool,
    /// Keys (and --prefix) on the command line are hex, e.g. 00ff
    #[arg(long, global = true, help_heading = "Global options")]
    key_hex: bool,
    /// Write commands: wait up to SECONDS for another process to close the
    /// database (reads open it read-only beside a writer and never wait)
    #[arg(long, global = true,
        help_heading = "Global options", value_name = "SECONDS", default_value = "0", value_parser = parse_seconds)]
    lock_timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the quick-start scenario (in DIR, or a temporary directory)
    Demo {
        /// An empty or new directory to keep the database in
        dir: Option<PathBuf>,
    },
    /// List tables with their number of live keys
    Tables {
        #[command(flatten)]
        at: AtArgs,
    },
    /// Print the value of KEY (exit code 1 if it has none)
    Get {
        /// Table name
        table: String,
        /// Key: text, or hex with --key-hex
        key: String,
        #[command(flatten)]
        at: AtArgs,
    },
    /// List key-value pairs in key order
    Scan {
        /// Table name
        table: String,
        /// Only keys starting with P
        #[arg(long, value_name = "P")]
        prefix: Option<String>,
        #[command(flatten)]
        at: AtArgs,
        /// Descending key order
        #[arg(long)]
        reverse: bool,
        /// At most N pairs
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
    },
    /// Every version of KEY: txid, end, op, time, metadata, value and what changed
    History {
        /// Table name
        table: String,
        /// Key: text, or hex with --key-hex
        key: String,
        /// Newest version first
        #[arg(long)]
        newest_first: bool,
        /// At most N versions
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
    },
    /// Transactions, newest first: filter by time, table, key, metadata
    Log(LogArgs),
    /// Time, metadata and every change of one transaction
    Tx {
        /// Transaction id
        txid: u64,
    },
    /// Keys of TABLE whose value differs between txids FROM and TO
    Diff {
        /// Table name
        table: String,
        /// Txid of the state to compare from (0: the empty start)
        from: u64,
        /// Txid of the state to compare to
        to: u64,
    },
    /// Write VALUE (JSON or text) under KEY
    Put {
        /// Table name
        table: String,
        /// Key: text, or hex with --key-hex
        key: String,
        /// The value, stored byte for byte as given; - reads it from stdin (less
        /// one trailing newline)
        value: String,
        /// VALUE is hex (binary values)
        #[arg(long, conflicts_with = "require_json")]
        value_hex: bool,
        /// Refuse a VALUE that is not valid JSON
        #[arg(long)]
        require_json: bool,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Delete KEY (exit code 1 if it has no value)
    Delete {
        /// Table name
        table: String,
        /// Key: text, or hex with --key-hex
        key: String,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Write KEY's value as of TXID back as a new version
    Revert {
        /// Table name
        table: String,
        /// Key: text, or hex with --key-hex
        key: String,
        /// The txid whose value to restore (absent then: the key is deleted)
        txid: u64,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Write the inverse of transaction TXID as a new transaction
    Undo {
        /// The transaction to undo
        txid: u64,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Load JSON lines {"key": ..., "value": ...} from FILE (- for stdin) in one transaction
    Import {
        /// Table name
        table: String,
        /// JSON-lines file, or - for stdin
        file: PathBuf,
        /// Refuse a line whose value would not be stored as JSON (a JSON
        /// string is stored as its text, value_hex as bytes)
        #[arg(long)]
        require_json: bool,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Print TABLE as JSON lines {"key": ..., "value": ...}, the format import reads
    Export {
        /// Table name
        table: String,
        #[command(flatten)]
        at: AtArgs,
    },
    /// Check every checksum and invariant; names the file and offset of damage
    Verify,
    /// Copy the database, consistent at the latest txid, into the new directory DEST
    Backup {
        /// A directory that does not exist yet (or is empty)
        dest: PathBuf,
    },
    /// Counts, sizes, the latest txid and the oldest readable one
    Stats,
    /// Drop history superseded at or before txid BEFORE (as-of reads below it then fail)
    Purge {
        /// The new oldest readable txid, or a TIME whose state stays
        /// readable (RFC 3339, a date, "30 days ago")
        #[arg(long, value_name = "TXID|TIME", value_parser = parse_txid_or_time)]
        before: TxidOrTime,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Remove every version of KEY (e.g. a privacy request); compact removes them from disk
    Erase {
        /// Table name
        table: String,
        /// Key: text, or hex with --key-hex
        key: String,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Move the log into history runs and merge every run into one, dropping purged and erased versions and returning disk space
    Compact,
    /// Write an index checkpoint now, so the next open replays less of the log
    Checkpoint,
    /// Print a shell completion script, e.g. `timecask completions bash > /etc/bash_completion.d/timecask`
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into DIR
    Man {
        /// Write timecask.1 and timecask-COMMAND.1 files into DIR
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

impl Command {
    /// Whether the output can be long and is read by a person: then it goes
    /// through the pager on a terminal.
    fn pages(&self) -> bool {
        match self {
            Command::Tables { .. }
            | Command::Scan { .. }
            | Command::History { .. }
            | Command::Tx { .. }
            | Command::Diff { .. }
            | Command::Export { .. } => true,
            Command::Log(args) => !args.follows(),
            _ => false,
        }
    }

    /// Whether `--csv` means something for this command.
    fn has_csv(&self) -> bool {
        matches!(
            self,
            Command::Tables { .. }
                | Command::Scan { .. }
                | Command::History { .. }
                | Command::Log(_)
                | Command::Tx { .. }
                | Command::Diff { .. }
                | Command::Stats
        )
    }
}

#[derive(clap::Args)]
struct MetaArgs {
    /// Transaction metadata, e.g. --meta user=alice --meta reason=typo
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_meta)]
    pairs: Vec<(String, String)>,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{text:?} is not a number of seconds"))
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("error: internal error, please report it: {message}");
    }));
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if let Some(code) = external::dispatch(&args) {
        return code;
    }
    let cli = Cli::parse();
    if cli.csv && !cli.command.has_csv() {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--csv is for tables, scan, history, log, tx, diff and stats",
            )
            .exit();
    }
    // Colour is decided before a pager takes stdout over.
    let paint = Paint::new(cli.color, cli.json || cli.csv);
    let pager = if cli.command.pages() && !cli.no_pager {
        Pager::start()
    } else {
        None
    };
    let (mut out, pager) = match pager {
        Some((pager, stdin)) => (Out::Pager(std::io::BufWriter::new(stdin)), Some(pager)),
        None => (
            Out::Stdout(std::io::BufWriter::new(std::io::stdout().lock())),
            None,
        ),
    };
    let result = run(cli, paint, &mut out).and_then(|()| Ok(out.flush()?));
    // Closing its input lets the pager reach the end; then wait for the user.
    drop(out);
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    };
    if let Some(pager) = pager {
        pager.finish();
    }
    code
}

fn run(cli: Cli, paint: Paint, out: &mut dyn Write) -> Result<()> {
    match cli.command {
        Command::Demo { dir } => return demo::run(out, dir),
        Command::Completions { shell } => return docs::completions(out, shell, Cli::command()),
        Command::Man { dir } => return docs::man(out, dir.as_deref(), Cli::command()),
        _ => {}
    }
    let Some(db) = cli.db else {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "no database given: pass --db PATH or set TIMECASK_DB",
            )
            .exit();
    };
    let ctx = Ctx {
        db,
        json: cli.json,
        csv: cli.csv,
        key_hex: cli.key_hex,
        lock_timeout: cli.lock_timeout,
        tz: time::zone(cli.utc),
        now: jiff::Timestamp::now(),
        paint,
    };
    let limit = |n: Option<u64>| n.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    match cli.command {
        Command::Demo { .. } | Command::Completions { .. } | Command::Man { .. } => Ok(()),
        Command::Tables { at } => inspect::tables(&ctx, out, &at),
        Command::Get { table, key, at } => inspect::get(&ctx, out, &table, &key, &at),
        Command::Scan {
            table,
            prefix,
            at,
            reverse,
            limit: n,
        } => inspect::scan(
            &ctx,
            out,
            ScanArgs {
                table: &table,
                prefix: prefix.as_deref(),
                at: &at,
                reverse,
                limit: limit(n),
            },
        ),
        Command::History {
            table,
            key,
            newest_first,
            limit: n,
        } => inspect::history(
            &ctx,
            out,
            HistoryArgs {
                table: &table,
                key: &key,
                newest_first,
                limit: limit(n),
            },
        ),
        Command::Export { table, at } => inspect::export(&ctx, out, &table, &at),
        Command::Log(args) => changes::log(&ctx, out, &args),
        Command::Tx { txid } => changes::tx(&ctx, out, txid),
        Command::Diff { table, from, to } => changes::diff(&ctx, out, &table, from, to),
        Command::Put {
            table,
            key,
            value,
            value_hex,
            require_json,
            meta,
        } => {
            let bytes = write::value_arg(&value, value_hex, require_json)?;
            let value = write::PutValue {
                bytes,
                hex: value_hex,
            };
            write::put(&ctx, out, &table, &key, value, &meta.pairs)
        }
        Command::Delete { table, key, meta } => write::delete(&ctx, out, &table, &key, &meta.pairs),
        Command::Revert {
            table,
            key,
            txid,
            meta,
        } => write::revert(&ctx, out, &table, &key, txid, &meta.pairs),
        Command::Undo { txid, meta } => write::undo(&ctx, out, txid, &meta.pairs),
        Command::Import {
            table,
            file,
            require_json,
            meta,
        } => write::import(&ctx, out, &table, &file, require_json, &meta.pairs),
        Command::Verify => admin::verify(&ctx, out),
        Command::Backup { dest } => admin::backup(&ctx, out, &dest),
        Command::Stats => admin::stats(&ctx, out),
        Command::Purge { before, meta } => admin::purge(&ctx, out, &before, &meta.pairs),
        Command::Erase { table, key, meta } => admin::erase(&ctx, out, &table, &key, &meta.pairs),
        Command::Compact => admin::compact(&ctx, out),
        Command::Checkpoint => admin::checkpoint(&ctx, out),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, skipping a cause whose text the
/// line already carries (timecask's errors include their source).
fn one_line(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text.replace('\n', " ")
}
