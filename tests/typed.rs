//! The typed layer: table-driven tests of `TableDef` handles, the schema
//! check, decoding failures as typed errors, and proptests that every key
//! encoding keeps value order and round-trips.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::Bound;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use timecask::typed::{
    Codec, FieldChange, Key, KeyEncode, SCHEMA_TABLE, TableView, TypedVersion, Value,
};

/// The codec id of entries written before evolvable tables (no `format`):
/// bincode, which such a table keeps whatever its `TableDef` asks.
const CODEC_ID: &str = "bincode2-serde-standard";
use timecask::{Config, Db, Durability, Error, HistoryQuery, Op, TableDef, TxId, TypedError};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct User {
    name: String,
    email: String,
    age: u32,
}

fn user(name: &str, age: u32) -> User {
    User {
        name: name.to_string(),
        email: format!("{}@example.com", name.to_lowercase()),
        age,
    }
}

const USERS: TableDef<u64, User> = TableDef::new("user");

fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        durability: Durability::Buffered,
        ..Config::default()
    };
    let db = Db::open_with(dir.path(), config).expect("open");
    (dir, db)
}

// ---------------------------------------------------------------------------
// Writes and reads.

/// One typed write.
#[derive(Clone, Copy, Debug)]
enum W {
    Insert(u64, &'static str),
    Update(u64, &'static str),
    Put(u64, &'static str),
    Delete(u64),
}

/// Transactions of typed writes, and the expected `(txid, op, name)` history.
type Script<'a> = &'a [&'a [W]];
type Expected<'a> = &'a [(u64, Op, Option<&'a str>)];

/// Runs `script` (one inner slice per transaction) through the typed API
/// and checks the history of key 1 as `(txid, op, name)` triples.
#[track_caller]
fn check_history(script: Script<'_>, want: Expected<'_>) {
    let (_dir, db) = open();
    for writes in script {
        let mut tx = db.begin();
        let mut users = tx.typed(USERS);
        for w in *writes {
            match *w {
                W::Insert(k, name) => users.insert(&k, &user(name, 30)).expect("insert"),
                W::Update(k, name) => users.update(&k, &user(name, 30)).expect("update"),
                W::Put(k, name) => users.put(&k, &user(name, 30)).expect("put"),
                W::Delete(k) => {
                    users.delete(&k).expect("delete");
                }
            }
        }
        tx.commit().expect("commit");
    }
    let history = db
        .snapshot()
        .typed(USERS)
        .history(&1, HistoryQuery::all())
        .expect("history");
    let got: Vec<(u64, Op, Option<&str>)> = history
        .iter()
        .map(|v| (v.txid.0, v.op, v.value.as_ref().map(|u| u.name.as_str())))
        .collect();
    assert_eq!(got, want, "script {script:?}");
    for pair in history.windows(2) {
        assert_eq!(pair[0].end_txid, Some(pair[1].txid));
    }
}

#[test]
fn typed_writes_record_the_expected_versions() {
    use W::*;
    let cases: [(Script<'_>, Expected<'_>); 6] = [
        (&[&[Insert(1, "Alice")]], &[(1, Op::Insert, Some("Alice"))]),
        (
            &[&[Insert(1, "Alice")], &[Update(1, "Bob")]],
            &[(1, Op::Insert, Some("Alice")), (2, Op::Update, Some("Bob"))],
        ),
        (
            &[&[Put(1, "Alice")], &[Delete(1)], &[Put(1, "Carol")]],
            &[
                (1, Op::Insert, Some("Alice")),
                (2, Op::Delete, None),
                (3, Op::Insert, Some("Carol")),
            ],
        ),
        // An identical put records nothing; other keys do not show up.
        (
            &[
                &[Put(1, "Alice")],
                &[Put(1, "Alice"), Put(2, "Zed")],
                &[Put(1, "Bob")],
            ],
            &[(1, Op::Insert, Some("Alice")), (3, Op::Update, Some("Bob"))],
        ),
        // The last write of a transaction wins.
        (
            &[&[Insert(1, "Alice"), Update(1, "Bob")]],
            &[(1, Op::Insert, Some("Bob"))],
        ),
        (&[&[Delete(1)], &[Put(2, "Zed")]], &[]),
    ];
    for (script, want) in cases {
        check_history(script, want);
    }
}

#[test]
fn insert_and_update_check_liveness() {
    let (_dir, db) = open();
    let mut tx = db.begin();
    tx.typed(USERS)
        .insert(&1, &user("Alice", 30))
        .expect("insert");
    tx.commit().expect("commit");

    let mut tx = db.begin();
    let mut users = tx.typed(USERS);
    let err = users.insert(&1, &user("Again", 1)).expect_err("live key");
    assert!(
        matches!(&err, TypedError::Db(Error::KeyExists { table, .. }) if table == "user"),
        "{err}"
    );
    let err = users
        .update(&2, &user("Nobody", 1))
        .expect_err("absent key");
    assert!(
        matches!(err, TypedError::Db(Error::KeyNotFound { .. })),
        "{err}"
    );
    assert!(users.delete(&1).expect("delete"));
    assert!(!users.delete(&1).expect("delete again"));
    assert!(!users.contains(&1).expect("contains"));
    users
        .insert(&1, &user("Bob", 2))
        .expect("insert after delete");
    assert_eq!(users.get(&1).expect("get"), Some(user("Bob", 2)));
}

#[test]
fn a_transaction_reads_its_own_typed_writes() {
    let (_dir, db) = open();
    let mut tx = db.begin();
    tx.typed(USERS).put(&5, &user("Eve", 5)).expect("put");
    tx.typed(USERS).put(&3, &user("Cy", 3)).expect("put");
    let users = tx.typed(USERS);
    assert_eq!(users.get(&5).expect("get"), Some(user("Eve", 5)));
    let keys: Vec<u64> = users
        .range(..)
        .expect("range")
        .map(|kv| kv.expect("decode").0)
        .collect();
    assert_eq!(keys, [3, 5]);
    assert_eq!(
        db.snapshot().typed(USERS).get(&5).expect("get"),
        None,
        "others do not see it before commit"
    );
    tx.commit().expect("commit");
    assert_eq!(db.snapshot().typed(USERS).count().expect("count"), 2);
}

/// [`User`] with its strings borrowed from the stored bytes.
#[derive(Deserialize, Debug, PartialEq)]
struct UserRef<'a> {
    name: &'a str,
    email: &'a str,
    age: u32,
}

/// `get_ref` agrees with `get` for `key` on `users`, through both decodes.
fn check_get_ref(
    users: impl Fn(u64) -> (Option<User>, Option<timecask::typed::ValueRef<User>>),
    key: u64,
) {
    let (owned, stored) = users(key);
    assert_eq!(stored.is_some(), owned.is_some(), "key {key}");
    let (Some(owned), Some(stored)) = (owned, stored) else {
        return;
    };
    assert_eq!(stored.value().expect("value"), owned, "key {key}");
    let borrowed: UserRef<'_> = stored.borrow_as().expect("borrow_as");
    assert_eq!(
        (borrowed.name, borrowed.email, borrowed.age),
        (owned.name.as_str(), owned.email.as_str(), owned.age),
        "key {key}"
    );
}

#[test]
fn get_ref_reads_what_get_reads() {
    // Small values are copied out of the value cache, large ones shared
    // with it; with the cache off both come from the file.
    let long = user(&"L".repeat(1000), 7);
    for value_cache_bytes in [0, 1 << 20] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            value_cache_bytes,
            ..Config::default()
        };
        let db = Db::open_with(dir.path(), config).expect("open");
        let mut tx = db.begin();
        let mut users = tx.typed(USERS);
        users.put(&1, &user("Alice", 30)).expect("put");
        users.put(&2, &long).expect("put");
        users.put(&3, &user("Cy", 3)).expect("put");
        let t1 = tx.commit().expect("commit").expect("txid");
        let mut tx = db.begin();
        tx.typed(USERS).put(&1, &user("Bob", 31)).expect("put");
        tx.typed(USERS).delete(&3).expect("delete");
        tx.commit().expect("commit");

        for view in [db.snapshot(), db.as_of(t1).expect("as_of")] {
            let users = view.typed(USERS);
            // Twice: the first read may fill the cache, the second hits it.
            for key in [1, 2, 3, 4, 1, 2, 3] {
                check_get_ref(
                    |k| {
                        (
                            users.get(&k).expect("get"),
                            users.get_ref(&k).expect("get_ref"),
                        )
                    },
                    key,
                );
            }
        }

        // A transaction sees its own writes through get_ref.
        let mut tx = db.begin();
        tx.typed(USERS).put(&4, &user("Dee", 4)).expect("put");
        tx.typed(USERS).delete(&2).expect("delete");
        let users = tx.typed(USERS);
        for key in [1, 2, 3, 4] {
            check_get_ref(
                |k| {
                    (
                        users.get(&k).expect("get"),
                        users.get_ref(&k).expect("get_ref"),
                    )
                },
                key,
            );
        }
        assert!(
            users.get_ref(&2).expect("get_ref").is_none(),
            "deleted in this tx"
        );
        drop(tx);

        // A ValueRef owns its bytes: later writes and compaction leave it be.
        let held = db
            .snapshot()
            .typed(USERS)
            .get_ref(&2)
            .expect("get_ref")
            .expect("present");
        let mut tx = db.begin();
        tx.typed(USERS).put(&2, &user("Zed", 9)).expect("put");
        tx.commit().expect("commit");
        db.compact().expect("compact");
        assert_eq!(held.value().expect("value"), long);
        assert_eq!(
            Some(held.as_bytes()),
            db.as_of(t1)
                .expect("as_of")
                .get("user", 2u64.to_be_bytes())
                .expect("get")
                .as_deref(),
            "the bytes the byte API reads"
        );
    }
}

#[test]
fn borrowing_a_different_layout_is_a_decode_error() {
    let (_dir, db) = open();
    let mut tx = db.begin();
    tx.typed(USERS).put(&1, &user("Alice", 30)).expect("put");
    tx.commit().expect("commit");
    let stored = db
        .snapshot()
        .typed(USERS)
        .get_ref(&1)
        .expect("get_ref")
        .expect("present");
    let err = stored
        .borrow_as::<(u64, &str)>()
        .expect_err("not this layout");
    assert!(
        matches!(&err, TypedError::ValueDecode { table, key, .. } if table == "user" && key.0 == 1u64.to_be_bytes()),
        "{err}"
    );
    // Fewer fields than stored: the rest are trailing bytes, also an error.
    assert!(stored.borrow_as::<(&str,)>().is_err());
}

#[test]
fn views_read_as_of_their_txid() {
    let (_dir, db) = open();
    let mut txids = Vec::new();
    for (i, name) in ["Alice", "Bob", "Carol"].into_iter().enumerate() {
        let mut tx = db.begin();
        tx.typed(USERS)
            .put(&1, &user(name, 30 + i as u32))
            .expect("put");
        txids.push(tx.commit().expect("commit").expect("txid"));
    }
    let mut tx = db.begin();
    tx.typed(USERS).delete(&1).expect("delete");
    let deleted = tx.commit().expect("commit").expect("txid");

    let name_at = |t: TxId| {
        db.as_of(t)
            .expect("as_of")
            .typed(USERS)
            .get(&1)
            .expect("get")
            .map(|u| u.name)
    };
    assert_eq!(name_at(TxId(0)), None);
    assert_eq!(name_at(txids[0]).as_deref(), Some("Alice"));
    assert_eq!(name_at(txids[2]).as_deref(), Some("Carol"));
    assert_eq!(name_at(deleted), None);

    let latest = db.snapshot().typed(USERS);
    let older = db.as_of(txids[1]).expect("as_of").typed(USERS);
    assert_eq!(
        older.get_as_of(&1, txids[0]).expect("get_as_of"),
        Some(user("Alice", 30))
    );
    let err = older.get_as_of(&1, txids[2]).expect_err("beyond the view");
    assert!(
        matches!(err, TypedError::Db(Error::FutureTxid { .. })),
        "{err}"
    );

    let version = latest
        .get_version(&1)
        .expect("get_version")
        .expect("a delete");
    assert_eq!(
        (version.txid, version.op, version.value),
        (deleted, Op::Delete, None)
    );
    let version = older
        .get_version(&1)
        .expect("get_version")
        .expect("version");
    assert_eq!(version.value.map(|u| u.name).as_deref(), Some("Bob"));
}

#[test]
fn changesets_name_each_changed_field() {
    let (_dir, db) = open();
    let script = [user("Alice", 30), user("Bob", 30), user("Bob", 31)];
    let mut txids = Vec::new();
    for u in &script {
        let mut tx = db.begin();
        tx.typed(USERS).put(&1, u).expect("put");
        txids.push(tx.commit().expect("commit").expect("txid"));
    }
    let mut tx = db.begin();
    tx.typed(USERS).delete(&1).expect("delete");
    txids.push(tx.commit().expect("commit").expect("txid"));

    let view = db.snapshot().typed(USERS);
    let shown = |changes: Vec<FieldChange>| -> Vec<String> {
        changes.iter().map(ToString::to_string).collect()
    };
    let cases: [(TxId, TxId, &[&str]); 5] = [
        (
            TxId(0),
            txids[0],
            &[
                "name: (none) -> Alice",
                "email: (none) -> alice@example.com",
                "age: (none) -> 30",
            ],
        ),
        (
            txids[0],
            txids[1],
            &[
                "name: Alice -> Bob",
                "email: alice@example.com -> bob@example.com",
            ],
        ),
        (txids[1], txids[2], &["age: 30 -> 31"]),
        (txids[2], txids[2], &[]),
        (
            txids[0],
            txids[2],
            &[
                "name: Alice -> Bob",
                "email: alice@example.com -> bob@example.com",
                "age: 30 -> 31",
            ],
        ),
    ];
    for (from, to, want) in cases {
        let got = shown(view.changeset(&1, from, to).expect("changeset"));
        assert_eq!(got, want, "changeset {from}..{to}");
    }
    assert_eq!(
        shown(view.changeset_at(&1, txids[2]).expect("changeset_at")),
        ["age: 30 -> 31"]
    );
    assert_eq!(
        shown(view.changeset_at(&2, txids[2]).expect("other key")),
        Vec::<String>::new()
    );
    let deleted = view.changeset_at(&1, txids[3]).expect("changeset_at");
    assert_eq!(deleted.len(), 3);
    assert!(deleted.iter().all(|c| c.new.is_none()));
    assert_eq!(deleted[2].old, Some(Value::UInt(31)));

    // Through the history, version by version.
    let history = view.history(&1, HistoryQuery::all()).expect("history");
    let mut previous: Option<&TypedVersion<User>> = None;
    let mut n_changes = Vec::new();
    for v in &history {
        n_changes.push(v.changeset(previous).expect("changeset").len());
        previous = Some(v);
    }
    assert_eq!(n_changes, [3, 2, 1, 3]);
}

#[test]
fn history_queries_are_applied_before_decoding() {
    let (_dir, db) = open();
    for age in 0..10 {
        let mut tx = db.begin();
        tx.typed(USERS).put(&1, &user("Alice", age)).expect("put");
        tx.commit().expect("commit");
    }
    let view = db.snapshot().typed(USERS);
    let ages = |q: HistoryQuery| -> Vec<u32> {
        view.history(&1, q)
            .expect("history")
            .into_iter()
            .map(|v| v.value.expect("live").age)
            .collect()
    };
    assert_eq!(ages(HistoryQuery::all().newest_first().limit(2)), [9, 8]);
    assert_eq!(ages(HistoryQuery::all().txids(TxId(3)..TxId(5))), [2, 3]);
}

// ---------------------------------------------------------------------------
// Key order through the database.

fn keys_of<K: Key + Debug, V: Serialize + serde::de::DeserializeOwned>(
    view: &TableView<K, V>,
) -> Vec<K> {
    view.iter()
        .expect("iter")
        .map(|kv| kv.expect("decode").0)
        .collect()
}

#[test]
fn scans_return_keys_in_value_order() {
    let (_dir, db) = open();
    const SIGNED: TableDef<i64, ()> = TableDef::new("signed");
    const NAMES: TableDef<String, ()> = TableDef::new("names");
    const PAIRS: TableDef<(String, u32), ()> = TableDef::new("pairs");
    let signed = [5i64, -1, i64::MIN, 0, i64::MAX, -300];
    let names = ["b", "", "a\0", "ab", "a", "\u{ff}"];
    let pairs = [("ab", 1u32), ("a", 2), ("a", 1), ("", 9), ("a\0", 0)];
    let mut tx = db.begin();
    for k in signed {
        tx.typed(SIGNED).put(&k, &()).expect("put");
    }
    for k in names {
        tx.typed(NAMES).put(k, &()).expect("put");
    }
    for (s, n) in pairs {
        tx.typed(PAIRS).put(&(s.to_string(), n), &()).expect("put");
    }
    tx.commit().expect("commit");

    let view = db.snapshot();
    let mut want = signed.to_vec();
    want.sort();
    assert_eq!(keys_of(&view.typed(SIGNED)), want);
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(keys_of(&view.typed(NAMES)), want);
    let mut want: Vec<(String, u32)> = pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect();
    want.sort();
    assert_eq!(keys_of(&view.typed(PAIRS)), want);

    // Bounded and reverse ranges, with borrowed bounds.
    let names_view = view.typed(NAMES);
    let got: Vec<String> = names_view
        .range::<str, _>((Bound::Included("a"), Bound::Excluded("b")))
        .expect("range")
        .rev()
        .map(|kv| kv.expect("decode").0)
        .collect();
    assert_eq!(got, ["ab", "a\0", "a"]);
    let negative: Vec<i64> = view
        .typed(SIGNED)
        .range(..0)
        .expect("range")
        .map(|kv| kv.expect("decode").0)
        .collect();
    assert_eq!(negative, [i64::MIN, -300, -1]);
    // Every pair whose string is exactly "a".
    let a: Vec<u32> = view
        .typed(PAIRS)
        .range(("a".to_string(), 0)..=("a".to_string(), u32::MAX))
        .expect("range")
        .map(|kv| kv.expect("decode").0.1)
        .collect();
    assert_eq!(a, [1, 2]);
}

// ---------------------------------------------------------------------------
// The schema entry and typed errors.

#[test]
fn the_first_typed_write_records_the_schema_once() {
    let (_dir, db) = open();
    let mut tx = db.begin();
    tx.typed(USERS).put(&1, &user("Alice", 30)).expect("put");
    let t1 = tx.commit().expect("commit").expect("txid");
    let mut tx = db.begin();
    tx.typed(USERS).put(&2, &user("Bob", 30)).expect("put");
    let t2 = tx.commit().expect("commit").expect("txid");

    let entry = db
        .snapshot()
        .get(SCHEMA_TABLE, "user")
        .expect("get")
        .expect("schema entry");
    assert_eq!(
        String::from_utf8(entry).expect("UTF-8"),
        r#"{"format":1,"codec":"msgpack","key":"u64","value":"typed::User"}"#
    );
    let tables = |t: TxId| -> Vec<String> {
        db.transaction(t)
            .expect("transaction")
            .changes
            .into_iter()
            .map(|c| c.table)
            .collect()
    };
    // The schema table is internal: not among the changes, not listed.
    assert_eq!(tables(t1), ["user"]);
    assert_eq!(tables(t2), ["user"]);
    assert_eq!(db.snapshot().tables(), ["user"]);
    assert_eq!(USERS.codec(), Codec::MessagePack);
}

/// Writes raw bytes with the byte API.
fn put_raw(db: &Db, table: &str, key: &[u8], value: &[u8]) {
    let mut tx = db.begin();
    tx.put(table, key, value).expect("put");
    tx.commit().expect("commit");
}

fn schema_entry(codec: &str, key: &str) -> Vec<u8> {
    format!(r#"{{"codec":"{codec}","key":"{key}"}}"#).into_bytes()
}

/// A write through the byte API: table, key, value.
type RawWrite<'a> = (&'a str, &'a [u8], &'a [u8]);

/// What a typed read of `USERS` returns after `setup` wrote with the byte
/// API, as the name of the error variant (or "ok").
#[track_caller]
fn check_typed_read(setup: &[RawWrite<'_>], want_get: &str, want_put: &str) {
    let (_dir, db) = open();
    for (table, key, value) in setup {
        put_raw(&db, table, key, value);
    }
    let kind = |r: Result<(), TypedError>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{e:?}")
            .split([' ', '(', '{'])
            .next()
            .expect("a variant name")
            .to_string(),
    };
    let get = db.snapshot().typed(USERS).get(&1).map(drop);
    assert_eq!(kind(get), want_get, "get after {setup:?}");
    let iter = db
        .snapshot()
        .typed(USERS)
        .iter()
        .and_then(|mut it| it.try_for_each(|kv| kv.map(drop)));
    let mut tx = db.begin();
    let put = tx.typed(USERS).put(&1, &user("Alice", 30));
    assert_eq!(kind(put), want_put, "put after {setup:?}");
    if want_get != "ok" {
        assert_eq!(kind(iter), want_get, "iter after {setup:?}");
    }
}

#[test]
fn mismatches_and_garbage_are_typed_errors() {
    let ok_entry = schema_entry(CODEC_ID, "u64");
    let good_value: &[u8] = &[5, b'A', b'l', b'i', b'c', b'e', 0, 30];
    let one = 1u64.to_be_bytes();
    let cases: [(&[RawWrite<'_>], &str, &str); 8] = [
        // Nothing there: reads find nothing, writes create the table.
        (&[], "ok", "ok"),
        // A valid typed table written by hand.
        (
            &[
                (SCHEMA_TABLE, b"user", &ok_entry),
                ("user", &one, good_value),
            ],
            "ok",
            "ok",
        ),
        // Another codec.
        (
            &[(SCHEMA_TABLE, b"user", &schema_entry("postcard-1", "u64"))],
            "CodecMismatch",
            "CodecMismatch",
        ),
        // An entry that is not an entry at all.
        (
            &[(SCHEMA_TABLE, b"user", b"\xff\x00")],
            "CodecMismatch",
            "CodecMismatch",
        ),
        // Another key type.
        (
            &[(SCHEMA_TABLE, b"user", &schema_entry(CODEC_ID, "str"))],
            "KeyTypeMismatch",
            "KeyTypeMismatch",
        ),
        // Data from the byte API and no schema.
        (
            &[("user", &one, b"{\"name\":\"Alice\"}")],
            "NotTyped",
            "NotTyped",
        ),
        // Garbage value bytes under a valid schema.
        (
            &[
                (SCHEMA_TABLE, b"user", &ok_entry),
                ("user", &one, b"\xff\xff\xff"),
            ],
            "ValueDecode",
            "ok",
        ),
        // Trailing bytes after a valid value.
        (
            &[
                (SCHEMA_TABLE, b"user", &ok_entry),
                ("user", &one, b"\x01a\x00\x01\x00"),
            ],
            "ValueDecode",
            "ok",
        ),
    ];
    for (setup, want_get, want_put) in cases {
        check_typed_read(setup, want_get, want_put);
    }
}

#[test]
fn garbage_keys_are_typed_errors() {
    let (_dir, db) = open();
    put_raw(&db, SCHEMA_TABLE, b"user", &schema_entry(CODEC_ID, "u64"));
    put_raw(&db, "user", b"abc", &[0, 0, 0]);
    let item = db
        .snapshot()
        .typed(USERS)
        .iter()
        .expect("iter")
        .next()
        .expect("one pair");
    let err = item.expect_err("a 3-byte key is not a u64");
    assert!(
        matches!(&err, TypedError::KeyDecode { table, .. } if table == "user"),
        "{err}"
    );
    assert!(err.to_string().contains("u64"), "{err}");
}

#[test]
fn a_changed_value_type_is_a_decode_error_not_garbage() {
    #[derive(Serialize, Deserialize, Debug)]
    struct Wide {
        name: String,
        email: String,
        age: u32,
        tags: Vec<String>,
    }
    const WIDE: TableDef<u64, Wide> = TableDef::new("user");
    let (_dir, db) = open();
    let mut tx = db.begin();
    tx.typed(USERS).put(&1, &user("Alice", 30)).expect("put");
    tx.commit().expect("commit");
    let err = db.snapshot().typed(WIDE).get(&1).expect_err("a field more");
    assert!(matches!(err, TypedError::ValueDecode { .. }), "{err}");
}

#[test]
fn reserved_names_are_refused() {
    const SNEAKY: TableDef<String, String> = TableDef::new(SCHEMA_TABLE);
    let (_dir, db) = open();
    let mut tx = db.begin();
    let err = tx
        .typed(SNEAKY)
        .put("user", &"x".to_string())
        .expect_err("reserved");
    assert!(matches!(err, TypedError::ReservedTable { .. }), "{err}");
    let err = db
        .snapshot()
        .typed(SNEAKY)
        .get("user")
        .expect_err("reserved");
    assert!(matches!(err, TypedError::ReservedTable { .. }), "{err}");
}

#[test]
fn concurrent_first_writes_to_a_new_table_conflict_on_its_schema_entry() {
    let (_dir, db) = open();
    let mut a = db.begin();
    let mut b = db.begin();
    a.typed(USERS).put(&1, &user("Alice", 30)).expect("put");
    b.typed(USERS).put(&2, &user("Bob", 30)).expect("put");
    a.commit().expect("first committer wins");
    let err = b.commit().expect_err("second loses");
    assert!(
        matches!(&err, Error::Conflict { table, .. } if table == SCHEMA_TABLE),
        "{err}"
    );
    // A retry sees the entry and does not write it again.
    let mut b = db.begin();
    b.typed(USERS).put(&2, &user("Bob", 30)).expect("put");
    b.commit().expect("retry commits");
}

// ---------------------------------------------------------------------------
// Key encodings: byte order is value order, decoding round-trips.

/// `a < b` exactly when their encodings compare so, and both decode back.
fn check_key_order<K: Key + Ord + Debug>(a: &K, b: &K) -> Result<(), TestCaseError> {
    let (ea, eb) = (a.key_bytes(), b.key_bytes());
    prop_assert_eq!(a.cmp(b), ea.cmp(&eb), "{:?} vs {:?}", a, b);
    prop_assert_eq!(&K::from_key_bytes(&ea).expect("round trip"), a);
    prop_assert_eq!(&K::from_key_bytes(&eb).expect("round trip"), b);
    Ok(())
}

/// Bytes and strings drawn from a small alphabet, so that shared prefixes,
/// zero bytes and 0xff are common.
fn edgy_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![Just(0u8), Just(1), Just(0xff), any::<u8>()],
        0..6,
    )
}

fn edgy_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('\0'),
            Just('a'),
            Just('b'),
            Just('\u{ff}'),
            any::<char>()
        ],
        0..5,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

const CASES: u32 = 256;

macro_rules! key_order_proptests {
    ($($name:ident: $t:ty = $strategy:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(CASES))]
            $(
                #[test]
                fn $name(a in $strategy, b in $strategy) {
                    check_key_order::<$t>(&a, &b)?;
                    check_key_order::<$t>(&a, &a)?;
                }
            )*
        }
    };
}

