//! Table-driven as-of reads: each case is a script of transactions and the
//! answers expected at every txid.

use std::ops::Bound;

use timecask::{Config, Db, Durability, Error, HistoryQuery, Op, TxId};

/// Runs `script` (transactions separated by `;`, each a list of `key=value`
/// writes or `key=-` deletes) and checks `expect` (entries `txid:key=value`
/// or `txid:key=-` for "absent"), before and after a reopen.
#[track_caller]
fn check(script: &str, expect: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        durability: Durability::Buffered,
        ..Config::default()
    };
    let db = Db::open_with(dir.path(), config.clone()).expect("open");
    let mut n_committed = 0;
    for tx_script in script.split(';') {
        let mut tx = db.begin();
        for write in tx_script.split_whitespace() {
            let (key, value) = write.split_once('=').expect("key=value");
            if value == "-" {
                tx.delete("t", key).expect("delete");
            } else {
                tx.put("t", key, value).expect("put");
            }
        }
        if let Some(txid) = tx.commit().expect("commit") {
            n_committed += 1;
            assert_eq!(
                txid,
                TxId(n_committed),
                "txids are dense in script {script:?}"
            );
        }
    }
    let verify = |db: &Db| {
        for entry in expect.split_whitespace() {
            let (txid, kv) = entry.split_once(':').expect("txid:key=value");
            let (key, value) = kv.split_once('=').expect("key=value");
            let txid = TxId(txid.parse().expect("txid"));
            let want = (value != "-").then(|| value.as_bytes().to_vec());
            let got = db.as_of(txid).expect("as_of").get("t", key).expect("get");
            assert_eq!(got, want, "as_of({txid}).get({key}) in script {script:?}");
        }
    };
    verify(&db);
    drop(db);
    verify(&Db::open_with(dir.path(), config).expect("reopen"));
}

#[test]
fn as_of_matrix() {
    let cases = [
        // A single insert: absent before, present at and after.
        ("k=a", "0:k=- 1:k=a"),
        // Updates: each txid sees its own value.
        ("k=a; k=b; k=c", "0:k=- 1:k=a 2:k=b 3:k=c"),
        // A delete hides the key from then on; a later insert revives it.
        ("k=a; k=-; k=b", "1:k=a 2:k=- 3:k=b"),
        // Writes to other keys do not disturb a key's chain.
        ("k=a; j=x; j=y; k=b", "1:k=a 2:k=a 3:k=a 4:k=b 3:j=y 1:j=-"),
        // Last write in a transaction wins; write-then-delete is no change.
        ("k=a k=b; j=x j=-; k=c", "1:k=b 2:k=c 2:j=-"),
        // An identical update records nothing, so txids stay dense.
        ("k=a; k=a; k=b", "1:k=a 2:k=b"),
        // Deleting a key that never existed records nothing.
        ("k=-; k=a", "1:k=a"),
        // Many keys in one transaction.
        (
            "a=1 b=2 c=3; b=-; a=9",
            "1:a=1 1:b=2 1:c=3 2:b=- 2:a=1 3:a=9 3:c=3",
        ),
    ];
    for (script, expect) in cases {
        check(script, expect);
    }
}

#[test]
fn as_of_before_first_insert_is_none() {
    check("k=a", "0:k=-");
}

#[test]
fn as_of_future_txid_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let mut tx = db.begin();
    tx.put("t", "k", "v").expect("put");
    tx.commit().expect("commit");
    let err = db.as_of(TxId(2)).expect_err("future");
    assert!(matches!(
        err,
        Error::FutureTxid {
            requested: TxId(2),
            latest: TxId(1)
        }
    ));
    let err = db.transaction(TxId(5)).expect_err("future");
    assert!(matches!(err, Error::FutureTxid { .. }));
    assert!(matches!(db.log(..=TxId(3)), Err(Error::FutureTxid { .. })));
    assert!(matches!(
        db.transaction(TxId(0)),
        Err(Error::NoSuchTransaction { .. })
    ));
}

#[test]
fn as_of_time_picks_last_commit_at_or_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let mut times = Vec::new();
    for value in ["a", "b", "c"] {
        let mut tx = db.begin();
        tx.put("t", "k", value).expect("put");
        let txid = tx.commit().expect("commit").expect("changed");
        times.push(db.transaction(txid).expect("tx").commit_time);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let before = timecask::Timestamp::from_micros(times[0].as_micros() - 1);
    assert_eq!(db.as_of_time(before).expect("view").txid(), TxId(0));
    for (i, time) in times.iter().enumerate() {
        let view = db.as_of_time(*time).expect("view");
        assert_eq!(view.txid(), TxId(i as u64 + 1), "time of tx {}", i + 1);
        assert_eq!(
            view.get("t", "k").expect("get"),
            Some(
                ["a", "b", "c"][view.txid().0 as usize - 1]
                    .as_bytes()
                    .to_vec()
            )
        );
    }
    let far = timecask::Timestamp::from_micros(u64::MAX);
    assert_eq!(db.as_of_time(far).expect("view").txid(), TxId(3));
}

