//! A generic value tree, built from any `Serialize` type by a small serde
//! serializer. Field-level changesets compare these trees.
//!
//! A tree of its own rather than `serde_json::Value`: integers stay exact
//! up to 128 bits, bytes stay bytes, map keys need not be strings, NaN
//! compares equal to itself, and struct fields keep their declaration order
//! (so changesets list fields as the struct declares them).

use std::fmt;

use serde::Serialize;
use serde::ser;

/// A serde value as a tree: what a changeset compares and shows.
///
/// Structs and maps are [`Value::Map`] (struct field names as
/// [`Value::String`] keys, in declaration order); `Option` is transparent
/// (`None` is [`Value::Null`]); newtype structs are their inner value.
///
/// ```
/// use timecask::typed::Value;
/// #[derive(serde::Serialize)]
/// struct User { name: String, age: u32 }
/// let tree = Value::from_serialize(&User { name: "Alice".into(), age: 30 }).unwrap();
/// assert_eq!(tree.get("age"), Some(&Value::UInt(30)));
/// assert_eq!(tree.to_string(), r#"{name: "Alice", age: 30}"#);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Value {
    /// `None`, `()`, a unit struct.
    Null,
    /// A `bool`.
    Bool(bool),
    /// A signed integer of any width.
    Int(i128),
    /// An unsigned integer of any width.
    UInt(u128),
    /// An `f32` or `f64`. Equal to another float when their bits are equal.
    Float(f64),
    /// A string or a `char`.
    String(String),
    /// A byte string (`serialize_bytes`, e.g. `serde_bytes`).
    Bytes(Vec<u8>),
    /// A sequence, tuple or tuple struct.
    Seq(Vec<Value>),
    /// A map or struct, entries in serialization order.
    Map(Vec<(Value, Value)>),
    /// An enum variant and its payload ([`Value::Null`] for a unit variant).
    Variant(String, Box<Value>),
}

impl Value {
    /// The tree of `value`; fails only if its `Serialize` implementation
    /// fails.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Value, ValueError> {
        value.serialize(TreeSerializer)
    }

    /// The entry named `field` of a [`Value::Map`] (a struct field).
    pub fn get(&self, field: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::String(s) if s == field))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, top: bool) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::UInt(n) => write!(f, "{n}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::String(s) if top => f.write_str(s),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Bytes(bytes) => {
                f.write_str("0x")?;
                bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            Value::Seq(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    item.write(f, false)?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    // Field names plain, other keys quoted like values.
                    match k {
                        Value::String(s) if is_identifier(s) => f.write_str(s)?,
                        _ => k.write(f, false)?,
                    }
                    f.write_str(": ")?;
                    v.write(f, false)?;
                }
                f.write_str("}")
            }
            Value::Variant(name, payload) => {
                f.write_str(name)?;
                match **payload {
                    Value::Null => Ok(()),
                    Value::Map(_) => {
                        f.write_str(" ")?;
                        payload.write(f, false)
                    }
                    _ => {
                        f.write_str("(")?;
                        payload.write(f, false)?;
                        f.write_str(")")
                    }
                }
            }
        }
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Shows the value compactly: a top-level string as its text (`Alice`),
/// strings inside containers quoted, bytes as hex, structs as
/// `{field: value, ...}`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, true)
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::UInt(a), Value::UInt(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Seq(a), Value::Seq(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            (Value::Variant(a, x), Value::Variant(b, y)) => a == b && x == y,
            _ => false,
        }
    }
}

impl Eq for Value {}

/// A `Serialize` implementation failed while building a [`Value`] tree.
///
/// ```
/// # use timecask::typed::ValueError;
/// let err: ValueError = serde::ser::Error::custom("refused");
/// assert_eq!(err.to_string(), "refused");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ValueError {
    /// The serializer's message.
    pub reason: String,
}

impl ser::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> ValueError {
        ValueError {
            reason: msg.to_string(),
        }
    }
}

/// Builds a [`Value`] from serde's data model.
struct TreeSerializer;

type Result<T, E = ValueError> = std::result::Result<T, E>;

impl ser::Serializer for TreeSerializer {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = VariantBuilder<SeqBuilder>;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = VariantBuilder<MapBuilder>;

