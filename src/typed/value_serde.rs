//! [`Value`] through serde: decoded from self-describing bytes (the
//! MessagePack codec) without the Rust type, and serialized (as JSON for
//! the CLI) in the order its fields were stored.

use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::codec::Codec;
use super::value::{Value, ValueError};

impl Value {
    /// Decodes stored bytes of a self-describing codec into a tree, without
    /// the Rust type: what tools (the CLI, other languages) see of a row.
    /// Struct fields keep their stored order; non-negative integers are
    /// [`Value::UInt`], negative ones [`Value::Int`].
    ///
    /// ```
    /// use timecask::typed::{Codec, Value};
    /// let bytes = rmp_serde::to_vec_named(&serde_json::json!({"name": "Alice"})).unwrap();
    /// let tree = Value::from_stored(Codec::MessagePack, &bytes)?;
    /// assert_eq!(tree.to_string(), r#"{name: "Alice"}"#);
    /// assert!(Value::from_stored(Codec::Bincode, &bytes).is_err());
    /// # Ok::<(), timecask::typed::ValueError>(())
    /// ```
    pub fn from_stored(codec: Codec, bytes: &[u8]) -> Result<Value, ValueError> {
        match codec {
            Codec::MessagePack => {
                super::codec::msgpack::decode_from(bytes).map_err(|e| ValueError {
                    reason: e.to_string(),
                })
            }
            Codec::Bincode => Err(ValueError {
                reason: format!("codec {codec} is not self-describing"),
            }),
        }
    }

    /// The tree as JSON: maps with string keys as objects (in their
    /// order), bytes as arrays of numbers, other map keys as their text.
    ///
    /// ```
    /// use timecask::typed::Value;
    /// #[derive(serde::Serialize)]
    /// struct User { name: String, age: u32 }
    /// let tree = Value::from_serialize(&User { name: "Alice".into(), age: 30 }).unwrap();
    /// assert_eq!(tree.to_json(), r#"{"name":"Alice","age":30}"#);
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{:?}", e.to_string()))
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(n) => match i64::try_from(*n) {
                Ok(n) => serializer.serialize_i64(n),
                Err(_) => serializer.serialize_i128(*n),
            },
            Value::UInt(n) => match u64::try_from(*n) {
                Ok(n) => serializer.serialize_u64(n),
                Err(_) => serializer.serialize_u128(*n),
            },
            Value::Float(x) => serializer.serialize_f64(*x),
            Value::String(s) => serializer.serialize_str(s),
            Value::Bytes(b) => serializer.serialize_bytes(b),
            Value::Seq(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    match k {
                        Value::String(_) => map.serialize_entry(k, v)?,
                        // JSON keys are strings: other keys by their text.
                        other => map.serialize_entry(&other.to_string(), v)?,
                    }
                }
                map.end()
            }
            Value::Variant(name, payload) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(name, payload)?;
                map.end()
            }
        }
    }
}

/// How deep containers may nest in a decoded tree: deeper input is an
/// error rather than a stack overflow.
const DEPTH_MAX: usize = 128;

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        TreeVisitor { depth: 0 }.deserialize(deserializer)
    }
}

/// Builds a tree `depth` containers down.
#[derive(Clone, Copy)]
struct TreeVisitor {
    depth: usize,
}

impl TreeVisitor {
    fn inner<E: de::Error>(self) -> Result<TreeVisitor, E> {
        if self.depth >= DEPTH_MAX {
            return Err(E::custom(format!(
                "containers nested deeper than {DEPTH_MAX}"
            )));
        }
        Ok(TreeVisitor {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for TreeVisitor {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(match u64::try_from(v) {
            Ok(u) => Value::UInt(u.into()),
            Err(_) => Value::Int(v.into()),
        })
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(match u128::try_from(v) {
            Ok(u) => Value::UInt(u),
            Err(_) => Value::Int(v),
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v.into()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.inner()?.deserialize(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.inner()?.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        // Never trust a length from the bytes for an allocation.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(key) = map.next_key_seed(inner)? {
            entries.push((key, map.next_value_seed(inner)?));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;
    use crate::typed::codec;

    #[derive(Serialize)]
    struct User {
        name: String,
        tags: Vec<&'static str>,
        age: i32,
        photo: Option<serde_bytes_like::Bytes>,
    }

    /// `serialize_bytes` without a dependency.
    mod serde_bytes_like {
        pub struct Bytes(pub Vec<u8>);
        impl serde::Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
    }

    #[test]
    fn stored_trees_keep_field_order_and_show_as_json() {
        let user = User {
            name: "Alice".into(),
            tags: vec!["a", "b"],
            age: -3,
            photo: Some(serde_bytes_like::Bytes(vec![1, 2])),
        };
        let bytes = codec::encode(Codec::MessagePack, &user).expect("encode");
        let tree = Value::from_stored(Codec::MessagePack, &bytes).expect("decode");
        assert_eq!(
            tree.to_json(),
            r#"{"name":"Alice","tags":["a","b"],"age":-3,"photo":[1,2]}"#
        );
        assert_eq!(tree.get("age"), Some(&Value::Int(-3)));
        assert!(Value::from_stored(Codec::MessagePack, &[0xc1]).is_err());
        let deep = vec![0x91; 5000];
        assert!(Value::from_stored(Codec::MessagePack, &deep).is_err());
    }
}
