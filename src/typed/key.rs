//! Order-preserving key encodings: `a < b` exactly when
//! `a.key_bytes() < b.key_bytes()` under byte-wise comparison, so ordered
//! scans of the byte API return typed keys in their natural order.
//!
//! | type | bytes |
//! |---|---|
//! | `u8`..`u128` | big-endian, fixed width |
//! | `i8`..`i128` | big-endian with the sign bit flipped, fixed width |
//! | `bool` | one byte, `0` or `1` |
//! | `[u8; 16]` (UUIDs) | the 16 bytes |
//! | `String`, `&str`, `Vec<u8>`, `&[u8]` | last in a key: the raw bytes; inside a tuple: each `0x00` written as `0x00 0xff`, then the terminator `0x00 0x00` |
//! | tuples of up to 4 keys | the components one after the other |
//!
//! Only variable-length components that are followed by another component
//! are escaped ([`KeyPosition::Inner`]); the last component runs to the end
//! of the key ([`KeyPosition::Last`]). So a `String` key is stored as its
//! plain UTF-8 bytes, readable from the byte API and the CLI, while in
//! `(String, u32)` the terminator sorts below every byte a longer string
//! could continue with: `("a", 2) < ("ab", 1)`.

use std::cell::Cell;
use std::fmt;

/// Where an encoded key component sits, which decides whether it must mark
/// its own end.
///
/// ```
/// use timecask::typed::{KeyEncode, KeyPosition};
/// let mut out = Vec::new();
/// "a\0b".encode_key(KeyPosition::Inner, &mut out);
/// assert_eq!(out, b"a\x00\xffb\x00\x00");
/// out.clear();
/// "a\0b".encode_key(KeyPosition::Last, &mut out);
/// assert_eq!(out, b"a\x00b");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyPosition {
    /// Nothing follows: the component may run to the end of the key.
    Last,
    /// Another component follows: the encoding must be self-delimiting.
    Inner,
}

/// Bytes that are not a valid encoding of the key type asked for.
///
/// ```
/// use timecask::typed::Key;
/// let err = u32::from_key_bytes(b"abc").unwrap_err();
/// assert!(err.to_string().contains("u32"));
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeyDecodeError {
    /// What was wrong.
    pub reason: String,
}

