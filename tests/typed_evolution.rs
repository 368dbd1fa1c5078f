//! Schema evolution of typed tables: one table's history written with four
//! successive versions of its struct (a field added, one removed, one
//! renamed) reads back whole with the newest struct and with the oldest,
//! through get, as_of, history, iter, diff, changesets and revert; a field
//! that changes type is a typed error naming table, key, txid and field;
//! compact (bincode) tables and tables of older builds keep their codec.

use serde::{Deserialize, Serialize};
use timecask::typed::{Codec, SCHEMA_TABLE, TableSchema, Value, changeset_values};
use timecask::{Config, Db, Durability, HistoryQuery, KeyEncode, TableDef, TxId, TypedError};

/// The first struct. Fields a later version may drop are optional, so
/// that this oldest reader still decodes every later row.
mod v1 {
    #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    pub struct User {
        pub name: String,
        pub email: Option<String>,
        pub age: Option<u32>,
    }
}

/// A field added: `nickname`, defaulted for old rows.
mod v2 {
    #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    pub struct User {
        pub name: String,
        pub email: Option<String>,
        pub age: Option<u32>,
        #[serde(default)]
        pub nickname: Option<String>,
    }
}

/// A field removed: `age`.
mod v3 {
    #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    pub struct User {
        pub name: String,
        pub email: Option<String>,
        #[serde(default)]
        pub nickname: Option<String>,
    }
}

/// A field renamed: `email` is now `mail`; old rows are read by alias.
mod v4 {
    #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    pub struct User {
        pub name: String,
        #[serde(alias = "email")]
        pub mail: Option<String>,
        #[serde(default)]
        pub nickname: Option<String>,
    }
}

/// A change serde cannot bridge: `nickname` became a number.
mod v5 {
    #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    pub struct User {
        pub name: String,
        #[serde(alias = "email")]
        pub mail: Option<String>,
        #[serde(default)]
        pub nickname: Option<u64>,
    }
}

const V1: TableDef<u64, v1::User> = TableDef::new("user");
const V2: TableDef<u64, v2::User> = TableDef::new("user");
const V3: TableDef<u64, v3::User> = TableDef::new("user");
const V4: TableDef<u64, v4::User> = TableDef::new("user");
const V5: TableDef<u64, v5::User> = TableDef::new("user");

fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        durability: Durability::Buffered,
        ..Config::default()
    };
    let db = Db::open_with(dir.path(), config).expect("open");
    (dir, db)
}

fn s(text: &str) -> Option<String> {
    Some(text.to_string())
}

/// The txids of the four struct versions' writes.
struct Written {
    t1: TxId,
    t2: TxId,
    t3: TxId,
    t4: TxId,
}

/// Key 1 through all four versions; key 2 only by v1; key 3 only by v4.
fn write_history(db: &Db) -> Written {
    let mut tx = db.begin();
    let alice = v1::User {
        name: "Alice".into(),
        email: s("a@x"),
        age: Some(30),
    };
    tx.typed(V1).insert(&1, &alice).expect("v1 insert");
    let bob = v1::User {
        name: "Bob".into(),
        email: None,
        age: Some(40),
    };
    tx.typed(V1).insert(&2, &bob).expect("v1 insert");
    let t1 = tx.commit().expect("commit").expect("txid");

    let mut tx = db.begin();
    let mut users = tx.typed(V2);
    let mut user = users.get(&1).expect("v2 reads v1").expect("present");
    assert_eq!(user.nickname, None, "an added field defaults");
    user.nickname = s("Al");
    user.age = Some(31);
    users.update(&1, &user).expect("v2 update");
    let t2 = tx.commit().expect("commit").expect("txid");

    let mut tx = db.begin();
    let mut users = tx.typed(V3);
    let mut user = users.get(&1).expect("v3 reads v2").expect("present");
    user.name = "Alicia".into();
    users.update(&1, &user).expect("v3 update");
    let t3 = tx.commit().expect("commit").expect("txid");

    let mut tx = db.begin();
    let mut users = tx.typed(V4);
    let mut user = users.get(&1).expect("v4 reads v3").expect("present");
    assert_eq!(user.mail, s("a@x"), "a renamed field reads its old name");
    user.mail = s("alicia@x");
    users.update(&1, &user).expect("v4 update");
    let carol = v4::User {
        name: "Carol".into(),
        mail: s("c@x"),
        nickname: None,
    };
    users.insert(&3, &carol).expect("v4 insert");
    let t4 = tx.commit().expect("commit").expect("txid");
    Written { t1, t2, t3, t4 }
}

