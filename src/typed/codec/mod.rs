//! The value codecs: the one place that knows how typed values become bytes.
//!
//! - [`Codec::MessagePack`], the default of [`TableDef::new`](super::TableDef::new):
//!   MessagePack through `rmp-serde` with structs as maps of field names
//!   (`to_vec_named`). Self-describing: a struct may gain fields
//!   (`#[serde(default)]`), lose them or rename them (`#[serde(alias)]`) and
//!   every old version still decodes; any MessagePack library reads it.
//!   Values are encoded and decoded by rmp-serde; [`msgpack`], our reader
//!   of the same format (tested against rmp-serde's), explains failed
//!   decodes and reads values without their Rust type.
//! - [`Codec::Bincode`], from [`TableDef::compact`](super::TableDef::compact):
//!   bincode 2.0.1 through serde with the `standard` configuration
//!   (little-endian, variable-length integers), decoded by [`decoder`], our
//!   reader of the same format that borrows from the stored bytes (tested
//!   against bincode's own decoder). No field names: smaller and faster,
//!   but the value type's layout is fixed for the table's whole history,
//!   and types that need `deserialize_any` (`#[serde(flatten)]`, untagged
//!   enums, `serde_json::Value`) do not round-trip through it.
//!
//! The codec of a table is recorded in its schema entry; the log and run
//! formats never depend on it.

mod decoder;
pub(crate) mod msgpack;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::limits::VALUE_SIZE_MAX;

/// How a typed table encodes its values, recorded in the table's schema
/// entry (see [`SCHEMA_TABLE`](super::SCHEMA_TABLE)).
///
/// Pick [`Codec::MessagePack`] (what [`TableDef::new`](super::TableDef::new)
/// uses) unless the value type will never change and every byte or
/// nanosecond counts: a history outlives many versions of a struct, and
/// only a self-describing encoding lets the newest struct read the oldest
/// rows. Pick [`Codec::Bincode`] ([`TableDef::compact`](super::TableDef::compact))
/// for fixed-layout values (numbers, fixed records, sensor samples): about
/// half the size of MessagePack with field names and a little faster to
/// decode, but a field added to the struct makes every old row fail to
/// decode, and tools without the Rust types cannot show the values.
///
/// ```
/// use timecask::typed::Codec;
/// assert_eq!(Codec::MessagePack.id(), "msgpack");
/// assert_eq!(Codec::from_id("bincode2-serde-standard"), Some(Codec::Bincode));
/// assert!(Codec::MessagePack.is_self_describing());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Codec {
    /// MessagePack, structs as maps with field names (`rmp-serde`'s
    /// `to_vec_named`): evolvable and readable by any language. Id
    /// `"msgpack"`.
    MessagePack,
    /// bincode 2.0.1, `standard` configuration: compact, fixed layout. Id
    /// `"bincode2-serde-standard"`.
    Bincode,
}

impl Codec {
    /// The id stored in schema entries.
    pub const fn id(self) -> &'static str {
        match self {
            Codec::MessagePack => "msgpack",
            Codec::Bincode => "bincode2-serde-standard",
        }
    }

    /// The codec with id `id`, if this build has it.
    pub fn from_id(id: &str) -> Option<Codec> {
        [Codec::MessagePack, Codec::Bincode]
            .into_iter()
            .find(|c| c.id() == id)
    }

    /// Whether the bytes carry their own structure (field names, types),
    /// so they decode without the Rust type ([`Value::from_stored`](super::Value::from_stored)).
    pub const fn is_self_describing(self) -> bool {
        matches!(self, Codec::MessagePack)
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// The bincode configuration, with a decode limit so that a corrupt
/// length prefix cannot make the decoder allocate more than a value can
/// hold. The limit does not change the encoding.
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<VALUE_SIZE_MAX>()
}

/// Why a value did not decode: the codec's message and, where the codec
/// can tell, the path of the field (`address.city`, `tags[2]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeFailure {
    pub(crate) reason: String,
    pub(crate) field: Option<String>,
}

impl From<String> for DecodeFailure {
    fn from(reason: String) -> DecodeFailure {
        DecodeFailure {
            reason,
            field: None,
        }
    }
}

