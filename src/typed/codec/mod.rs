//! The value codec: the one place that knows how typed values become bytes.
//!
//! Today: bincode 2.0.1 through serde with the `standard` configuration
//! (little-endian, variable-length integers). Values are encoded by bincode
//! and decoded by [`decoder`], a reader of the same format that borrows
//! from the stored bytes (tested against bincode's own decoder). Swapping the codec means
//! changing this file and [`CODEC_ID`]; tables written with the old id then
//! fail with [`TypedError::CodecMismatch`](super::TypedError::CodecMismatch)
//! instead of decoding into garbage.
//!
//! bincode is not self-describing: types that need `deserialize_any`
//! (`#[serde(flatten)]`, untagged enums, `serde_json::Value`) do not
//! round-trip through it; decoding them fails with a typed error.

mod decoder;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::limits::VALUE_SIZE_MAX;

/// The id of the value codec, stored in each typed table's schema entry.
///
/// ```
/// assert_eq!(timecask::typed::CODEC_ID, "bincode2-serde-standard");
/// ```
pub const CODEC_ID: &str = "bincode2-serde-standard";

/// The standard configuration, with a decode limit so that a corrupt
/// length prefix cannot make the decoder allocate more than a value can
/// hold. The limit does not change the encoding.
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<VALUE_SIZE_MAX>()
}

/// Encodes `value`; the error is the codec's message.
pub(crate) fn encode<V: Serialize + ?Sized>(value: &V) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| e.to_string())
}

/// Decodes a whole value; bytes left over are an error.
pub(crate) fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, String> {
    Ok(decoder::decode_from(bytes)?)
}

/// Decodes a whole value that may borrow strings and byte slices from
/// `bytes`; bytes left over are an error.
pub(crate) fn decode_borrowed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    Ok(decoder::decode_from(bytes)?)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    use super::*;
    use crate::fuzz_harness::{Borrowing, ByteBuf, Marker, Meters, Owning, Rich, Shape, agree};

    #[test]
    fn round_trips_and_refuses_garbage() {
        let value = (String::from("Alice"), 30u32, vec![1u8, 2]);
        let bytes = encode(&value).expect("encode");
        assert_eq!(decode::<(String, u32, Vec<u8>)>(&bytes), Ok(value));
        let mut longer = bytes.clone();
        longer.push(0);
        let err = decode::<(String, u32, Vec<u8>)>(&longer).expect_err("trailing byte");
        assert!(err.contains("trailing"), "{err}");
        // A varint length prefix (253: a u64 follows) of 2^64 - 1 bytes:
        // an error, not an allocation.
        let huge = [253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(decode::<String>(&huge).is_err());
        assert!(decode::<Vec<u8>>(&huge).is_err());
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
            let bytes = encode(&value).expect("encode");
            let back: Rich = decode(&bytes).map_err(TestCaseError::fail)?;
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
            let mut bytes = encode(&value).expect("encode");
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

        /// Borrowed fields point into the stored bytes.
        #[test]
        fn borrows_from_the_bytes(name in ".{0,40}", raw in prop::collection::vec(any::<u8>(), 0..40)) {
            let owned = Owning { name: name.clone(), raw: ByteBuf(raw.clone()), tail: "end".into() };
            let bytes = encode(&owned).expect("encode");
            let view: Borrowing<'_> = decode_borrowed(&bytes).map_err(TestCaseError::fail)?;
            prop_assert_eq!(view.name, name.as_str());
            prop_assert_eq!(view.raw, raw.as_slice());
            prop_assert!(matches!(view.tail, Cow::Borrowed("end")));
            prop_assert!(bytes.as_ptr_range().contains(&view.name.as_ptr()) || name.is_empty());
        }
    }
}
