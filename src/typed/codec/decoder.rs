//! A serde `Deserializer` for the codec's byte format: bincode 2's
//! `standard` configuration (little-endian, variable-length integers).
//!
//! Encoding stays with bincode; this reader exists because decoding is on
//! the hot path of every typed read and bincode's serde decoder spends
//! more time on its general reader and error plumbing than on the bytes.
//! Measured on the bench machine: a 7-field numeric struct 16 ns here vs
//! 24 ns with bincode; a struct with three owned strings 49 ns vs 80 ns
//! (33 ns of which is allocating the strings), or 23 ns borrowing them.
//! It reads straight from a slice, so string and byte fields can borrow
//! from the stored value instead of allocating. The differential proptests in `codec` hold it to
//! bincode's answers: the same value for valid bytes, an error for the
//! same invalid ones.
//!
//! The format, per serde data type:
//!
//! | type | bytes |
//! |---|---|
//! | `bool` | one byte, 0 or 1 |
//! | `u8`, `i8` | one byte |
//! | `u16`..`u128`, `usize` | varint: < 251 as one byte, else tag 251/252/253/254 then a LE u16/u32/u64/u128 |
//! | `i16`..`i128`, `isize` | zigzag (`n ≥ 0 → 2n`, `n < 0 → −2n − 1`), then as unsigned |
//! | `f32`, `f64` | 4 or 8 bytes LE |
//! | `char` | its UTF-8 bytes |
//! | string, bytes | varint u64 length, then the bytes |
//! | `Option` | byte 0 (none) or 1 then the value |
//! | seq, map | varint u64 count, then the elements (map: key, value, …) |
//! | tuple, struct | the fields in order, no count |
//! | enum | varint u32 variant index, then the variant's fields |
//! | unit, unit struct | nothing |

use std::fmt;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

use crate::limits::VALUE_SIZE_MAX;

/// Why bytes did not decode. Boxed to one pointer, so that a
/// `Result<u64, DecodeError>` fits in two registers: every field read
/// returns one, and a wider error made decoding ~1.5× slower.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::box_collection,
    reason = "one pointer wide on purpose: the extra allocation is on the error path only"
)]
pub(crate) struct DecodeError(Box<String>);

impl DecodeError {
    pub(super) fn new(reason: impl Into<String>) -> DecodeError {
        DecodeError(Box::new(reason.into()))
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> DecodeError {
        DecodeError::new(msg.to_string())
    }
}

impl From<DecodeError> for String {
    fn from(e: DecodeError) -> String {
        *e.0
    }
}

/// Decodes one whole value from `bytes`, borrowing from them where `T`
/// asks to; bytes left over are an error.
pub(crate) fn decode_from<'de, T: de::Deserialize<'de>>(
    bytes: &'de [u8],
) -> Result<T, DecodeError> {
    let mut reader = Reader { input: bytes };
    let value = T::deserialize(&mut reader)?;
    if !reader.input.is_empty() {
        return Err(DecodeError::new(format!(
            "{} trailing bytes after the value",
            reader.input.len()
        )));
    }
    Ok(value)
}

/// The unread rest of the value.
struct Reader<'de> {
    input: &'de [u8],
}

/// Varint tags: the integer follows as this many little-endian bytes.
const TAG_U16: u8 = 251;
const TAG_U32: u8 = 252;
const TAG_U64: u8 = 253;
const TAG_U128: u8 = 254;