/// Encodes `value`; the error is the codec's message.
pub(crate) fn encode<V: Serialize + ?Sized>(codec: Codec, value: &V) -> Result<Vec<u8>, String> {
    match codec {
        Codec::MessagePack => rmp_serde::to_vec_named(value).map_err(|e| e.to_string()),
        Codec::Bincode => bincode::serde::encode_to_vec(value, config()).map_err(|e| e.to_string()),
    }
}

/// Decodes a whole value; bytes left over are an error.
pub(crate) fn decode<V: DeserializeOwned>(codec: Codec, bytes: &[u8]) -> Result<V, DecodeFailure> {
    decode_borrowed(codec, bytes)
}

/// Decodes a whole value that may borrow strings and byte slices from
/// `bytes`; bytes left over are an error.
pub(crate) fn decode_borrowed<'a, T: Deserialize<'a>>(
    codec: Codec,
    bytes: &'a [u8],
) -> Result<T, DecodeFailure> {
    match codec {
        // rmp-serde on the hot path (measured faster than our reader, see
        // `msgpack`); our reader explains a failure: serde's message
        // ("invalid type: string, expected u64") and the field's path.
        Codec::MessagePack => rmp_serde::from_slice(bytes).map_err(|e| {
            let (reason, field) = msgpack::explain_failure::<T>(bytes, e.to_string());
            DecodeFailure { reason, field }
        }),
        Codec::Bincode => decoder::decode_from(bytes).map_err(|e| e.to_string().into()),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    use super::*;
    use crate::fuzz_harness::{Borrowing, ByteBuf, Marker, Meters, Owning, Rich, Shape, agree};
    use crate::typed::Value;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let value = (String::from("Alice"), 30u32, vec![1u8, 2]);
        let bytes = encode(Codec::Bincode, &value).expect("encode");
        assert_eq!(
            decode::<(String, u32, Vec<u8>)>(Codec::Bincode, &bytes).map_err(|e| e.reason),
            Ok(value)
        );
        let mut longer = bytes.clone();
        longer.push(0);
        let err = decode::<(String, u32, Vec<u8>)>(Codec::Bincode, &longer)
            .map_err(|e| e.reason)
            .expect_err("trailing byte");
        assert!(err.contains("trailing"), "{err}");
        // A varint length prefix (253: a u64 follows) of 2^64 - 1 bytes:
        // an error, not an allocation.
        let huge = [253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(decode::<String>(Codec::Bincode, &huge).is_err());
        assert!(decode::<Vec<u8>>(Codec::Bincode, &huge).is_err());
    }

    fn shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            Just(Shape::Unit),
            any::<i16>().prop_map(Shape::Newtype),
            (any::<u8>(), any::<char>()).prop_map(|(a, b)| Shape::Tuple(a, b)),
            (any::<Option<u64>>(), ".{0,8}").prop_map(|(a, b)| Shape::Struct { a, b }),
        ]
    }

    /// Values of the fuzz target's richest type.
    fn rich() -> impl Strategy<Value = Rich> {
        let unsigned = (
            any::<u8>(),
            any::<u16>(),
            any::<u32>(),
            any::<u64>(),
            any::<u128>(),
            any::<usize>(),
        );
        let signed = (
            any::<i8>(),
            any::<i16>(),
            any::<i32>(),
            any::<i64>(),
            any::<i128>(),
            any::<isize>(),
        );
        let scalars = (
            any::<bool>(),
            any::<f32>(),
            any::<f64>(),
            any::<char>(),
            any::<u32>(),
        );
        let bytes = || prop::collection::vec(any::<u8>(), 0..300);
        let composite = (
            ".{0,300}",
            bytes(),
            bytes(),
            prop::option::of(".{0,8}"),
            prop::collection::vec(shape(), 0..6),
            prop::collection::btree_map(".{0,4}", any::<i32>(), 0..4),
            (any::<u16>(), "[a-z]{0,4}"),
        );
        (unsigned, signed, scalars, composite).prop_map(
            |(
                (u8_, u16_, u32_, u64_, u128_, usize_),
                (i8_, i16_, i32_, i64_, i128_, isize_),
                (flag, f32_, f64_, c, meters),
                (s, bytes, buf, opt, shapes, map, pair),
            )| Rich {
                u8_,
                u16_,
                u32_,
                u64_,
                u128_,
                usize_,
                i8_,
                i16_,
                i32_,
                i64_,
                i128_,
                isize_,
                flag,
                f32_,
                f64_,
                c,
                s,
                bytes,
                buf: ByteBuf(buf),
                opt,
                shapes,
                map,
                pair,
                unit: (),
                marker: Marker,
                meters: Meters(meters),
            },
        )
    }

    proptest! {
        /// What bincode encodes, the decoder reads back.
        #[test]
        fn decodes_what_bincode_encodes(value in rich()) {
            let bytes = encode(Codec::Bincode, &value).expect("encode");
            let back: Rich = decode(Codec::Bincode, &bytes).map_err(|e| TestCaseError::fail(e.reason))?;
            prop_assert_eq!(format!("{back:?}"), format!("{value:?}"));
            agree::<Rich>(&bytes);
        }

        /// Damaged encodings: a changed byte, a cut or an extra byte gives
        /// the same answer as bincode, never a panic.
        #[test]
        fn damaged_bytes_agree_with_bincode(
            value in rich(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            damage in 0..3u8,
        ) {
            let mut bytes = encode(Codec::Bincode, &value).expect("encode");
            let i = at.index(bytes.len());
            match damage {
                0 => bytes[i] = byte,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, byte),
            }
            agree::<Rich>(&bytes);
        }

        /// Arbitrary bytes, into this module's types and the fuzz target's.
        #[test]
        fn arbitrary_bytes_agree_with_bincode(bytes in prop::collection::vec(any::<u8>(), 0..24)) {
            agree::<Rich>(&bytes);
            crate::fuzz_harness::decode_values(&bytes);
        }

        /// What rmp-serde encodes, our MessagePack reader reads back, and
        /// gives rmp-serde's answer.
        #[test]
        fn msgpack_decodes_what_rmp_serde_encodes(value in rich()) {
            let bytes = encode(Codec::MessagePack, &value).expect("encode");
            let back: Rich = decode(Codec::MessagePack, &bytes).map_err(|e| TestCaseError::fail(e.reason))?;
            prop_assert_eq!(format!("{back:?}"), format!("{value:?}"));
            let theirs: Rich = rmp_serde::from_slice(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(format!("{theirs:?}"), format!("{value:?}"));
        }

        /// Damaged MessagePack: never a panic; where both readers accept
        /// the bytes, the same value.
        #[test]
        fn damaged_msgpack_agrees_with_rmp_serde(
            value in rich(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            damage in 0..3u8,
        ) {
            let mut bytes = encode(Codec::MessagePack, &value).expect("encode");
            let i = at.index(bytes.len());
            match damage {
                0 => bytes[i] = byte,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, byte),
            }
            let ours = decode::<Rich>(Codec::MessagePack, &bytes).map(|v| format!("{v:?}"));
            let theirs = rmp_serde::from_slice::<Rich>(&bytes).map(|v| format!("{v:?}"));
            if let (Ok(a), Ok(b)) = (&ours, &theirs) {
                prop_assert_eq!(a, b);
            }
            let _ = Value::from_stored(Codec::MessagePack, &bytes);
        }

        /// Borrowed fields point into the stored bytes.
        #[test]
        fn borrows_from_the_bytes(name in ".{0,40}", raw in prop::collection::vec(any::<u8>(), 0..40)) {
            let owned = Owning { name: name.clone(), raw: ByteBuf(raw.clone()), tail: "end".into() };
            let bytes = encode(Codec::Bincode, &owned).expect("encode");
            let view: Borrowing<'_> = decode_borrowed(Codec::Bincode, &bytes).map_err(|e| TestCaseError::fail(e.reason))?;
            prop_assert_eq!(view.name, name.as_str());
            prop_assert_eq!(view.raw, raw.as_slice());
            prop_assert!(matches!(view.tail, Cow::Borrowed("end")));
            prop_assert!(bytes.as_ptr_range().contains(&view.name.as_ptr()) || name.is_empty());
            let bytes = encode(Codec::MessagePack, &owned).expect("encode");
            let view: Borrowing<'_> = decode_borrowed(Codec::MessagePack, &bytes).map_err(|e| TestCaseError::fail(e.reason))?;
            prop_assert_eq!(view.name, name.as_str());
            prop_assert!(matches!(view.tail, Cow::Borrowed("end")));
        }
    }
}
