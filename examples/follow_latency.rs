//! Follower wake-up latency (issue 14): a writer in another process
//! commits; a read-only follower here waits on a change feed. For each
//! commit, the time from the writer's `commit()` returning (the commit is
//! durable) to the follower's `wait_next` returning it, from the same
//! machine's wall clock in both processes.
//!
//! Run with `cargo run --release --example follow_latency [N_COMMITS]`
//! (200 by default). The writer sleeps 3–12 ms between commits (a fixed
//! sequence), so commits land at every phase of the feed's polling.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use timecask::{Config, Db, TxId};

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The writer process: commits `n`, printing `txid micros` after each.
fn writer(dir: &str, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let config = Config {
        // Small segments, sealed in the background: the follower also
        // crosses rolls and manifest switches while it measures.
        segment_roll_bytes: 16 * 1024,
        seal_log_bytes: Some(64 * 1024),
        ..Config::default()
    };
    let db = Db::open_with(dir, config)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..n {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(3_000 + seed % 9_000));
        let mut tx = db.begin();
        tx.put("bench", i.to_be_bytes(), vec![b'v'; 1000])?;
        let txid = tx.commit()?.ok_or("nothing committed")?;
        writeln!(out, "{} {}", txid.0, now_micros())?;
        out.flush()?;
    }
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("writer") {
        let n = args[3].parse()?;
        return writer(&args[2], n);
    }
    let n: u64 = args.get(1).map_or(Ok(200), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let db_dir = dir.path().join("db");
    // The database exists (one commit) before the follower opens it.
    {
        let db = Db::open(&db_dir)?;
        let mut tx = db.begin();
        tx.put("bench", b"seed", b"v")?;
        tx.commit()?;
    }
    let mut child = Command::new(std::env::current_exe()?)
        .args(["writer", db_dir.to_str().ok_or("path")?, &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.next().ok_or("writer exited")??;
    assert_eq!(ready, "ready");
    let follower = Db::open_read_only(&db_dir)?;
    let reader = std::thread::spawn(move || {
        let mut returned = Vec::new();
        for line in lines {
            let Ok(line) = line else { break };
            let mut words = line.split_whitespace();
            let (Some(txid), Some(micros)) = (words.next(), words.next()) else {
                continue;
            };
            if let (Ok(txid), Ok(micros)) = (txid.parse::<u64>(), micros.parse::<u64>()) {
                returned.push((txid, micros));
            }
        }
        returned
    });
    let mut feed = follower.changes_since(follower.latest_txid());
    let start = feed.position();
    let mut received = Vec::new();
    while received.len() < n as usize {
        let record = feed
            .wait_next(Duration::from_secs(30))?
            .ok_or("no commit within 30 s")?;
        received.push((record.txid.0, now_micros()));
    }
    child.wait()?;
    let returned = reader.join().map_err(|_| "reader thread panicked")?;
    let mut latencies: Vec<u64> = received
        .iter()
        .filter_map(|(txid, got)| {
            let (_, sent) = returned.iter().find(|(t, _)| t == txid)?;
            Some(got.saturating_sub(*sent))
        })
        .collect();
    latencies.sort_unstable();
    if latencies.is_empty() {
        return Err("nothing measured".into());
    }
    // What a refresh costs when there is nothing new.
    let idle = 1000;
    let t = Instant::now();
    for _ in 0..idle {
        follower.refresh()?;
    }
    let idle_refresh = t.elapsed() / idle;
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "{} commits after txid {} followed to txid {} (poll interval {:?}):",
        latencies.len(),
        start,
        follower.latest_txid(),
        timecask::FOLLOW_POLL_INTERVAL
    );
    println!(
        "wake-up latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap_or(&0)),
    );
    println!("an idle refresh (nothing new) takes {idle_refresh:?}");
    let manifest = std::fs::read(db_dir.join("MANIFEST")).map_or(0, |b| b.len());
    let runs = std::fs::read_dir(&db_dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "tcrun"))
        .count();
    println!("the writer left {runs} run files and a {manifest}-byte MANIFEST");
    assert_eq!(follower.latest_txid(), TxId(start.0 + n));
    Ok(())
}