key_order_proptests! {
    order_u8: u8 = any::<u8>();
    order_u16: u16 = any::<u16>();
    order_u32: u32 = any::<u32>();
    order_u64: u64 = any::<u64>();
    order_u128: u128 = any::<u128>();
    order_i8: i8 = any::<i8>();
    order_i16: i16 = any::<i16>();
    order_i32: i32 = any::<i32>();
    order_i64: i64 = any::<i64>();
    order_i128: i128 = any::<i128>();
    order_bool: bool = any::<bool>();
    order_uuid: [u8; 16] = any::<[u8; 16]>();
    order_string: String = edgy_string();
    order_bytes: Vec<u8> = edgy_bytes();
    order_string_u32: (String, u32) = (edgy_string(), 0u32..3);
    order_i64_string_bool: (i64, String, bool) = (-2i64..2, edgy_string(), any::<bool>());
    order_bytes_string: (Vec<u8>, String) = (edgy_bytes(), edgy_string());
    order_nested: ((String, u8), Vec<u8>, i16) = ((edgy_string(), 0u8..2), edgy_bytes(), any::<i16>());
}

#[test]
fn earlier_tuple_components_decide_first() {
    let s = |x: &str| x.to_string();
    let ordered: [((String, u32), (String, u32)); 4] = [
        ((s("a"), 2), (s("ab"), 1)),
        ((s("a"), 9), (s("a\0"), 0)),
        ((s(""), u32::MAX), (s("\0"), 0)),
        ((s("a\0"), 5), (s("a\u{1}"), 0)),
    ];
    for (a, b) in ordered {
        assert!(a < b && a.key_bytes() < b.key_bytes(), "{a:?} < {b:?}");
    }
}