fn v4_user(name: &str, mail: Option<&str>, nickname: Option<&str>) -> v4::User {
    v4::User {
        name: name.into(),
        mail: mail.map(Into::into),
        nickname: nickname.map(Into::into),
    }
}

fn v1_user(name: &str, email: Option<&str>, age: Option<u32>) -> v1::User {
    v1::User {
        name: name.into(),
        email: email.map(Into::into),
        age,
    }
}

/// Reads key 1's whole history, every as-of point and every row through
/// `def`, and checks them against `want` (key 1's values at t1..t4).
#[track_caller]
fn check_reads<V>(db: &Db, w: &Written, def: TableDef<u64, V>, want: [V; 4], others: [V; 2])
where
    V: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Clone,
{
    let view = db.snapshot().typed(def);
    let history: Vec<V> = view
        .history(&1, HistoryQuery::all())
        .expect("history")
        .into_iter()
        .map(|v| v.value.expect("no deletes"))
        .collect();
    assert_eq!(history, want);
    let newest_first: Vec<V> = view
        .history(&1, HistoryQuery::all().newest_first())
        .expect("history")
        .into_iter()
        .map(|v| v.value.expect("no deletes"))
        .collect();
    assert_eq!(newest_first, want.iter().rev().cloned().collect::<Vec<_>>());
    for (txid, value) in [w.t1, w.t2, w.t3, w.t4].into_iter().zip(&want) {
        let as_of = db.as_of(txid).expect("as_of").typed(def);
        assert_eq!(
            as_of.get(&1).expect("get").as_ref(),
            Some(value),
            "as of {txid}"
        );
        assert_eq!(
            view.get_as_of(&1, txid).expect("get_as_of").as_ref(),
            Some(value)
        );
        let version = as_of
            .get_version(&1)
            .expect("get_version")
            .expect("present");
        assert_eq!(version.txid, txid);
    }
    assert_eq!(view.get(&1).expect("get").as_ref(), Some(&want[3]));
    let rows: Vec<(u64, V)> = view
        .iter()
        .expect("iter")
        .collect::<Result<_, _>>()
        .expect("every row decodes");
    let [two, three] = others;
    assert_eq!(rows, [(1, want[3].clone()), (2, two), (3, three)]);
    // The byte API's diff, decoded with the same struct.
    let diff = db.diff("user", w.t1, w.t4).expect("diff");
    assert_eq!(diff.len(), 2, "keys 1 and 3 changed: {diff:?}");
    let mut tx = db.begin();
    let users = tx.typed(def);
    let in_tx: Vec<(u64, V)> = users
        .range(1..=1)
        .expect("range")
        .collect::<Result<_, _>>()
        .expect("decode");
    assert_eq!(in_tx, [(1, want[3].clone())]);
    tx.abort();
}

#[test]
fn the_newest_struct_reads_every_old_version() {
    let (_dir, db) = open();
    let w = write_history(&db);
    check_reads(
        &db,
        &w,
        V4,
        [
            v4_user("Alice", Some("a@x"), None),
            v4_user("Alice", Some("a@x"), Some("Al")),
            v4_user("Alicia", Some("a@x"), Some("Al")),
            v4_user("Alicia", Some("alicia@x"), Some("Al")),
        ],
        [
            v4_user("Bob", None, None),
            v4_user("Carol", Some("c@x"), None),
        ],
    );
}

#[test]
fn the_oldest_struct_reads_every_new_version() {
    let (_dir, db) = open();
    let w = write_history(&db);
    check_reads(
        &db,
        &w,
        V1,
        [
            v1_user("Alice", Some("a@x"), Some(30)),
            v1_user("Alice", Some("a@x"), Some(31)),
            // v3 dropped `age`, v4 renamed `email`: the old reader sees
            // them as absent.
            v1_user("Alicia", Some("a@x"), None),
            v1_user("Alicia", None, None),
        ],
        [v1_user("Bob", None, Some(40)), v1_user("Carol", None, None)],
    );
}

