//! Schema entries: the codec and key type each typed table was written
//! with, kept in the reserved table [`SCHEMA_TABLE`].
//!
//! The entry of table `t` is stored under key `t` as a small JSON object,
//! `{"format":1,"codec":"msgpack","key":"u64","value":"app::User"}`
//! (FORMAT.md, "Typed tables"), readable with the byte API, the CLI and
//! any language, so tools decode a typed table without its Rust types
//! ([`TableSchema`]). It is written in the same transaction as the first
//! typed write to `t` and checked on the first access of every typed
//! handle, so a table is never decoded with a codec or key type other than
//! the ones it was written with.
//!
//! Entries without `format` come from builds before evolvable tables:
//! their codec is bincode, and it wins over the handle's, so old databases
//! keep reading (and writing) the way they were written.

use serde::{Deserialize, Serialize};

use super::TypedError;
use super::codec::Codec;
use super::key::Key;
use super::key_type::KeyType;
use super::value::Value;
use crate::Snapshot;

/// The reserved table holding one schema entry per typed table. An
/// internal table: it is never listed by `tables()` nor shown among a
/// transaction's changes, though the byte API reads it by name.
///
/// ```
/// assert_eq!(timecask::typed::SCHEMA_TABLE, "__timecask_schema");
/// ```
pub const SCHEMA_TABLE: &str = "__timecask_schema";

/// Table names starting with this are timecask's own; typed handles refuse
/// them.
const RESERVED_PREFIX: &str = "__timecask";

/// The schema entry format this build writes.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct SchemaEntry {
    /// Absent (0) in entries of builds before evolvable tables.
    #[serde(default)]
    format: u32,
    codec: String,
    key: String,
    /// `std::any::type_name` of the value type at the first write: for
    /// people, never checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

/// What a tool needs to decode a typed table without its Rust types: its
/// schema entry, read with [`TableSchema::read`].
///
/// ```
/// use timecask::typed::{Codec, TableSchema, Value};
/// use timecask::{Db, TableDef};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct User { name: String, age: u32 }
/// const USERS: TableDef<u64, User> = TableDef::new("user");
/// # fn main() -> Result<(), timecask::TypedError> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let db = Db::open(dir.path())?;
/// let mut tx = db.begin();
/// tx.typed(USERS).put(&7, &User { name: "Alice".into(), age: 30 })?;
/// tx.commit()?;
///
/// let view = db.snapshot();
/// let schema = TableSchema::read(&view, "user")?.expect("a typed table");
/// assert_eq!((schema.codec, schema.key_type.as_str()), (Codec::MessagePack, "u64"));
/// let (key, value) = view.iter("user")?.next().expect("one row")?;
/// assert_eq!(schema.decode_key(&key)?.to_string(), "7");
/// assert_eq!(schema.decode_value(&value)?.get("name"), Some(&Value::String("Alice".into())));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableSchema {
    /// The table.
    pub table: String,
    /// The codec of its values.
    pub codec: Codec,
    /// Its key type, as [`Key::type_name`] spells it (`u64`, `str`,
    /// `(str,u32)`).
    pub key_type: String,
    /// The Rust value type at the first write, for people; `None` in
    /// entries of older builds.
    pub value_type: Option<String>,
    /// The entry's format: 0 for entries of builds before evolvable
    /// tables, 1 now.
    pub format: u32,
}

impl TableSchema {
    /// Parses the stored entry of `table`.
    pub fn parse(table: &str, stored: &[u8]) -> Result<TableSchema, TypedError> {
        let unreadable = || TypedError::CodecMismatch {
            table: table.to_string(),
            found: String::from_utf8_lossy(stored).into_owned(),
            expected: "a schema entry of format 0 or 1",
        };
        let entry: SchemaEntry = serde_json::from_slice(stored).map_err(|_| unreadable())?;
        if entry.format > FORMAT {
            return Err(unreadable());
        }
        let codec = Codec::from_id(&entry.codec).ok_or_else(|| TypedError::CodecMismatch {
            table: table.to_string(),
            found: entry.codec.clone(),
            expected: "a codec of this build (msgpack, bincode2-serde-standard)",
        })?;
        Ok(TableSchema {
            table: table.to_string(),
            codec,
            key_type: entry.key,
            value_type: entry.value,
            format: entry.format,
        })
    }

    /// The schema entry of `table` as `view` sees it; `None` if the table
    /// is not typed.
    pub fn read(view: &Snapshot, table: &str) -> Result<Option<TableSchema>, TypedError> {
        view.get(SCHEMA_TABLE, table)?
            .map(|stored| TableSchema::parse(table, &stored))
            .transpose()
    }

    /// The key type, if it is one of the built-in [`Key`] types (a custom
    /// `Key` implementation has a name only its program knows).
    pub fn key(&self) -> Option<KeyType> {
        KeyType::parse(&self.key_type)
    }

    /// A stored key as a [`Value`] (integers, strings, byte strings,
    /// tuples as sequences).
    pub fn decode_key(&self, key: &[u8]) -> Result<Value, TypedError> {
        let key_error = |reason: String| TypedError::KeyDecode {
            table: self.table.clone(),
            key: crate::KeyBytes(key.to_vec()),
            reason,
        };
        let key_type = self.key().ok_or_else(|| {
            key_error(format!("key type {} is not a built-in one", self.key_type))
        })?;
        key_type.decode(key).map_err(|e| key_error(e.reason))
    }