impl<'de> Reader<'de> {
    #[inline]
    fn take(&mut self, n: usize, what: &str) -> Result<&'de [u8], DecodeError> {
        take(&mut self.input, n, what)
    }

    #[inline]
    fn take_array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        take_array(&mut self.input, what)
    }

    #[inline]
    fn byte(&mut self, what: &str) -> Result<u8, DecodeError> {
        match self.input.split_first() {
            Some((&b, rest)) => {
                self.input = rest;
                Ok(b)
            }
            None => Err(ends_early(what, 1, 0)),
        }
    }

    /// A varint of at most `max_tag`'s width, up to u64 (`what` names
    /// the type). Kept out of u128 arithmetic: timestamps and ids are wide
    /// varints, and they are common.
    #[inline]
    fn varint(&mut self, max_tag: u8, what: &str) -> Result<u64, DecodeError> {
        let tag = self.byte(what)?;
        if tag < TAG_U16 {
            return Ok(u64::from(tag));
        }
        if tag > max_tag {
            return Err(bad_tag(tag, what));
        }
        Ok(match tag {
            TAG_U16 => u64::from(u16::from_le_bytes(self.take_array(what)?)),
            TAG_U32 => u64::from(u32::from_le_bytes(self.take_array(what)?)),
            _ => u64::from_le_bytes(self.take_array(what)?),
        })
    }

    #[inline]
    fn u16(&mut self) -> Result<u16, DecodeError> {
        // In range: the tag allowed at most two bytes.
        Ok(self.varint(TAG_U16, "u16")? as u16)
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(self.varint(TAG_U32, "u32")? as u32)
    }

    #[inline]
    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.varint(TAG_U64, "u64")
    }

    fn u128(&mut self) -> Result<u128, DecodeError> {
        if let Some((&TAG_U128, rest)) = self.input.split_first() {
            self.input = rest;
            return Ok(u128::from_le_bytes(self.take_array("u128")?));
        }
        Ok(u128::from(self.varint(TAG_U64, "u128")?))
    }

    /// A length prefix: a u64 that must fit a `usize`.
    #[inline]
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| DecodeError::new(format!("length {n} does not fit usize")))
    }

    /// An element count; bounded so that a corrupt count of zero-sized
    /// elements cannot spin for 2^64 iterations.
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.len()?;
        if n > VALUE_SIZE_MAX {
            return Err(DecodeError::new(format!(
                "element count {n} exceeds the value size limit"
            )));
        }
        Ok(n)
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'de [u8], DecodeError> {
        let n = self.len()?;
        self.take(n, "a string or byte field")
    }

    #[inline]
    fn str(&mut self) -> Result<&'de str, DecodeError> {
        let bytes = self.bytes()?;
        if bytes.is_ascii() {
            // SAFETY: every ASCII byte sequence is valid UTF-8. The check
            // above is ~6× cheaper than `str::from_utf8` on short strings,
            // which dominate struct fields; non-ASCII strings take the
            // checked path below. Covered by `decoder::tests::strings`.
            return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        std::str::from_utf8(bytes)
            .map_err(|e| DecodeError::new(format!("invalid UTF-8 in a string: {e}")))
    }

    fn char(&mut self) -> Result<char, DecodeError> {
        let first = self.byte("a char")?;
        let width = match first {
            0x00..=0x7f => 1,
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => {
                return Err(DecodeError::new(format!(
                    "invalid char encoding (first byte {first:#04x})"
                )));
            }
        };
        if width == 1 {
            return Ok(char::from(first));
        }
        let mut utf8 = [first, 0, 0, 0];
        utf8[1..width].copy_from_slice(self.take(width - 1, "a char")?);
        std::str::from_utf8(&utf8[..width])
            .ok()
            .and_then(|s| s.chars().next())
            .ok_or_else(|| {
                DecodeError::new(format!("invalid char encoding {:02x?}", &utf8[..width]))
            })
    }
}

#[cold]
fn bad_tag(tag: u8, what: &str) -> DecodeError {
    DecodeError::new(format!("invalid varint tag {tag} for {what}"))
}

/// The next `n` bytes of `input` (`what` names them in the error), which
/// then starts after them. Both value readers (bincode here, MessagePack in
/// `msgpack`) cut their input with it.
#[inline]
pub(super) fn take<'de>(
    input: &mut &'de [u8],
    n: usize,
    what: &str,
) -> Result<&'de [u8], DecodeError> {
    match input.split_at_checked(n) {
        Some((head, rest)) => {
            *input = rest;
            Ok(head)
        }
        None => Err(ends_early(what, n, input.len())),
    }
}

/// [`take`] of a fixed size, as an array.
#[inline]
pub(super) fn take_array<const N: usize>(
    input: &mut &[u8],
    what: &str,
) -> Result<[u8; N], DecodeError> {
    let mut array = [0; N];
    array.copy_from_slice(take(input, N, what)?);
    Ok(array)
}

#[cold]
pub(super) fn ends_early(what: &str, needed: usize, left: usize) -> DecodeError {
    DecodeError::new(format!(
        "the value ends early: {what} needs {needed} bytes, {left} are left"
    ))
}

/// Undoes zigzag: 0, 1, 2, 3 → 0, −1, 1, −2.
fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// [`unzigzag`] for 128 bits.
fn unzigzag128(n: u128) -> i128 {
    ((n >> 1) as i128) ^ -((n & 1) as i128)
}