/// `changeset_at` of key 1 at each txid, as text.
fn changes<V: Serialize + serde::de::DeserializeOwned>(
    db: &Db,
    def: TableDef<u64, V>,
    txid: TxId,
) -> Vec<String> {
    let view = db.snapshot().typed(def);
    let changes = view.changeset_at(&1, txid).expect("changeset");
    changes.iter().map(ToString::to_string).collect()
}

/// The changeset of the stored values themselves, decoded without a Rust
/// type (what the CLI shows).
fn stored_changes(db: &Db, txid: TxId) -> Vec<String> {
    let view = db.snapshot();
    let schema = TableSchema::read(&view, "user")
        .expect("read schema")
        .expect("typed");
    let key = 1u64.key_bytes();
    let at = |t: u64| -> Option<Value> {
        let bytes = db.as_of(TxId(t)).ok()?.get("user", &key).ok()??;
        Some(schema.decode_value(&bytes).expect("self-describing"))
    };
    let (old, new) = (at(txid.0 - 1), at(txid.0));
    changeset_values(old.as_ref(), new.as_ref())
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn changesets_across_versions_name_the_right_fields() {
    let (_dir, db) = open();
    let w = write_history(&db);
    type Case<'a> = (TxId, &'a [&'a str], &'a [&'a str], &'a [&'a str]);
    // (txid, through the newest struct, through the oldest, as stored)
    let cases: [Case<'_>; 4] = [
        (
            w.t1,
            &[
                "name: (none) -> Alice",
                "mail: (none) -> a@x",
                "nickname: (none) -> null",
            ],
            &[
                "name: (none) -> Alice",
                "email: (none) -> a@x",
                "age: (none) -> 30",
            ],
            &[
                "name: (none) -> Alice",
                "email: (none) -> a@x",
                "age: (none) -> 30",
            ],
        ),
        (
            w.t2,
            &["nickname: null -> Al"],
            &["age: 30 -> 31"],
            &["age: 30 -> 31", "nickname: (none) -> Al"],
        ),
        (
            w.t3,
            &["name: Alice -> Alicia"],
            &["name: Alice -> Alicia", "age: 31 -> null"],
            &["name: Alice -> Alicia", "age: 31 -> (none)"],
        ),
        (
            w.t4,
            &["mail: a@x -> alicia@x"],
            &["email: a@x -> null"],
            &["email: a@x -> (none)", "mail: (none) -> alicia@x"],
        ),
    ];
    for (txid, newest, oldest, stored) in cases {
        assert_eq!(changes(&db, V4, txid), newest, "newest struct at {txid}");
        assert_eq!(changes(&db, V1, txid), oldest, "oldest struct at {txid}");
        assert_eq!(stored_changes(&db, txid), stored, "stored values at {txid}");
    }
}

#[test]
fn reverting_to_an_old_version_writes_it_back_readable() {
    let (_dir, db) = open();
    let w = write_history(&db);
    // Typed: read the v1 row with the newest struct and write it back.
    let old = db
        .as_of(w.t1)
        .expect("as_of")
        .typed(V4)
        .get(&1)
        .expect("get")
        .expect("present");
    let mut tx = db.begin();
    tx.typed(V4).put(&1, &old).expect("put");
    let t5 = tx.commit().expect("commit").expect("txid");
    assert_eq!(
        db.snapshot().typed(V4).get(&1).expect("get"),
        Some(v4_user("Alice", Some("a@x"), None))
    );
    // Bytes: the old bytes as they were (v1's field names).
    let mut tx = db.begin();
    tx.revert("user", 1u64.key_bytes(), w.t2).expect("revert");
    let t6 = tx.commit().expect("commit").expect("txid");
    assert_eq!(t6, TxId(t5.0 + 1));
    assert_eq!(
        db.snapshot().typed(V4).get(&1).expect("get"),
        Some(v4_user("Alice", Some("a@x"), Some("Al")))
    );
    assert_eq!(
        db.snapshot().typed(V1).get(&1).expect("get"),
        Some(v1_user("Alice", Some("a@x"), Some(31)))
    );
}

#[test]
fn a_field_that_changes_type_is_a_typed_error_naming_it() {
    let (_dir, db) = open();
    let w = write_history(&db);
    // Key 1's newest version has nickname "Al": not a number.
    let err = db
        .snapshot()
        .typed(V5)
        .get(&1)
        .expect_err("a string is no u64");
    let TypedError::ValueDecode {
        table,
        key,
        txid,
        field,
        reason,
    } = &err
    else {
        panic!("not a ValueDecode: {err:?}");
    };
    assert_eq!(
        (table.as_str(), key.0.as_slice(), *txid, field.as_deref()),
        (
            "user",
            &1u64.to_be_bytes()[..],
            Some(w.t4),
            Some("nickname")
        )
    );
    assert_eq!(reason, "invalid type: string \"Al\", expected u64");
    let message = err.to_string();
    for part in [
        "\"user\"",
        "txid 4",
        "field nickname",
        "new field",
        "new table",
    ] {
        assert!(message.contains(part), "{part:?} missing from {message}");
    }
    // In a history, the first version with a string nickname is named.
    let err = db
        .snapshot()
        .typed(V5)
        .history(&1, HistoryQuery::all())
        .expect_err("t2 has a string nickname");
    assert!(
        matches!(&err, TypedError::ValueDecode { txid: Some(t), field: Some(f), .. } if *t == w.t2 && f == "nickname"),
        "{err:?}"
    );
    // Rows without a nickname still read, inside a transaction too.
    assert!(
        db.snapshot()
            .typed(V5)
            .get(&3)
            .expect("no nickname")
            .is_some()
    );
    let mut tx = db.begin();
    let err = tx.typed(V5).get(&1).expect_err("a string is no u64");
    assert!(
        matches!(&err, TypedError::ValueDecode { txid: Some(t), .. } if *t == w.t4),
        "{err:?}"
    );
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Sample {
    at: u64,
    celsius: f64,
}

#[test]
fn compact_tables_use_bincode_and_a_mismatch_is_named() {
    const COMPACT: TableDef<u64, Sample> = TableDef::compact("samples");
    const EVOLVABLE: TableDef<u64, Sample> = TableDef::new("samples");
    let (_dir, db) = open();
    let sample = Sample {
        at: 7,
        celsius: 21.5,
    };
    let mut tx = db.begin();
    tx.typed(COMPACT).put(&1, &sample).expect("put");
    tx.commit().expect("commit");
    let view = db.snapshot();
    assert_eq!(
        view.typed(COMPACT).get(&1).expect("get"),
        Some(sample.clone())
    );
    let raw = view
        .get("samples", 1u64.key_bytes())
        .expect("get")
        .expect("row");
    assert_eq!(raw.len(), 9, "a varint and an f64: {raw:02x?}");
    let schema = TableSchema::read(&view, "samples")
        .expect("schema")
        .expect("typed");
    assert_eq!(schema.codec, Codec::Bincode);
    assert!(matches!(
        schema.decode_value(&raw),
        Err(TypedError::NotSelfDescribing { .. })
    ));
    let err = view.typed(EVOLVABLE).get(&1).expect_err("codec differs");
    assert!(
        matches!(&err, TypedError::CodecMismatch { found, expected, .. } if found == "bincode2-serde-standard" && *expected == "msgpack"),
        "{err}"
    );
    let mut tx = db.begin();
    let err = tx
        .typed(EVOLVABLE)
        .put(&2, &sample)
        .expect_err("codec differs");
    assert!(matches!(err, TypedError::CodecMismatch { .. }), "{err}");
}

#[test]
fn tables_of_older_builds_keep_reading_and_writing_bincode() {
    const USERS: TableDef<u64, v1::User> = TableDef::new("user");
    let (_dir, db) = open();
    // What a build before evolvable tables wrote: an entry without a
    // format, and bincode rows.
    let legacy_entry = br#"{"codec":"bincode2-serde-standard","key":"u64"}"#;
    let alice = v1_user("Alice", Some("a@x"), Some(30));
    let bincode_row =
        bincode::serde::encode_to_vec(&alice, bincode::config::standard()).expect("encode");
    let mut tx = db.begin();
    tx.put(SCHEMA_TABLE, "user", legacy_entry).expect("put");
    tx.put("user", 1u64.key_bytes(), &bincode_row).expect("put");
    tx.commit().expect("commit");

    assert_eq!(
        db.snapshot().typed(USERS).get(&1).expect("get"),
        Some(alice)
    );
    let bob = v1_user("Bob", None, None);
    let mut tx = db.begin();
    tx.typed(USERS).put(&2, &bob).expect("put");
    tx.commit().expect("commit");
    let raw = db
        .snapshot()
        .get("user", 2u64.key_bytes())
        .expect("get")
        .expect("row");
    let expected =
        bincode::serde::encode_to_vec(&bob, bincode::config::standard()).expect("encode");
    assert_eq!(raw, expected, "the recorded codec wins");
    let entry = db.snapshot().get(SCHEMA_TABLE, "user").expect("get");
    assert_eq!(entry.as_deref(), Some(&legacy_entry[..]), "the entry stays");
}

/// FORMAT.md's examples, byte for byte: the `user` row of
/// `examples/users.rs` in both codecs, and its schema entry.
#[test]
fn the_value_encodings_are_pinned() {
    #[derive(Serialize, Deserialize)]
    struct User {
        name: String,
        email: String,
        age: u32,
    }
    const EVOLVABLE: TableDef<u64, User> = TableDef::new("user");
    const COMPACT: TableDef<u64, User> = TableDef::compact("user_compact");
    let (_dir, db) = open();
    let alice = User {
        name: "Alice".into(),
        email: "alice@example.com".into(),
        age: 30,
    };
    let mut tx = db.begin();
    tx.typed(EVOLVABLE).put(&1, &alice).expect("put");
    tx.typed(COMPACT).put(&1, &alice).expect("put");
    tx.commit().expect("commit");
    let view = db.snapshot();
    let raw = |table: &str| {
        view.get(table, 1u64.key_bytes())
            .expect("get")
            .expect("row")
    };
    let mut msgpack = vec![0x83, 0xa4];
    msgpack.extend_from_slice(b"name");
    msgpack.push(0xa5);
    msgpack.extend_from_slice(b"Alice");
    msgpack.push(0xa5);
    msgpack.extend_from_slice(b"email");
    msgpack.push(0xb1);
    msgpack.extend_from_slice(b"alice@example.com");
    msgpack.push(0xa3);
    msgpack.extend_from_slice(b"age");
    msgpack.push(0x1e);
    assert_eq!(raw("user"), msgpack);
    assert_eq!(msgpack.len(), 41);
    let mut bincode = vec![0x05];
    bincode.extend_from_slice(b"Alice");
    bincode.push(0x11);
    bincode.extend_from_slice(b"alice@example.com");
    bincode.push(0x1e);
    assert_eq!(raw("user_compact"), bincode);
    assert_eq!(bincode.len(), 25);
    let entry = view.get(SCHEMA_TABLE, "user").expect("get").expect("entry");
    assert_eq!(
        String::from_utf8(entry).expect("UTF-8"),
        r#"{"format":1,"codec":"msgpack","key":"u64","value":"typed_evolution::the_value_encodings_are_pinned::User"}"#
    );
}

/// The schema table stays out of transaction records after compaction
/// moved them into history runs, as it does while they are in the log.
#[test]
fn sealed_transaction_records_leave_the_schema_table_out() {
    let (_dir, db) = open();
    write_history(&db);
    let before: Vec<_> = db
        .log(..)
        .expect("log")
        .collect::<Result<Vec<_>, _>>()
        .expect("records");
    assert!(
        before
            .iter()
            .all(|r| r.changes.iter().all(|c| c.table != SCHEMA_TABLE)),
        "schema changes in the log before sealing"
    );
    db.compact().expect("compact");
    let after: Vec<_> = db
        .log(..)
        .expect("log")
        .collect::<Result<Vec<_>, _>>()
        .expect("records");
    assert_eq!(after, before, "records read from the runs");
    assert_eq!(db.snapshot().tables(), vec!["user".to_string()]);
}