    /// A stored value as a [`Value`] tree, without the Rust type: only for
    /// a self-describing codec ([`Codec::is_self_describing`]); bincode
    /// values are [`TypedError::NotSelfDescribing`].
    pub fn decode_value(&self, value: &[u8]) -> Result<Value, TypedError> {
        if !self.codec.is_self_describing() {
            return Err(TypedError::NotSelfDescribing {
                table: self.table.clone(),
                codec: self.codec,
            });
        }
        Value::from_stored(self.codec, value).map_err(|e| TypedError::ValueDecode {
            table: self.table.clone(),
            key: crate::KeyBytes(Vec::new()),
            txid: None,
            field: None,
            reason: e.reason,
        })
    }

    /// Encodes a value without the table's Rust type — a
    /// `serde_json::Value`, a [`Value`] tree — in this table's codec (what
    /// `timecask import` writes): only for a self-describing codec, where
    /// the table's struct then reads it by field name.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, TypedError> {
        if !self.codec.is_self_describing() {
            return Err(TypedError::NotSelfDescribing {
                table: self.table.clone(),
                codec: self.codec,
            });
        }
        super::codec::encode(self.codec, value).map_err(|reason| TypedError::ValueEncode {
            table: self.table.clone(),
            key: crate::KeyBytes(Vec::new()),
            reason,
        })
    }
}

/// What a handle knows about its table's schema entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SchemaState {
    /// Not looked at yet.
    Unchecked,
    /// The entry exists and matches; values use this codec.
    Present(Codec),
    /// No entry and no data: the first typed write creates the entry.
    Absent,
}

/// Refuses names reserved for timecask's own tables.
pub(crate) fn check_name(table: &str) -> Result<(), TypedError> {
    if table.starts_with(RESERVED_PREFIX) {
        return Err(TypedError::ReservedTable {
            table: table.to_string(),
        });
    }
    Ok(())
}

/// The entry a new table with key type `K`, value type `V` and `codec`
/// gets.
pub(crate) fn entry_bytes<K: Key, V>(codec: Codec) -> Vec<u8> {
    let entry = SchemaEntry {
        format: FORMAT,
        codec: codec.id().to_string(),
        key: K::type_name(),
        value: Some(std::any::type_name::<V>().to_string()),
    };
    serde_json::to_vec(&entry).expect("strings and a number serialize to JSON")
}

/// Checks the stored entry of `table` against key type `K` and the
/// handle's `codec`; returns the codec to use. An entry of format 0 (an
/// older build: always bincode) names the codec whatever the handle asks.
pub(crate) fn check_entry<K: Key>(
    table: &str,
    stored: &[u8],
    codec: Codec,
) -> Result<Codec, TypedError> {
    let schema = TableSchema::parse(table, stored)?;
    if schema.format > 0 && schema.codec != codec {
        return Err(TypedError::CodecMismatch {
            table: table.to_string(),
            found: schema.codec.id().to_string(),
            expected: codec.id(),
        });
    }
    let expected = K::type_name();
    if schema.key_type != expected {
        return Err(TypedError::KeyTypeMismatch {
            table: table.to_string(),
            found: schema.key_type,
            expected,
        });
    }
    Ok(schema.codec)
}

/// The state of a table with no schema entry: `Absent` if it holds no
/// live data, else it was written through the byte API.
pub(crate) fn absent_unless(table: &str, has_data: bool) -> Result<SchemaState, TypedError> {
    if has_data {
        return Err(TypedError::NotTyped {
            table: table.to_string(),
        });
    }
    Ok(SchemaState::Absent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_mismatches_are_named() {
        let bytes = entry_bytes::<u64, u32>(Codec::MessagePack);
        assert_eq!(
            bytes,
            br#"{"format":1,"codec":"msgpack","key":"u64","value":"u32"}"#.to_vec()
        );
        assert_eq!(
            check_entry::<u64>("t", &bytes, Codec::MessagePack).ok(),
            Some(Codec::MessagePack)
        );
        let err = check_entry::<String>("t", &bytes, Codec::MessagePack).expect_err("key type");
        assert!(
            matches!(&err, TypedError::KeyTypeMismatch { found, .. } if found == "u64"),
            "{err}"
        );
        let err = check_entry::<u64>("t", &bytes, Codec::Bincode).expect_err("codec differs");
        assert!(
            matches!(&err, TypedError::CodecMismatch { found, .. } if found == "msgpack"),
            "{err}"
        );
        let other = br#"{"format":1,"codec":"postcard-1","key":"u64"}"#;
        let err = check_entry::<u64>("t", other, Codec::MessagePack).expect_err("unknown codec");
        assert!(
            matches!(&err, TypedError::CodecMismatch { found, .. } if found == "postcard-1"),
            "{err}"
        );
        let newer = br#"{"format":2,"codec":"msgpack","key":"u64"}"#;
        assert!(check_entry::<u64>("t", newer, Codec::MessagePack).is_err());
        let err = check_entry::<u64>("t", b"\xff", Codec::MessagePack).expect_err("not JSON");
        assert!(matches!(err, TypedError::CodecMismatch { .. }), "{err}");
        assert!(check_name("__timecask_x").is_err());
        assert!(crate::index::is_internal_table(SCHEMA_TABLE));
        assert!(check_name("user").is_ok());
    }

    #[test]
    fn legacy_entries_keep_their_codec() {
        let legacy = br#"{"codec":"bincode2-serde-standard","key":"u64"}"#;
        for asked in [Codec::MessagePack, Codec::Bincode] {
            assert_eq!(
                check_entry::<u64>("t", legacy, asked).ok(),
                Some(Codec::Bincode)
            );
        }
        let schema = TableSchema::parse("t", legacy).expect("parse");
        assert_eq!((schema.format, schema.value_type), (0, None));
    }
}
