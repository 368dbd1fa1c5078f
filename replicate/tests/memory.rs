//! Replication and restore against an in-memory object store (no server):
//! the logic of what is shipped and what a restore can rebuild.

mod common;

use std::sync::Arc;

use common::{assert_same_as_of, commit_step, source_config};
use timecask::{Db, TxId};
use timecask_replicate::{Error, Remote, Replicator, ReplicatorConfig, restorable, restore};

fn memory_remote(store: &Arc<object_store::memory::InMemory>) -> Remote {
    let store: Arc<dyn object_store::ObjectStore> = store.clone();
    Remote::new(store, "db", "memory://db").expect("remote")
}

#[test]
fn restore_at_every_shipped_txid_answers_like_as_of_on_the_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path().join("src"), source_config()).expect("open");
    let store = Arc::new(object_store::memory::InMemory::new());
    let mut replicator = Replicator::open(
        dir.path().join("src"),
        memory_remote(&store),
        ReplicatorConfig::default(),
    )
    .expect("replicator");
    let mut last = TxId(0);
    for i in 0..240 {
        last = commit_step(&db, i);
        if i % 5 == 0 {
            replicator.sync().expect("sync");
        }
        if i == 120 {
            db.compact().expect("compact");
        }
    }
    let report = replicator.sync().expect("sync");
    assert_eq!(report.shipped_txid, last.0);
    assert!(
        !replicator.objects().manifests.is_empty() && !replicator.objects().runs.is_empty(),
        "the workload sealed runs and they were shipped"
    );
    let replicator_runs = replicator.objects().runs.len();
    let replicator_manifests = replicator.objects().manifests.len();
    replicator.release().expect("release");
    let ranges = restorable(&memory_remote(&store)).expect("restorable");
    assert_eq!(ranges.last().map(|r| r.1), Some(last.0), "{ranges:?}");
    let mut checked = 0;
    for &(first, end) in &ranges {
        for txid in (first.max(1)..=end).step_by(7).chain([end]) {
            let out = dir.path().join(format!("restored-{txid}"));
            restore(&memory_remote(&store), TxId(txid), &out).expect("restore");
            let copy = Db::open(&out).expect("open the restored copy");
            assert_same_as_of(&db, &copy, TxId(txid));
            checked += 1;
        }
    }
    eprintln!(
        "restorable {ranges:?}, restored at {checked} txids, {} runs, {} manifests",
        replicator_runs, replicator_manifests
    );
    assert!(checked > 20, "restored at {checked} txids");
}

#[test]
fn a_txid_the_bucket_does_not_hold_is_not_restorable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path().join("src")).expect("open");
    let store = Arc::new(object_store::memory::InMemory::new());
    let mut replicator = Replicator::open(
        dir.path().join("src"),
        memory_remote(&store),
        ReplicatorConfig::default(),
    )
    .expect("replicator");
    for i in 0..3 {
        commit_step(&db, i);
    }
    replicator.sync().expect("sync");
    let err = restore(&memory_remote(&store), TxId(9), dir.path().join("out"))
        .expect_err("txid 9 is not there");
    assert!(
        matches!(&err, Error::NotRestorable { txid: 9, available, .. } if available == &vec![(0, 3)]),
        "{err}"
    );
}

#[test]
fn a_restarted_replicator_ships_only_what_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path().join("src"), source_config()).expect("open");
    let store = Arc::new(object_store::memory::InMemory::new());
    let config = ReplicatorConfig {
        // Generous: the check below must come before it expires.
        lease_ttl: std::time::Duration::from_secs(6),
        ..ReplicatorConfig::default()
    };
    let mut first = Replicator::open(
        dir.path().join("src"),
        memory_remote(&store),
        config.clone(),
    )
    .expect("replicator");
    for i in 0..50 {
        commit_step(&db, i);
    }
    first.sync().expect("sync");
    let shipped = first.objects().clone();
    // A crash: the lease is never released.
    drop(first);
    let refused = Replicator::open(
        dir.path().join("src"),
        memory_remote(&store),
        config.clone(),
    );
    assert!(
        matches!(refused, Err(Error::Leased { .. })),
        "the lease still holds"
    );
    std::thread::sleep(std::time::Duration::from_millis(6500));
    let mut second = Replicator::open(dir.path().join("src"), memory_remote(&store), config)
        .expect("after expiry");
    assert_eq!(
        second.objects(),
        &shipped,
        "it starts from the bucket's object manifest"
    );
    let again = second.sync().expect("sync");
    assert_eq!(again.objects, 0, "nothing new to ship");
    let t = commit_step(&db, 50);
    let report = second.sync().expect("sync");
    assert_eq!(report.objects, 1, "one new piece of the active segment");
    assert_eq!(report.shipped_txid, t.0);
}
