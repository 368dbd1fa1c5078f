//! `timecask-replicate`: ship a timecask database to S3-compatible object
//! storage, restore it as of a txid, or follow it from the bucket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use timecask_replicate::{Follower, Remote, Replicator, ReplicatorConfig, S3Options, Status};

/// Replication of timecask databases to S3-compatible object storage.
///
/// Endpoint, region and credentials come from the flags, else from the
/// usual AWS_* variables (AWS_ENDPOINT_URL, AWS_REGION,
/// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP).
#[derive(Parser)]
#[command(name = "timecask-replicate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ship a database continuously to s3://bucket/prefix (until killed;
    /// safe to kill at any point and start again).
    Replicate {
        /// The database directory.
        #[arg(long)]
        db: PathBuf,
        /// s3://bucket/prefix
        #[arg(long)]
        to: String,
        /// Ship the durable tail at least this often (milliseconds).
        #[arg(long, default_value_t = 1000)]
        tail_interval_ms: u64,
        /// ... or as soon as this many durable bytes wait.
        #[arg(long, default_value_t = 1 << 20)]
        tail_bytes: u64,
        /// Ship what is durable now, once, and exit.
        #[arg(long)]
        once: bool,
        #[command(flatten)]
        s3: S3Flags,
    },
    /// Rebuild the database as of a txid into an empty directory.
    Restore {
        /// s3://bucket/prefix
        #[arg(long)]
        from: String,
        /// The txid to restore ("latest" for the newest the bucket holds).
        #[arg(long)]
        at: String,
        /// Where to write it (must not exist or be empty).
        dir: PathBuf,
        #[command(flatten)]
        s3: S3Flags,
    },
    /// Keep a local read-only copy following the bucket (until killed).
    Follow {
        /// s3://bucket/prefix
        #[arg(long)]
        from: String,
        /// The local copy's directory.
        dir: PathBuf,
        /// How often to look at the bucket (milliseconds).
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        #[command(flatten)]
        s3: S3Flags,
    },
}

#[derive(Args)]
struct S3Flags {
    /// S3 endpoint URL (else AWS_ENDPOINT_URL).
    #[arg(long)]
    endpoint: Option<String>,
    /// Region (else AWS_REGION).
    #[arg(long)]
    region: Option<String>,
    /// Allow http:// endpoints (else AWS_ALLOW_HTTP).
    #[arg(long)]
    allow_http: bool,
}

impl S3Flags {
    fn options(&self) -> S3Options {
        S3Options {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            allow_http: self.allow_http.then_some(true),
            ..S3Options::default()
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("timecask-replicate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> timecask_replicate::Result<()> {
    match cli.command {
        Command::Replicate {
            db,
            to,
            tail_interval_ms,
            tail_bytes,
            once,
            s3,
        } => {
            let remote = Remote::from_url(&to, &s3.options())?;
            let config = ReplicatorConfig {
                tail_interval: Duration::from_millis(tail_interval_ms),
                tail_bytes,
                ..ReplicatorConfig::default()
            };
            let mut replicator = Replicator::open(&db, remote, config)?;
            if once {
                let report = replicator.sync()?;
                replicator.release()?;
                println!(
                    "shipped {} objects ({} bytes); the bucket holds txids up to {}",
                    report.objects, report.bytes, report.shipped_txid
                );
                return Ok(());
            }
            eprintln!("replicating {} to {to} (Ctrl-C to stop)", db.display());
            let stop = AtomicBool::new(false);
            let status = Mutex::new(Status::default());
            replicator.run(&stop, &status)
        }
        Command::Restore { from, at, dir, s3 } => {
            let remote = Remote::from_url(&from, &s3.options())?;
            let txid = if at == "latest" {
                let ranges = timecask_replicate::restorable(&remote)?;
                ranges.last().map_or(0, |r| r.1)
            } else {
                at.parse::<u64>()
                    .map_err(|_| timecask_replicate::Error::InvalidUrl {
                        url: at.clone(),
                        reason: "--at takes a txid (a number) or `latest`".into(),
                    })?
            };
            let started = std::time::Instant::now();
            let report = timecask_replicate::restore(&remote, timecask::TxId(txid), &dir)?;
            println!(
                "restored {} as of txid {} ({} objects, {} bytes, {:.1} s)",
                dir.display(),
                report.txid,
                report.objects,
                report.bytes,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Follow {
            from,
            dir,
            interval_ms,
            s3,
        } => {
            let remote = Remote::from_url(&from, &s3.options())?;
            let mut follower = Follower::new(remote, &dir)?;
            let mut shown = None;
            follower.run(Duration::from_millis(interval_ms), |result| {
                match result {
                    Ok(txid) if shown != Some(txid) => {
                        println!("{} follows {from} at txid {txid}", dir.display());
                        shown = Some(txid);
                    }
                    Ok(_) => {}
                    Err(e) if e.is_transient() => eprintln!("timecask-replicate: {e} (retrying)"),
                    Err(e) => {
                        eprintln!("timecask-replicate: {e}");
                        std::process::exit(1);
                    }
                }
                true
            });
            Ok(())
        }
    }
}