    fn serialize_bool(self, v: bool) -> Result<Value> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i128(self, v: i128) -> Result<Value> {
        Ok(Value::Int(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value> {
        Ok(Value::UInt(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value> {
        Ok(Value::UInt(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value> {
        Ok(Value::UInt(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value> {
        Ok(Value::UInt(v.into()))
    }
    fn serialize_u128(self, v: u128) -> Result<Value> {
        Ok(Value::UInt(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Value> {
        Ok(Value::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Value> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value> {
        Ok(Value::Variant(variant.to_string(), Box::new(Value::Null)))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value> {
        Ok(Value::Variant(
            variant.to_string(),
            Box::new(value.serialize(self)?),
        ))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder> {
        Ok(SeqBuilder(Vec::with_capacity(len.unwrap_or(0).min(1024))))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<SeqBuilder> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder<SeqBuilder>> {
        Ok(VariantBuilder {
            variant,
            inner: self.serialize_seq(Some(len))?,
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder> {
        Ok(MapBuilder {
            entries: Vec::with_capacity(len.unwrap_or(0).min(1024)),
            key: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapBuilder> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder<MapBuilder>> {
        Ok(VariantBuilder {
            variant,
            inner: self.serialize_map(Some(len))?,
        })
    }
}

/// Elements of a sequence, tuple or tuple struct.
struct SeqBuilder(Vec<Value>);

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.0.push(value.serialize(TreeSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value> {
        Ok(Value::Seq(self.0))
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value> {
        ser::SerializeSeq::end(self)
    }
}

/// Entries of a map or fields of a struct.
struct MapBuilder {
    entries: Vec<(Value, Value)>,
    /// A key given by `serialize_key`, waiting for its value.
    key: Option<Value>,
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.key = Some(key.serialize(TreeSerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let key = self
            .key
            .take()
            .ok_or_else(|| <ValueError as ser::Error>::custom("map value without a key"))?;
        self.entries.push((key, value.serialize(TreeSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Value> {
        Ok(Value::Map(self.entries))
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        let value = value.serialize(TreeSerializer)?;
        self.entries.push((Value::String(key.to_string()), value));
        Ok(())
    }
    fn end(self) -> Result<Value> {
        Ok(Value::Map(self.entries))
    }
}

/// A tuple or struct variant: the variant name around its fields.
struct VariantBuilder<B> {
    variant: &'static str,
    inner: B,
}

impl ser::SerializeTupleVariant for VariantBuilder<SeqBuilder> {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(&mut self.inner, value)
    }
    fn end(self) -> Result<Value> {
        let inner = ser::SerializeSeq::end(self.inner)?;
        Ok(Value::Variant(self.variant.to_string(), Box::new(inner)))
    }
}

impl ser::SerializeStructVariant for VariantBuilder<MapBuilder> {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        ser::SerializeStruct::serialize_field(&mut self.inner, key, value)
    }
    fn end(self) -> Result<Value> {
        let inner = ser::SerializeStruct::end(self.inner)?;
        Ok(Value::Variant(self.variant.to_string(), Box::new(inner)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::Value;

    #[derive(Serialize)]
    enum Shape {
        Point,
        Circle(f64),
        Rect(u8, u8),
        Named { label: String },
    }

    #[derive(Serialize)]
    struct Meters(u32);

    #[track_caller]
    fn check<T: Serialize>(value: T, shown: &str) {
        let tree = Value::from_serialize(&value).expect("serialize");
        assert_eq!(tree.to_string(), shown);
    }

    #[test]
    fn trees_and_their_display() {
        check(u128::MAX, "340282366920938463463374607431768211455");
        check(i128::MIN, "-170141183460469231731687303715884105728");
        check(Some("x"), "x");
        check(None::<u8>, "null");
        check(vec![Some(1), None], "[1, null]");
        check(('c', 1.5f32, true), r#"["c", 1.5, true]"#);
        check(Meters(3), "3");
        check(Shape::Point, "Point");
        check(Shape::Circle(2.0), "Circle(2.0)");
        check(Shape::Rect(1, 2), "Rect([1, 2])");
        check(
            Shape::Named {
                label: "a b".into(),
            },
            r#"Named {label: "a b"}"#,
        );
        check(BTreeMap::from([((1, 2), "a")]), r#"{[1, 2]: "a"}"#);
        check(BTreeMap::from([("two words", 1)]), r#"{"two words": 1}"#);
    }

    #[test]
    fn nan_equals_itself() {
        let a = Value::from_serialize(&f64::NAN).expect("serialize");
        assert_eq!(a, a.clone());
        assert_ne!(Value::Int(1), Value::UInt(1));
    }
}
