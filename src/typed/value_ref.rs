//! [`ValueRef`]: a typed value's stored bytes, decoded on demand — into
//! the table's value type, or into a borrowing twin of it that reads
//! strings and byte slices in place.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::TypedError;
use super::codec::{self, Codec, DecodeFailure};
use crate::KeyBytes;
use crate::log::value_cache::ValueBytes;

/// The stored bytes of one value of a typed table, from
/// [`TableView::get_ref`](super::TableView::get_ref) or
/// [`Table::get_ref`](super::Table::get_ref).
///
/// [`value`](Self::value) decodes an owned `V`, like `get`.
/// [`borrow_as`](Self::borrow_as) decodes a twin type whose `&str` and
/// `&[u8]` fields point into these bytes, so the fields allocate nothing
/// (with [`Codec::MessagePack`] the twin may name any subset of the
/// fields; with [`Codec::Bincode`] it must have all of them, in order). Values over 256 bytes are shared with
/// the value cache rather than copied, so large rows (documents, blobs)
/// are read without a copy; a small row costs about what `get` does.
/// Holding a `ValueRef` pins neither a snapshot nor a file.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use timecask::{Db, TableDef};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct User { name: String, email: String, age: u32 }
///
/// /// The same fields, borrowed.
/// #[derive(Deserialize)]
/// struct UserRef<'a> { name: &'a str, email: &'a str, age: u32 }
///
/// const USERS: TableDef<u64, User> = TableDef::new("user");
///
/// # fn main() -> Result<(), timecask::TypedError> {
/// # let dir = tempfile::tempdir().unwrap();
/// let db = Db::open(dir.path())?;
/// let alice = User { name: "Alice".into(), email: "a@example.com".into(), age: 30 };
/// let mut tx = db.begin();
/// tx.typed(USERS).insert(&1, &alice)?;
/// tx.commit()?;
///
/// let users = db.snapshot().typed(USERS);
/// let stored = users.get_ref(&1)?.expect("user 1 exists");
/// let user: UserRef<'_> = stored.borrow_as()?;
/// assert_eq!((user.name, user.email, user.age), ("Alice", "a@example.com", 30));
/// assert_eq!(stored.value()?, alice);
/// assert!(users.get_ref(&2)?.is_none());
/// # Ok(()) }
/// ```
pub struct ValueRef<V> {
    bytes: ValueBytes,
    codec: Codec,
    table: &'static str,
    key: KeyCopy,
    value_type: PhantomData<fn() -> V>,
}

impl<V> ValueRef<V> {
    pub(crate) fn new(
        bytes: ValueBytes,
        codec: Codec,
        table: &'static str,
        key: &[u8],
    ) -> ValueRef<V> {
        ValueRef {
            bytes,
            codec,
            table,
            key: KeyCopy::new(key),
            value_type: PhantomData,
        }
    }

    /// The stored bytes, as the codec wrote them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The codec the bytes are in.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Decodes the bytes as `T`, which may borrow `&str`, `&[u8]` and
    /// `#[serde(borrow)] Cow` fields from them. With
    /// [`Codec::MessagePack`], `T` names the fields it wants (any subset,
    /// any order); with [`Codec::Bincode`] it must have the value type's
    /// fields in the same order with compatible types (the codec stores no
    /// field names). Anything else is [`TypedError::ValueDecode`], like a
    /// value type that changed.
    pub fn borrow_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, TypedError> {
        codec::decode_borrowed(self.codec, &self.bytes).map_err(|f| self.decode_error(f))
    }

    fn decode_error(&self, failure: DecodeFailure) -> TypedError {
        super::table::decode_error(self.table, self.key.as_slice(), None, failure)
    }
}

impl<V: DeserializeOwned> ValueRef<V> {
    /// Decodes the value into an owned `V`, as `get` returns it.
    pub fn value(&self) -> Result<V, TypedError> {
        codec::decode(self.codec, &self.bytes).map_err(|f| self.decode_error(f))
    }
}

impl<V> fmt::Debug for ValueRef<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueRef")
            .field("table", &self.table)
            .field("codec", &self.codec)
            .field("key", &KeyBytes(self.key.as_slice().to_vec()))
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// The encoded key, kept for error messages; inline when short, so a read
/// does not allocate for it.
enum KeyCopy {
    Inline {
        len: u8,
        bytes: [u8; KEY_INLINE_MAX],
    },
    Heap(Box<[u8]>),
}

const KEY_INLINE_MAX: usize = 30;

impl KeyCopy {
    fn new(key: &[u8]) -> KeyCopy {
        match u8::try_from(key.len()) {
            Ok(len) if key.len() <= KEY_INLINE_MAX => {
                let mut bytes = [0; KEY_INLINE_MAX];
                bytes[..key.len()].copy_from_slice(key);
                KeyCopy::Inline { len, bytes }
            }
            _ => KeyCopy::Heap(key.into()),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            KeyCopy::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyCopy::Heap(bytes) => bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_short_and_long_keys() {
        for len in [0, 1, KEY_INLINE_MAX, KEY_INLINE_MAX + 1, 300] {
            let key: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let copy = KeyCopy::new(&key);
            assert_eq!(copy.as_slice(), key.as_slice());
            assert_eq!(
                matches!(copy, KeyCopy::Inline { .. }),
                len <= KEY_INLINE_MAX
            );
        }
    }

    #[test]
    fn decode_errors_name_table_and_key() {
        let stored: ValueRef<u32> =
            ValueRef::new(ValueBytes::Read(vec![0xff]), Codec::Bincode, "t", b"k");
        let err = stored.value().expect_err("0xff is not a u32 varint");
        assert!(
            matches!(&err, TypedError::ValueDecode { table, key, .. } if table == "t" && key.0 == b"k"),
            "{err:?}"
        );
        assert!(stored.borrow_as::<&str>().is_err());
        assert_eq!(stored.as_bytes(), [0xff]);
    }
}