#[test]
fn held_snapshot_never_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let mut tx = db.begin();
    tx.put("t", "k", "a").expect("put");
    tx.put("t", "j", "x").expect("put");
    tx.commit().expect("commit");
    let view = db.snapshot();
    let before: Vec<_> = view
        .iter("t")
        .expect("iter")
        .collect::<Result<_, _>>()
        .expect("scan");
    for i in 0..20 {
        let mut tx = db.begin();
        tx.put("t", "k", format!("v{i}")).expect("put");
        tx.delete("t", "j").expect("delete");
        tx.put("t", format!("new{i}"), "n").expect("put");
        tx.commit().expect("commit");
    }
    let after: Vec<_> = view
        .iter("t")
        .expect("iter")
        .collect::<Result<_, _>>()
        .expect("scan");
    assert_eq!(before, after);
    assert_eq!(view.count("t").expect("count"), 2);
    assert_eq!(db.snapshot().count("t").expect("count"), 21);
}

#[test]
fn ops_follow_liveness() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    for step in ["put a", "put b", "delete", "put c"] {
        let mut tx = db.begin();
        match step.split_once(' ') {
            Some((_, v)) => tx.put("t", "k", v).expect("put"),
            None => assert!(tx.delete("t", "k").expect("delete")),
        }
        tx.commit().expect("commit");
    }
    let history = db
        .snapshot()
        .history("t", "k", HistoryQuery::all())
        .expect("history");
    let got: Vec<_> = history
        .iter()
        .map(|v| (v.txid.0, v.end_txid.map(|t| t.0), v.op))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, Some(2), Op::Insert),
            (2, Some(3), Op::Update),
            (3, Some(4), Op::Delete),
            (4, None, Op::Insert)
        ]
    );
    // A view in the past sees the chain as it was: the version is still open.
    let old = db
        .as_of(TxId(2))
        .expect("view")
        .history("t", "k", HistoryQuery::all())
        .expect("history");
    assert_eq!(
        old.last().map(|v| (v.txid, v.end_txid)),
        Some((TxId(2), None))
    );
}

#[test]
fn history_window_direction_and_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(
        dir.path(),
        Config {
            durability: Durability::Buffered,
            ..Config::default()
        },
    )
    .expect("open");
    for i in 1..=10 {
        let mut tx = db.begin();
        tx.put("t", "k", format!("v{i}")).expect("put");
        tx.commit().expect("commit");
    }
    let view = db.snapshot();
    let txids = |q: HistoryQuery| -> Vec<u64> {
        view.history("t", "k", q)
            .expect("history")
            .iter()
            .map(|v| v.txid.0)
            .collect()
    };
    let cases: [(HistoryQuery, Vec<u64>); 6] = [
        (HistoryQuery::all().txids(TxId(3)..TxId(6)), vec![3, 4, 5]),
        (
            HistoryQuery::all().txids(TxId(3)..=TxId(6)),
            vec![3, 4, 5, 6],
        ),
        (HistoryQuery::all().newest_first().limit(3), vec![10, 9, 8]),
        (HistoryQuery::all().txids(TxId(8)..).limit(2), vec![8, 9]),
        (
            HistoryQuery::all().txids(..TxId(3)).newest_first(),
            vec![2, 1],
        ),
        (HistoryQuery::all().txids(TxId(20)..), vec![]),
    ];
    for (query, want) in cases {
        assert_eq!(txids(query.clone()), want, "{query:?}");
    }
}

#[test]
fn insert_and_update_check_liveness() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let mut tx = db.begin();
    assert!(matches!(
        tx.update("t", "k", "v"),
        Err(Error::KeyNotFound { .. })
    ));
    tx.insert("t", "k", "v").expect("insert");
    assert!(matches!(
        tx.insert("t", "k", "w"),
        Err(Error::KeyExists { .. })
    ));
    tx.commit().expect("commit");
    let mut tx = db.begin();
    assert!(matches!(
        tx.insert("t", "k", "w"),
        Err(Error::KeyExists { .. })
    ));
    tx.update("t", "k", "w").expect("update");
    assert!(tx.delete("t", "k").expect("delete"));
    assert!(!tx.delete("t", "k").expect("delete again"));
    tx.insert("t", "k", "again").expect("insert after delete");
    assert_eq!(tx.commit().expect("commit"), Some(TxId(2)));
    assert_eq!(
        db.transaction(TxId(2)).expect("tx").changes[0].op,
        Op::Update
    );
}

