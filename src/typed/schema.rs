//! Schema entries: the codec and key type each typed table was written
//! with, kept in the reserved table [`SCHEMA_TABLE`].
//!
//! The entry of table `t` is stored under key `t` as a small JSON object,
//! `{"codec":"bincode2-serde-standard","key":"u64"}`, readable with the byte
//! API and the CLI. It is written in the same transaction as the first
//! typed write to `t` and checked on the first access of every typed
//! handle, so a table is never decoded with a codec or key type other than
//! the ones it was written with.

use serde::{Deserialize, Serialize};

use super::TypedError;
use super::codec::CODEC_ID;
use super::key::Key;

/// The reserved table holding one schema entry per typed table.
///
/// ```
/// assert_eq!(timecask::typed::SCHEMA_TABLE, "__timecask_schema");
/// ```
pub const SCHEMA_TABLE: &str = "__timecask_schema";

/// Table names starting with this are timecask's own; typed handles refuse
/// them.
const RESERVED_PREFIX: &str = "__timecask";

#[derive(Serialize, Deserialize)]
struct SchemaEntry {
    codec: String,
    key: String,
}

/// What a handle knows about its table's schema entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SchemaState {
    /// Not looked at yet.
    Unchecked,
    /// The entry exists and matches.
    Present,
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

/// The entry a table with key type `K` and this build's codec has.
pub(crate) fn entry_bytes<K: Key>() -> Vec<u8> {
    let entry = SchemaEntry {
        codec: CODEC_ID.to_string(),
        key: K::type_name(),
    };
    serde_json::to_vec(&entry).expect("two strings serialize to JSON")
}

/// Checks the stored entry of `table` against codec and key type `K`.
pub(crate) fn check_entry<K: Key>(table: &str, stored: &[u8]) -> Result<(), TypedError> {
    let entry: SchemaEntry = serde_json::from_slice(stored).map_err(|_| {
        // Not an entry this build understands: report what is there.
        TypedError::CodecMismatch {
            table: table.to_string(),
            found: String::from_utf8_lossy(stored).into_owned(),
            expected: CODEC_ID,
        }
    })?;
    if entry.codec != CODEC_ID {
        return Err(TypedError::CodecMismatch {
            table: table.to_string(),
            found: entry.codec,
            expected: CODEC_ID,
        });
    }
    let expected = K::type_name();
    if entry.key != expected {
        return Err(TypedError::KeyTypeMismatch {
            table: table.to_string(),
            found: entry.key,
            expected,
        });
    }
    Ok(())
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
        let bytes = entry_bytes::<u64>();
        assert_eq!(
            bytes,
            br#"{"codec":"bincode2-serde-standard","key":"u64"}"#.to_vec()
        );
        assert!(check_entry::<u64>("t", &bytes).is_ok());
        let err = check_entry::<String>("t", &bytes).expect_err("key type differs");
        assert!(
            matches!(&err, TypedError::KeyTypeMismatch { found, .. } if found == "u64"),
            "{err}"
        );
        let other = br#"{"codec":"postcard-1","key":"u64"}"#;
        let err = check_entry::<u64>("t", other).expect_err("codec differs");
        assert!(
            matches!(&err, TypedError::CodecMismatch { found, .. } if found == "postcard-1"),
            "{err}"
        );
        let err = check_entry::<u64>("t", b"\xff").expect_err("not JSON");
        assert!(matches!(err, TypedError::CodecMismatch { .. }), "{err}");
        assert!(check_name("__timecask_x").is_err());
        assert!(check_name("user").is_ok());
    }
}