macro_rules! signed {
    ($method:ident, $visit:ident, $ty:ty, $unsigned:ident) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            // The unsigned read bounds the zigzag value to the signed range.
            visitor.$visit(unzigzag(u64::from(self.$unsigned()?)) as $ty)
        }
    };
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError::new(
            "the value codec is not self-describing: types that need deserialize_any \
             (#[serde(flatten)], untagged enums, serde_json::Value) cannot be decoded",
        ))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.byte("a bool")? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            b => Err(DecodeError::new(format!("invalid bool byte {b}"))),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i8(i8::from_le_bytes([self.byte("an i8")?]))
    }

    signed!(deserialize_i16, visit_i16, i16, u16);
    signed!(deserialize_i32, visit_i32, i32, u32);
    signed!(deserialize_i64, visit_i64, i64, u64);

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i128(unzigzag128(self.u128()?))
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u8(self.byte("a u8")?)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u16(self.u16()?)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u32(self.u32()?)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u64(self.u64()?)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u128(self.u128()?)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_f32(f32::from_le_bytes(self.take_array("an f32")?))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_f64(f64::from_le_bytes(self.take_array("an f64")?))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_char(self.char()?)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_borrowed_str(self.str()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_borrowed_str(self.str()?)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_borrowed_bytes(self.bytes()?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_borrowed_bytes(self.bytes()?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.byte("an Option tag")? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            b => Err(DecodeError::new(format!("invalid Option tag {b}"))),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let left = self.count()?;
        visitor.visit_seq(Elements { reader: self, left })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_seq(Elements {
            reader: self,
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let left = self.count()?;
        visitor.visit_map(Elements { reader: self, left })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_enum(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError::new(
            "the value codec stores no field or variant names (deserialize_identifier)",
        ))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError::new(
            "the value codec cannot skip a value of unknown type (deserialize_ignored_any)",
        ))
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a seq, tuple or struct, or the entries of a map.
struct Elements<'a, 'de> {
    reader: &'a mut Reader<'de>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.reader).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> MapAccess<'de> for Elements<'_, 'de> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        self.next_element_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        seed.deserialize(&mut *self.reader)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> EnumAccess<'de> for &mut Reader<'de> {
    type Error = DecodeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), DecodeError> {
        let index: u32 = self.u32()?;
        let variant = seed.deserialize(index.into_deserializer())?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for &mut Reader<'de> {
    type Error = DecodeError;

    fn unit_variant(self) -> Result<(), DecodeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DecodeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        // ASCII takes the unchecked path, the rest the checked one.
        assert_eq!(decode_from::<&str>(b"\x03abc"), Ok("abc"));
        assert_eq!(
            decode_from::<String>("\x05héé".as_bytes()),
            Ok("héé".to_string())
        );
        assert_eq!(decode_from::<&str>(b"\x00"), Ok(""));
        let err = decode_from::<String>(b"\x02\xc3\x28").expect_err("bad UTF-8");
        assert!(err.0.contains("UTF-8"), "{err}");
        let err = decode_from::<&str>(b"\x02\x80\x80").expect_err("lone continuation bytes");
        assert!(err.0.contains("UTF-8"), "{err}");
        assert!(decode_from::<&str>(b"\x05abc").is_err(), "too short");
    }

    #[test]
    fn integers_and_tags() {
        assert_eq!(decode_from::<u32>(&[250]), Ok(250));
        assert_eq!(decode_from::<u32>(&[251, 0x34, 0x12]), Ok(0x1234));
        assert_eq!(decode_from::<u32>(&[252, 1, 0, 0, 0x80]), Ok(0x8000_0001));
        assert!(decode_from::<u32>(&[253, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode_from::<u16>(&[252, 0, 0, 0, 0]).is_err());
        assert!(decode_from::<u64>(&[255]).is_err());
        assert_eq!(decode_from::<i32>(&[3]), Ok(-2));
        assert_eq!(decode_from::<i64>(&[4]), Ok(2));
        assert_eq!(decode_from::<i8>(&[0xff]), Ok(-1));
        assert_eq!(decode_from::<i16>(&[251, 0xff, 0xff]), Ok(i16::MIN));
        assert_eq!(decode_from::<bool>(&[1]), Ok(true));
        assert!(decode_from::<bool>(&[2]).is_err());
        assert!(decode_from::<Option<u8>>(&[2, 0]).is_err());
        assert!(decode_from::<u8>(&[1, 2]).is_err(), "trailing byte");
        // A huge count of zero-sized elements is refused, not looped over.
        assert!(
            decode_from::<Vec<()>>(&[253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err()
        );
    }
}