#[test]
fn empty_and_aborted_transactions_consume_no_txid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    assert_eq!(db.begin().commit().expect("empty"), None);
    let mut tx = db.begin();
    tx.put("t", "k", "v").expect("put");
    tx.abort();
    let mut tx = db.begin();
    tx.set_meta("user", "nobody").expect("meta");
    tx.delete("t", "missing").expect("delete");
    assert_eq!(tx.commit().expect("no-op"), None);
    let mut tx = db.begin();
    tx.put("t", "k", "v").expect("put");
    assert_eq!(tx.commit().expect("commit"), Some(TxId(1)));
}

#[test]
fn range_prefix_reverse_and_write_tx_merge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    let mut tx = db.begin();
    for k in ["a", "ab", "abc", "b", "c"] {
        tx.put("t", k, k.to_uppercase()).expect("put");
    }
    tx.put("other", "a", "x").expect("put");
    tx.commit().expect("commit");
    let view = db.snapshot();
    type Pairs = Box<dyn Iterator<Item = timecask::Result<(Vec<u8>, Vec<u8>)>>>;
    let keys = |it: Pairs| -> Vec<String> {
        it.map(|kv| String::from_utf8(kv.expect("kv").0).expect("utf8"))
            .collect()
    };
    let cases: [(Pairs, &[&str]); 6] = [
        (
            Box::new(view.iter("t").expect("iter")),
            &["a", "ab", "abc", "b", "c"],
        ),
        (
            Box::new(view.iter("t").expect("iter").rev()),
            &["c", "b", "abc", "ab", "a"],
        ),
        (
            Box::new(view.range("t", "ab".."b").expect("range")),
            &["ab", "abc"],
        ),
        (
            Box::new(view.range("t", "ab"..="b").expect("range").rev()),
            &["b", "abc", "ab"],
        ),
        (
            Box::new(view.prefix("t", "ab").expect("prefix")),
            &["ab", "abc"],
        ),
        (Box::new(view.iter("missing").expect("iter")), &[]),
    ];
    for (i, (it, want)) in cases.into_iter().enumerate() {
        assert_eq!(keys(it), want, "case {i}");
    }
    let mut it = view.iter("t").expect("iter");
    let front = it.next().expect("front").expect("kv").0;
    let back = it.next_back().expect("back").expect("kv").0;
    let middle: Vec<_> = it.map(|kv| kv.expect("kv").0).collect();
    assert_eq!(
        (front, back, middle.len()),
        (b"a".to_vec(), b"c".to_vec(), 3)
    );

    let mut tx = db.begin();
    tx.delete("t", "ab").expect("delete");
    tx.put("t", "aa", "new").expect("put");
    let merged: Vec<_> = tx
        .range("t", "a".."b")
        .expect("range")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(merged, vec![b"a".to_vec(), b"aa".to_vec(), b"abc".to_vec()]);
    // Empty or inverted bounds give nothing, never a panic.
    assert!(tx.range("t", "b".."a").expect("range").is_empty());
    assert!(
        tx.range::<&str>("t", (Bound::Excluded("a"), Bound::Excluded("a")))
            .expect("range")
            .is_empty()
    );
    assert_eq!(view.range("t", "b".."a").expect("range").count(), 0);
}

#[test]
fn large_scan_crosses_many_batches_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(
        dir.path(),
        Config {
            durability: Durability::Buffered,
            ..Config::default()
        },
    )
    .expect("open");
    let mut tx = db.begin();
    for i in 0u32..3000 {
        tx.put("t", i.to_be_bytes(), i.to_le_bytes()).expect("put");
    }
    tx.commit().expect("commit");
    let mut tx = db.begin();
    for i in (0u32..3000).filter(|i| i % 3 == 0) {
        tx.delete("t", i.to_be_bytes()).expect("delete");
    }
    tx.commit().expect("commit");
    let view = db.snapshot();
    let forward: Vec<u32> = view
        .iter("t")
        .expect("iter")
        .map(|kv| u32::from_be_bytes(kv.expect("kv").0.try_into().expect("4 bytes")))
        .collect();
    let want: Vec<u32> = (0..3000).filter(|i| i % 3 != 0).collect();
    assert_eq!(forward, want);
    let mut backward: Vec<u32> = view
        .iter("t")
        .expect("iter")
        .rev()
        .map(|kv| u32::from_be_bytes(kv.expect("kv").0.try_into().expect("4 bytes")))
        .collect();
    backward.reverse();
    assert_eq!(backward, want);
    assert_eq!(view.count("t").expect("count"), 2000);
    assert_eq!(
        db.as_of(TxId(1)).expect("view").count("t").expect("count"),
        3000
    );
}