/// Decoding arbitrary bytes never panics, and whatever decodes is the one
/// canonical encoding of its value.
fn check_decode_is_canonical<K: Key + Debug>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(key) = K::from_key_bytes(bytes) {
        prop_assert_eq!(key.key_bytes(), bytes, "{:?}", key);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_key_bytes_decode_canonically_or_fail(bytes in edgy_bytes()) {
        check_decode_is_canonical::<u32>(&bytes)?;
        check_decode_is_canonical::<i16>(&bytes)?;
        check_decode_is_canonical::<bool>(&bytes)?;
        check_decode_is_canonical::<String>(&bytes)?;
        check_decode_is_canonical::<(String, u8)>(&bytes)?;
        check_decode_is_canonical::<(Vec<u8>, bool, u8)>(&bytes)?;
        check_decode_is_canonical::<(String, String)>(&bytes)?;
    }

    /// A scan of a typed table returns the model's keys in the model's
    /// order, forwards and backwards.
    #[test]
    fn scans_match_a_btreemap(keys in prop::collection::vec((edgy_string(), 0u32..4), 0..12)) {
        const T: TableDef<(String, u32), u32> = TableDef::new("t");
        let (_dir, db) = open();
        let mut model = BTreeMap::new();
        let mut tx = db.begin();
        for (i, k) in keys.iter().enumerate() {
            tx.typed(T).put(k, &(i as u32)).expect("put");
            model.insert(k.clone(), i as u32);
        }
        tx.commit().expect("commit");
        let view = db.snapshot().typed(T);
        let got: Vec<_> = view.iter().expect("iter").collect::<Result<_, _>>().expect("decode");
        let want: Vec<_> = model.clone().into_iter().collect();
        prop_assert_eq!(&got, &want);
        let got: Vec<_> = view.iter().expect("iter").rev().collect::<Result<_, _>>().expect("decode");
        let want: Vec<_> = model.into_iter().rev().collect();
        prop_assert_eq!(got, want);
    }

    /// Arbitrary value bytes under a valid schema: a value or a typed
    /// error, never a panic or a huge allocation.
    #[test]
    fn arbitrary_value_bytes_decode_or_fail(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let (_dir, db) = shared_db();
        put_raw(db, "user", &7u64.to_be_bytes(), &bytes);
        match db.snapshot().typed(USERS).get(&7) {
            Ok(value) => prop_assert!(value.is_some()),
            Err(err) => prop_assert!(matches!(err, TypedError::ValueDecode { .. }), "{}", err),
        }
    }
}

/// One database for the garbage-value proptest, with a valid schema entry.
fn shared_db() -> &'static (tempfile::TempDir, Db) {
    static DB: std::sync::OnceLock<(tempfile::TempDir, Db)> = std::sync::OnceLock::new();
    DB.get_or_init(|| {
        let (dir, db) = open();
        put_raw(&db, SCHEMA_TABLE, b"user", &schema_entry(CODEC_ID, "u64"));
        (dir, db)
    })
}

#[test]
fn typed_handles_and_errors_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TableDef<u64, User>>();
    assert_send_sync::<TableView<(String, u32), User>>();
    assert_send_sync::<timecask::typed::TypedRange<u64, User>>();
    assert_send_sync::<TypedError>();
    assert_send_sync::<Value>();
}