impl KeyDecodeError {
    fn new(reason: impl Into<String>) -> KeyDecodeError {
        KeyDecodeError {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for KeyDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for KeyDecodeError {}

/// A value that can be written as (part of) an order-preserving key.
///
/// Implemented by every [`Key`] type and by the borrowed forms `str` and
/// `[u8]`, so a `TableDef<String, _>` can be read with `get("alice")`.
/// A borrowed form must encode exactly like the owned key it borrows from.
///
/// ```
/// use timecask::typed::KeyEncode;
/// assert_eq!(7u16.key_bytes(), vec![0, 7]);
/// assert_eq!((-1i8).key_bytes(), vec![0x7f]);
/// assert_eq!("alice".key_bytes(), b"alice".to_vec());
/// ```
pub trait KeyEncode {
    /// Appends the encoding of `self` to `out`; self-delimiting when
    /// `position` is [`KeyPosition::Inner`].
    fn encode_key(&self, position: KeyPosition, out: &mut Vec<u8>);

    /// The encoding of `self` as a whole key.
    fn key_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_key(KeyPosition::Last, &mut out);
        out
    }
}

/// A key type of a [`TableDef`](crate::TableDef): an order-preserving
/// encoding that decodes back to the same value.
///
/// Implement it for a newtype by delegating to the inner type:
///
/// ```
/// use timecask::typed::{Key, KeyDecodeError, KeyEncode, KeyPosition};
///
/// #[derive(Debug, PartialEq)]
/// struct UserId(u64);
///
/// impl KeyEncode for UserId {
///     fn encode_key(&self, position: KeyPosition, out: &mut Vec<u8>) {
///         self.0.encode_key(position, out)
///     }
/// }
///
/// impl Key for UserId {
///     fn type_name() -> String {
///         "UserId".to_string()
///     }
///     fn decode_key(input: &mut &[u8], position: KeyPosition) -> Result<Self, KeyDecodeError> {
///         u64::decode_key(input, position).map(UserId)
///     }
/// }
///
/// assert_eq!(UserId::from_key_bytes(&UserId(9).key_bytes()), Ok(UserId(9)));
/// ```
pub trait Key: KeyEncode + Sized {
    /// A name for the encoding, stored in the table's schema entry so that
    /// opening a table with a different key type is an error. Types that
    /// encode differently must have different names.
    fn type_name() -> String;

    /// Decodes one component from the front of `input` and advances it
    /// past the bytes used. With [`KeyPosition::Last`] the component may
    /// take all that is left.
    fn decode_key(input: &mut &[u8], position: KeyPosition) -> Result<Self, KeyDecodeError>;

    /// Decodes a whole key; bytes left over are an error.
    fn from_key_bytes(bytes: &[u8]) -> Result<Self, KeyDecodeError> {
        let mut input = bytes;
        let key = Self::decode_key(&mut input, KeyPosition::Last)?;
        if !input.is_empty() {
            return Err(KeyDecodeError::new(format!(
                "{} trailing bytes after a {} key",
                input.len(),
                Self::type_name()
            )));
        }
        Ok(key)
    }
}

thread_local! {
    /// A reusable buffer for keys encoded only to look them up.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Largest scratch buffer kept for reuse between lookups.
const SCRATCH_SIZE_MAX: usize = 4096;

/// Calls `f` with the encoding of `key`, in a per-thread buffer, so point
/// reads do not allocate for the key. Reentrant: a nested call gets a
/// fresh buffer.
pub(crate) fn with_key_bytes<Q: KeyEncode + ?Sized, R>(key: &Q, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut buf = SCRATCH.take();
    buf.clear();
    key.encode_key(KeyPosition::Last, &mut buf);
    let result = f(&buf);
    if buf.capacity() <= SCRATCH_SIZE_MAX {
        SCRATCH.set(buf);
    }
    result
}

impl<T: KeyEncode + ?Sized> KeyEncode for &T {
    fn encode_key(&self, position: KeyPosition, out: &mut Vec<u8>) {
        (**self).encode_key(position, out)
    }
}

/// Takes `n` bytes from the front of `input`.
fn take<'a>(input: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], KeyDecodeError> {
    if input.len() < n {
        return Err(KeyDecodeError::new(format!(
            "a {what} key needs {n} bytes, {} are left",
            input.len()
        )));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

macro_rules! unsigned_key {
    ($($t:ty),*) => {$(
        impl KeyEncode for $t {
            fn encode_key(&self, _: KeyPosition, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }

        impl Key for $t {
            fn type_name() -> String {
                stringify!($t).to_string()
            }

            fn decode_key(input: &mut &[u8], _: KeyPosition) -> Result<Self, KeyDecodeError> {
                let bytes = take(input, size_of::<$t>(), stringify!($t))?;
                Ok(<$t>::from_be_bytes(bytes.try_into().expect("take returns exactly n bytes")))
            }
        }
    )*};
}

unsigned_key!(u8, u16, u32, u64, u128);

/// Signed integers: big-endian two's complement with the sign bit flipped,
/// so negative numbers sort below positive ones.
macro_rules! signed_key {
    ($($t:ty => $u:ty),*) => {$(
        impl KeyEncode for $t {
            fn encode_key(&self, _: KeyPosition, out: &mut Vec<u8>) {
                let flipped = (*self as $u) ^ (1 << (<$u>::BITS - 1));
                out.extend_from_slice(&flipped.to_be_bytes());
            }
        }

        impl Key for $t {
            fn type_name() -> String {
                stringify!($t).to_string()
            }

            fn decode_key(input: &mut &[u8], _: KeyPosition) -> Result<Self, KeyDecodeError> {
                let bytes = take(input, size_of::<$t>(), stringify!($t))?;
                let flipped = <$u>::from_be_bytes(bytes.try_into().expect("take returns exactly n bytes"));
                Ok((flipped ^ (1 << (<$u>::BITS - 1))) as $t)
            }
        }
    )*};
}

signed_key!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, i128 => u128);

impl KeyEncode for bool {
    fn encode_key(&self, _: KeyPosition, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl Key for bool {
    fn type_name() -> String {
        "bool".to_string()
    }

    fn decode_key(input: &mut &[u8], _: KeyPosition) -> Result<Self, KeyDecodeError> {
        match take(input, 1, "bool")? {
            [0] => Ok(false),
            [1] => Ok(true),
            other => Err(KeyDecodeError::new(format!(
                "byte {:#04x} is not a bool key (0 or 1)",
                other[0]
            ))),
        }
    }
}

impl KeyEncode for [u8; 16] {
    fn encode_key(&self, _: KeyPosition, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl Key for [u8; 16] {
    fn type_name() -> String {
        "[u8;16]".to_string()
    }

    fn decode_key(input: &mut &[u8], _: KeyPosition) -> Result<Self, KeyDecodeError> {
        let bytes = take(input, 16, "[u8;16]")?;
        Ok(bytes.try_into().expect("take returns exactly n bytes"))
    }
}

/// Escape byte and terminator of variable-length components inside a key.
const ESCAPE: u8 = 0x00;
/// Follows [`ESCAPE`] for a literal `0x00`.
const ESCAPED_ZERO: u8 = 0xff;
/// Follows [`ESCAPE`] at the end of a component.
const TERMINATOR: u8 = 0x00;

pub(super) fn encode_bytes(bytes: &[u8], position: KeyPosition, out: &mut Vec<u8>) {
    match position {
        KeyPosition::Last => out.extend_from_slice(bytes),
        KeyPosition::Inner => {
            out.reserve(bytes.len() + 2);
            for &b in bytes {
                out.push(b);
                if b == ESCAPE {
                    out.push(ESCAPED_ZERO);
                }
            }
            out.extend_from_slice(&[ESCAPE, TERMINATOR]);
        }
    }
}

pub(super) fn decode_bytes(
    input: &mut &[u8],
    position: KeyPosition,
) -> Result<Vec<u8>, KeyDecodeError> {
    if position == KeyPosition::Last {
        let all = input.to_vec();
        *input = &[];
        return Ok(all);
    }
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let Some(&b) = input.get(i) else {
            return Err(KeyDecodeError::new(
                "unterminated string or bytes component",
            ));
        };
        if b != ESCAPE {
            out.push(b);
            i += 1;
            continue;
        }
        match input.get(i + 1) {
            Some(&ESCAPED_ZERO) => {
                out.push(0);
                i += 2;
            }
            Some(&TERMINATOR) => {
                *input = &input[i + 2..];
                return Ok(out);
            }
            Some(&other) => {
                return Err(KeyDecodeError::new(format!(
                    "byte {other:#04x} after 0x00 in a string or bytes component (expected 0x00 or 0xff)"
                )));
            }
            None => {
                return Err(KeyDecodeError::new(
                    "unterminated string or bytes component",
                ));
            }
        }
    }
}

impl KeyEncode for [u8] {
    fn encode_key(&self, position: KeyPosition, out: &mut Vec<u8>) {
        encode_bytes(self, position, out)
    }
}

impl KeyEncode for Vec<u8> {
    fn encode_key(&self, position: KeyPosition, out: &mut Vec<u8>) {
        encode_bytes(self, position, out)
    }
}

impl Key for Vec<u8> {
    fn type_name() -> String {
        "bytes".to_string()
    }

    fn decode_key(input: &mut &[u8], position: KeyPosition) -> Result<Self, KeyDecodeError> {
        decode_bytes(input, position)
    }
}

impl KeyEncode for str {
    fn encode_key(&self, position: KeyPosition, out: &mut Vec<u8>) {
        encode_bytes(self.as_bytes(), position, out)
    }
}

impl KeyEncode for String {
    fn encode_key(&self, position: KeyPosition, out: &mut Vec<u8>) {
        encode_bytes(self.as_bytes(), position, out)
    }
}

impl Key for String {
    fn type_name() -> String {
        "str".to_string()
    }

    fn decode_key(input: &mut &[u8], position: KeyPosition) -> Result<Self, KeyDecodeError> {
        String::from_utf8(decode_bytes(input, position)?)
            .map_err(|e| KeyDecodeError::new(format!("string key is not UTF-8: {e}")))
    }
}

/// Tuples: every component but the last is [`KeyPosition::Inner`]; the last
/// one takes the tuple's own position.
macro_rules! tuple_key {
    ($($name:ident $index:tt),+ ; $last_name:ident $last_index:tt) => {
        impl<$($name: KeyEncode,)+ $last_name: KeyEncode> KeyEncode for ($($name,)+ $last_name) {
            fn encode_key(&self, position: KeyPosition, out: &mut Vec<u8>) {
                $(self.$index.encode_key(KeyPosition::Inner, out);)+
                self.$last_index.encode_key(position, out);
            }
        }

        impl<$($name: Key,)+ $last_name: Key> Key for ($($name,)+ $last_name) {
            fn type_name() -> String {
                let names = [$($name::type_name(),)+ $last_name::type_name()];
                format!("({})", names.join(","))
            }

            fn decode_key(input: &mut &[u8], position: KeyPosition) -> Result<Self, KeyDecodeError> {
                Ok((
                    $($name::decode_key(input, KeyPosition::Inner)?,)+
                    $last_name::decode_key(input, position)?,
                ))
            }
        }
    };
}

tuple_key!(A 0; B 1);
tuple_key!(A 0, B 1; C 2);
tuple_key!(A 0, B 1, C 2; D 3);

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check<K: Key + PartialEq + fmt::Debug>(key: K, bytes: &[u8]) {
        assert_eq!(key.key_bytes(), bytes, "encoding of {key:?}");
        assert_eq!(K::from_key_bytes(bytes).as_ref(), Ok(&key), "decoding");
    }

    #[test]
    fn encodings() {
        check(0x0102u16, &[1, 2]);
        check(i16::MIN, &[0, 0]);
        check(-1i32, &[0x7f, 0xff, 0xff, 0xff]);
        check(0i8, &[0x80]);
        check(true, &[1]);
        check(String::from("a\0"), b"a\0");
        check((String::from("a\0"), 2u8), b"a\0\xff\0\0\x02");
        check((vec![0u8], String::new()), b"\0\xff\0\0");
        check((1u8, 2u8, 3u8, 4u8), &[1, 2, 3, 4]);
        check(((String::from("x"), 1u8), 2u8), b"x\0\0\x01\x02");
    }

    #[test]
    fn malformed_keys_are_errors() {
        let cases: [(&[u8], &str); 5] = [
            (b"a\0\0\x01", "needs 2 bytes"),
            (b"ab", "unterminated"),
            (b"a\0\x05\0\0\0\x01", "after 0x00"),
            (b"a\0", "unterminated"),
            (b"a\0\0\0\x01\x02", "trailing"),
        ];
        for (bytes, want) in cases {
            let err = <(String, u16)>::from_key_bytes(bytes).expect_err("malformed");
            assert!(err.reason.contains(want), "{bytes:?}: {err}");
        }
        let err = bool::from_key_bytes(&[2]).expect_err("not a bool");
        assert!(err.reason.contains("0x02"), "{err}");
        let err = String::from_key_bytes(&[0xff]).expect_err("not UTF-8");
        assert!(err.reason.contains("UTF-8"), "{err}");
    }

    #[test]
    fn type_names_compose() {
        assert_eq!(<(String, u32, bool)>::type_name(), "(str,u32,bool)");
        assert_eq!(<[u8; 16]>::type_name(), "[u8;16]");
    }
}
