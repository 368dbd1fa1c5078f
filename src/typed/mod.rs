//! Typed tables: serde values, order-preserving keys, field-level
//! changesets, on top of the byte API.
//!
//! A [`TableDef<K, V>`](TableDef) names a table and its types. Keys are any
//! [`Key`] (integers, strings, bytes, `bool`, `[u8; 16]` and tuples of
//! these), encoded so that byte order equals value order; values are any
//! `Serialize + DeserializeOwned` type, encoded by the table's [`Codec`]:
//! MessagePack with field names for [`TableDef::new`] (structs can gain,
//! lose and rename fields, every old version stays readable), bincode for
//! [`TableDef::compact`] (fixed layout, smaller). Open a table in a write transaction with
//! [`WriteTx::typed`](crate::WriteTx::typed) and on any view with
//! [`Snapshot::typed`](crate::Snapshot::typed).
//!
//! The quick-start scenario (SPEC.md §5): a `user` table with `name`,
//! `email` and `age`; insert Alice (tx 1), rename her to Bob (tx 2), then
//! read the present, the past, the history and what tx 2 changed, and
//! revert to tx 1 as tx 3.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use timecask::{Db, HistoryQuery, Op, TableDef, TxId};
//!
//! #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
//! struct User {
//!     name: String,
//!     email: String,
//!     age: u32,
//! }
//!
//! const USERS: TableDef<u64, User> = TableDef::new("user");
//!
//! # fn main() -> Result<(), timecask::TypedError> {
//! let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path())?;
//! let alice = User { name: "Alice".into(), email: "alice@example.com".into(), age: 30 };
//!
//! // tx 1: insert Alice.
//! let mut tx = db.begin();
//! tx.set_meta("user", "admin")?;
//! tx.typed(USERS).insert(&1, &alice)?;
//! let t1 = tx.commit()?.expect("a change was written");
//!
//! // tx 2: rename her to Bob.
//! let mut tx = db.begin();
//! tx.set_meta("user", "alice")?;
//! tx.typed(USERS).update(&1, &User { name: "Bob".into(), ..alice.clone() })?;
//! let t2 = tx.commit()?.expect("a change was written");
//!
//! // The current row, and the row as of tx 1.
//! let users = db.snapshot().typed(USERS);
//! assert_eq!(users.get(&1)?.map(|u| u.name), Some("Bob".to_string()));
//! assert_eq!(db.as_of(t1)?.typed(USERS).get(&1)?, Some(alice.clone()));
//!
//! // The full history, with ops, txids and who did it.
//! let history = users.history(&1, HistoryQuery::all())?;
//! let ops: Vec<_> = history.iter().map(|v| (v.txid, v.op, v.meta["user"].as_str())).collect();
//! assert_eq!(ops, [(t1, Op::Insert, "admin"), (t2, Op::Update, "alice")]);
//! assert_eq!(history[0].end_txid, Some(t2));
//!
//! // What tx 2 changed, field by field.
//! let changes: Vec<String> = users.changeset_at(&1, t2)?.iter().map(|c| c.to_string()).collect();
//! assert_eq!(changes, ["name: Alice -> Bob"]);
//!
//! // Revert to tx 1: write the old value back, as a new version.
//! let old = db.as_of(t1)?.typed(USERS).get(&1)?.expect("user 1 existed at tx 1");
//! let mut tx = db.begin();
//! tx.set_meta("reason", format!("revert to tx {t1}"))?;
//! tx.typed(USERS).put(&1, &old)?;
//! let t3 = tx.commit()?.expect("a change was written");
//! assert_eq!(t3, TxId(3));
//! assert_eq!(db.snapshot().typed(USERS).get(&1)?, Some(alice));
//! # Ok(()) }
//! ```
//!
//! Each typed table has a schema entry in [`SCHEMA_TABLE`] naming its
//! codec and key type, written with its first typed write; a handle whose
//! types do not match fails with [`TypedError::CodecMismatch`] or
//! [`TypedError::KeyTypeMismatch`] instead of decoding garbage. Tools read
//! the entry with [`TableSchema`] and decode rows without the Rust types.
//!
//! # Evolving a value type
//!
//! A history outlives many versions of its struct. With [`TableDef::new`]
//! values carry their field names, so the struct may gain a field (give it
//! `#[serde(default)]`, or make it an `Option`), lose one (old rows keep it;
//! it is ignored) or rename one (`#[serde(alias = "old_name")]`), and every
//! old version still reads — through `get`, `as_of`, `history`,
//! changesets and reverts. An old reader also reads new rows if the fields
//! that may disappear are `Option`s or `#[serde(default)]`.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use timecask::{Db, TableDef, TxId};
//!
//! #[derive(Serialize, Deserialize)]
//! struct User { name: String, email: String }
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct UserV2 {
//!     name: String,
//!     #[serde(alias = "email")]
//!     mail: String,
//!     #[serde(default)]
//!     nickname: Option<String>,
//! }
//!
//! # fn main() -> Result<(), timecask::TypedError> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let db = Db::open(dir.path())?;
//! let mut tx = db.begin();
//! let alice = User { name: "Alice".into(), email: "a@x".into() };
//! tx.typed(TableDef::<u64, User>::new("user")).insert(&1, &alice)?;
//! tx.commit()?;
//!
//! let users = db.as_of(TxId(1))?.typed(TableDef::<u64, UserV2>::new("user"));
//! let old = users.get(&1)?.expect("written by the old struct");
//! assert_eq!(old, UserV2 { name: "Alice".into(), mail: "a@x".into(), nickname: None });
//! # Ok(()) }
//! ```
//!
//! What serde cannot bridge — a field that changes type, a new field
//! without a default — is [`TypedError::ValueDecode`] naming the table,
//! key, txid and field. History is never rewritten: store the new shape
//! under a new field name (keeping or aliasing the old one), or in a new
//! table. [`TableDef::compact`] tables (bincode) store no field names and
//! cannot evolve at all; see [`Codec`] for which to pick when.

mod changeset;
pub(crate) mod codec;
mod key;
mod key_type;
mod schema;
mod table;
mod value;
mod value_ref;
mod value_serde;

pub use changeset::{FieldChange, changeset, changeset_values};
pub use codec::Codec;
pub use key::{Key, KeyDecodeError, KeyEncode, KeyPosition};
pub use key_type::KeyType;
pub use schema::{SCHEMA_TABLE, TableSchema};
pub use table::{Table, TableDef, TableView, TypedRange, TypedVersion};
pub use value::{Value, ValueError};
pub use value_ref::ValueRef;

use crate::{KeyBytes, TxId};

/// Everything that can go wrong in the typed layer: an error of the
/// database underneath, or a value or key that does not fit the types.
///
/// Converts from [`timecask::Error`](crate::Error), so `?` works on both in
/// a function returning `Result<_, TypedError>`.
///
/// ```
/// # use timecask::{Db, TableDef, TypedError};
/// # fn main() -> Result<(), TypedError> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let db = Db::open(dir.path())?;
/// const AS_NUMBERS: TableDef<u64, u64> = TableDef::new("t");
/// const AS_TEXT: TableDef<String, u64> = TableDef::new("t");
/// let mut tx = db.begin();
/// tx.typed(AS_NUMBERS).put(&1, &10)?;
/// tx.commit()?;
/// let err = db.snapshot().typed(AS_TEXT).get("1").unwrap_err();
/// assert!(matches!(err, TypedError::KeyTypeMismatch { .. }));
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TypedError {
    /// The database underneath failed.
    #[error(transparent)]
    Db(#[from] crate::Error),
    /// The table was written with another value codec (or its schema
    /// entry is not one this build reads).
    #[error(
        "table {table:?} was written with value codec {found:?}, the TableDef asks for {expected:?}; open it with the codec it was written with (TableDef::new: msgpack, TableDef::compact: bincode2-serde-standard)"
    )]
    CodecMismatch {
        /// The table.
        table: String,
        /// The codec id stored with the table (or the unreadable entry).
        found: String,
        /// What the handle asked for ([`Codec::id`]).
        expected: &'static str,
    },
    /// A tool asked for a value tree of a table whose codec stores no
    /// structure ([`Codec::Bincode`]): only its Rust type can decode it.
    #[error(
        "table {table:?} uses the fixed-layout codec {codec}, which cannot be decoded without its Rust type"
    )]
    NotSelfDescribing {
        /// The table.
        table: String,
        /// Its codec.
        codec: Codec,
    },
    /// The table was written with another key type.
    #[error(
        "table {table:?} has keys of type {found}, the TableDef says {expected}; use the key type it was written with"
    )]
    KeyTypeMismatch {
        /// The table.
        table: String,
        /// The key type stored with the table.
        found: String,
        /// The key type of the `TableDef` ([`Key::type_name`]).
        expected: String,
    },
    /// The table holds data written through the byte API and has no
    /// schema entry, so its values cannot be trusted to decode.
    #[error(
        "table {table:?} holds data written through the byte API and has no typed schema; read it with the byte API"
    )]
    NotTyped {
        /// The table.
        table: String,
    },
    /// The table name is reserved for timecask's own tables.
    #[error(
        "table name {table:?} is reserved for timecask (prefix \"__timecask\"); choose another"
    )]
    ReservedTable {
        /// The table.
        table: String,
    },
    /// A stored key is not a valid encoding of the table's key type.
    #[error("key {key} in table {table:?} does not decode: {reason}")]
    KeyDecode {
        /// The table.
        table: String,
        /// The stored key bytes.
        key: KeyBytes,
        /// What was wrong.
        reason: String,
    },
    /// A stored value does not decode as the table's value type: the
    /// value type changed in a way serde cannot bridge since it was written
    /// (a field changed type, a field without `#[serde(default)]` was
    /// added, or, with [`Codec::Bincode`], any change at all).
    ///
    /// History is never rewritten: give the new data a new field (with
    /// `#[serde(default)]`, the old one kept or renamed with
    /// `#[serde(alias)]`), or write it to a new table.
    #[error(
        "value of key {key} in table {table:?}{} does not decode as the table's value type{}: {reason}; old versions are never rewritten: add a new field (#[serde(default)]) or use a new table",
        txid.map(|t| format!(" at txid {t}")).unwrap_or_default(),
        field.as_ref().map(|f| format!(" (field {f})")).unwrap_or_default()
    )]
    ValueDecode {
        /// The table.
        table: String,
        /// The key bytes.
        key: KeyBytes,
        /// The txid of the version that does not decode; `None` for a
        /// write of the current transaction, or where the caller gave
        /// bytes.
        txid: Option<TxId>,
        /// The field that did not decode (`age`, `address.city`,
        /// `tags[2]`), where the codec can tell.
        field: Option<String>,
        /// The codec's message.
        reason: String,
    },
    /// A value could not be encoded (its `Serialize` implementation failed
    /// or is not supported by the codec).
    #[error("value for key {key} in table {table:?} does not encode: {reason}")]
    ValueEncode {
        /// The table.
        table: String,
        /// The key bytes.
        key: KeyBytes,
        /// The codec's message.
        reason: String,
    },
    /// A value could not be turned into a [`Value`] tree for a changeset
    /// (its `Serialize` implementation failed).
    #[error("cannot compute a changeset: {reason}")]
    Changeset {
        /// The serializer's message.
        reason: String,
    },
}
