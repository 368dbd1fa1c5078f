//! How keys, values, versions and tables are shown: text for people,
//! JSON for scripts.
//!
//! Values: bytes that are one line of JSON (other than a JSON string) are
//! shown and exported as that JSON, verbatim; other UTF-8 is text (a JSON
//! string); anything else is hex. In JSON the field is `value` for the first
//! two and `value_hex` for the third, which is exactly what `import` reads
//! back, so `export | import` reproduces every byte.

use std::fmt::Write as _;

use serde_json::Value;
use timecask::{Change, Metadata, Op, Timestamp};

use crate::time::format_utc;

/// A JSON document built in field order (serde_json's map sorts keys) that
/// can embed stored JSON values byte for byte.
#[derive(Clone, Debug)]
pub enum J {
    Null,
    Num(u64),
    Str(String),
    /// JSON text emitted verbatim; must be valid, single-line JSON.
    Raw(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    pub fn obj() -> J {
        J::Obj(Vec::new())
    }

    /// Adds a field (only to objects).
    pub fn with(mut self, key: &str, value: J) -> J {
        if let J::Obj(fields) = &mut self {
            fields.push((key.to_string(), value));
        }
        self
    }

    /// Adds `name` (or `name_hex`) holding `bytes` as described in the module docs.
    pub fn with_bytes(self, name: &str, bytes: &[u8]) -> J {
        match classify(bytes) {
            Shape::Json(text) => self.with(name, J::Raw(text.to_string())),
            Shape::Text(text) => self.with(name, J::Str(text.to_string())),
            Shape::Binary => self.with(&format!("{name}_hex"), J::Str(hex(bytes))),
        }
    }

    /// Like [`J::with_bytes`], with `null` under `name` for no value.
    pub fn with_opt_bytes(self, name: &str, bytes: Option<&[u8]>) -> J {
        match bytes {
            Some(bytes) => self.with_bytes(name, bytes),
            None => self.with(name, J::Null),
        }
    }

    /// One line: for JSON-lines output.
    pub fn compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None);
        out
    }

    /// Indented: for single documents.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(0));
        out
    }

    fn write(&self, out: &mut String, indent: Option<usize>) {
        let newline = |out: &mut String, level: usize| {
            out.push('\n');
            out.push_str(&"  ".repeat(level));
        };
        match self {
            J::Null => out.push_str("null"),
            J::Num(n) => {
                let _ = write!(out, "{n}");
            }
            J::Str(s) => out.push_str(&json_string(s)),
            J::Raw(raw) => out.push_str(raw),
            J::Arr(items) if items.is_empty() => out.push_str("[]"),
            J::Obj(fields) if fields.is_empty() => out.push_str("{}"),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if let Some(level) = indent {
                        newline(out, level + 1);
                    }
                    item.write(out, indent.map(|l| l + 1));
                }
                if let Some(level) = indent {
                    newline(out, level);
                }
                out.push(']');
            }
            J::Obj(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if let Some(level) = indent {
                        newline(out, level + 1);
                    }
                    out.push_str(&json_string(key));
                    out.push_str(if indent.is_some() { ": " } else { ":" });
                    value.write(out, indent.map(|l| l + 1));
                }
                if let Some(level) = indent {
                    newline(out, level);
                }
                out.push('}');
            }
        }
    }
}

impl From<&Value> for J {
    fn from(value: &Value) -> J {
        J::Raw(value.to_string())
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// What a byte string looks like.
enum Shape<'a> {
    /// One line of JSON, not a string literal, no surrounding whitespace.
    Json(&'a str),
    /// UTF-8 without control characters other than tab and line breaks.
    Text(&'a str),
    /// Anything else.
    Binary,
}

fn classify(bytes: &[u8]) -> Shape<'_> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Shape::Binary;
    };
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Shape::Binary;
    }
    let one_line_json = !text.is_empty()
        && !text.starts_with('"')
        && text.trim() == text
        && !text.contains(['\n', '\r'])
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
    if one_line_json {
        Shape::Json(text)
    } else {
        Shape::Text(text)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Parses hex (an optional `0x` first), as given to `--key-hex`.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if !digits.len().is_multiple_of(2) {
        return Err(format!("{text:?} is not hex: odd number of digits"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            digits
                .get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("{text:?} is not hex"))
        })
        .collect()
}

/// A key for people: its text when it is printable UTF-8, `0x…` otherwise.
pub fn show_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok("") => "\"\"".to_string(),
        Ok(text) if !text.chars().any(char::is_control) => text.to_string(),
        _ => format!("0x{}", hex(key)),
    }
}

/// A key as a JSON field: `key` (text) or `key_hex`.
pub fn with_key(doc: J, key: &[u8]) -> J {
    match std::str::from_utf8(key) {
        Ok(text) => doc.with("key", J::Str(text.to_string())),
        Err(_) => doc.with("key_hex", J::Str(hex(key))),
    }
}

/// A value for a table cell: JSON and plain text as they are, empty text
/// and text with tabs or line breaks quoted and escaped, binary as `0x…`.
pub fn show_value(value: Option<&[u8]>) -> String {
    let Some(bytes) = value else {
        return "-".to_string();
    };
    match classify(bytes) {
        Shape::Json(text) => text.to_string(),
        Shape::Text(text) if text.is_empty() || text.chars().any(char::is_control) => {
            format!("{text:?}")
        }
        Shape::Text(text) => text.to_string(),
        Shape::Binary => format!("0x{}", hex(bytes)),
    }
}

/// A value on its own (`get`): text exactly as stored, binary as `0x…`.
pub fn show_raw_value(bytes: &[u8]) -> String {
    match classify(bytes) {
        Shape::Json(text) | Shape::Text(text) => text.to_string(),
        Shape::Binary => format!("0x{}", hex(bytes)),
    }
}

pub fn show_meta(meta: &Metadata) -> String {
    if meta.is_empty() {
        return "-".to_string();
    }
    let pairs: Vec<String> = meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(" ")
}

pub fn meta_json(meta: &Metadata) -> J {
    J::Obj(
        meta.iter()
            .map(|(k, v)| (k.clone(), J::Str(v.clone())))
            .collect(),
    )
}

pub fn time_json(time: Timestamp) -> J {
    J::Str(format_utc(time))
}

pub fn op_json(op: Op) -> J {
    J::Str(op.as_str().to_string())
}

/// One field of a JSON object value that differs between two versions:
/// (field, old, new); `null` stands for an absent field.
pub type FieldChange = (String, Value, Value);

/// Top-level fields that differ between two values, when both are JSON
/// objects (or one is absent and the other an object); `None` otherwise.
pub fn field_changes(before: Option<&[u8]>, after: Option<&[u8]>) -> Option<Vec<FieldChange>> {
    let object = |bytes: Option<&[u8]>| match bytes {
        None => Some(serde_json::Map::new()),
        Some(b) => match serde_json::from_slice::<Value>(b) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        },
    };
    if before.is_none() && after.is_none() {
        return None;
    }
    let (before, after) = (object(before)?, object(after)?);
    let mut fields: Vec<&String> = before.keys().chain(after.keys()).collect();
    fields.sort();
    fields.dedup();
    let changes = fields
        .into_iter()
        .filter_map(|field| {
            let old = before.get(field).cloned().unwrap_or(Value::Null);
            let new = after.get(field).cloned().unwrap_or(Value::Null);
            (old != new).then(|| (field.clone(), old, new))
        })
        .collect();
    Some(changes)
}

/// `name: "Alice" -> "Bob"` lines.
pub fn show_field_changes(changes: &[FieldChange]) -> Vec<String> {
    changes
        .iter()
        .map(|(field, old, new)| format!("{field}: {old} -> {new}"))
        .collect()
}

/// Continuum's changeset: `{"name": ["Alice", "Bob"]}`.
pub fn changeset_json(changes: &[FieldChange]) -> J {
    J::Obj(
        changes
            .iter()
            .map(|(field, old, new)| (field.clone(), J::Arr(vec![old.into(), new.into()])))
            .collect(),
    )
}

/// The table in which the library records purges and erasures.
///
/// The library does not (yet) tell these records apart in `TxRecord`, so
/// the CLI decodes them here: a purge's value is the new horizon as a
/// little-endian u64, an erase's is `table \0 key` (the key is gone after
/// compaction).
const SYSTEM_TABLE: &str = "__timecask";

/// A purge or erase record among a transaction's changes.
pub enum SystemChange {
    Purge { before: u64 },
    Erase { table: String, key: Option<Vec<u8>> },
}

pub fn system_change(change: &Change) -> Option<SystemChange> {
    if change.table != SYSTEM_TABLE {
        return None;
    }
    let value = change.value.as_deref()?;
    match change.key.as_slice() {
        b"purge" => {
            let before = u64::from_le_bytes(value.try_into().ok()?);
            Some(SystemChange::Purge { before })
        }
        b"erase" => {
            let (table, key) = match value.iter().position(|b| *b == 0) {
                Some(i) => (&value[..i], Some(value[i + 1..].to_vec())),
                None => (value, None),
            };
            let table = String::from_utf8(table.to_vec()).ok()?;
            Some(SystemChange::Erase { table, key })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_value(bytes: &[u8], field: &str, json: &str, cell: &str) {
        let doc = J::obj().with_bytes("value", bytes);
        assert_eq!(doc.compact(), format!("{{\"{field}\":{json}}}"));
        assert_eq!(show_value(Some(bytes)), cell);
    }

    #[test]
    fn values_are_json_then_text_then_hex() {
        check_value(
            br#"{"b":1,"a":2}"#,
            "value",
            r#"{"b":1,"a":2}"#,
            r#"{"b":1,"a":2}"#,
        );
        check_value(b"42", "value", "42", "42");
        check_value(b"null", "value", "null", "null");
        check_value(b"hello", "value", r#""hello""#, "hello");
        check_value(br#""quoted""#, "value", r#""\"quoted\"""#, r#""quoted""#);
        check_value(b" 42", "value", r#"" 42""#, " 42");
        check_value(b"{\n}", "value", r#""{\n}""#, r#""{\n}""#);
        check_value(b"", "value", r#""""#, r#""""#);
        check_value(b"a\tb\nc", "value", r#""a\tb\nc""#, r#""a\tb\nc""#);
        check_value(&[0, 0xff], "value_hex", r#""00ff""#, "0x00ff");
        check_value(&[1, 2], "value_hex", r#""0102""#, "0x0102");
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(parse_hex("0x00ff10"), Ok(vec![0, 0xff, 0x10]));
        assert_eq!(parse_hex("ABcd"), Ok(vec![0xab, 0xcd]));
        assert_eq!(parse_hex(""), Ok(vec![]));
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
        assert!(parse_hex("é1").is_err());
    }

    #[test]
    fn field_changes_of_objects_only() {
        let alice = br#"{"name":"Alice","age":30}"#;
        let bob = br#"{"name":"Bob","age":30,"email":"b@x"}"#;
        let changes = field_changes(Some(alice), Some(bob)).expect("objects");
        assert_eq!(
            show_field_changes(&changes),
            vec![r#"email: null -> "b@x""#, r#"name: "Alice" -> "Bob""#]
        );
        assert_eq!(
            changeset_json(&changes).compact(),
            r#"{"email":[null,"b@x"],"name":["Alice","Bob"]}"#
        );
        assert_eq!(field_changes(None, Some(alice)).map(|c| c.len()), Some(2));
        assert!(field_changes(Some(b"42"), Some(alice)).is_none());
        assert!(field_changes(None, None).is_none());
    }

    #[test]
    fn pretty_json_is_indented_in_field_order() {
        let doc = J::obj()
            .with("z", J::Num(1))
            .with("a", J::Arr(vec![J::Null, J::obj()]));
        assert_eq!(
            doc.pretty(),
            "{\n  \"z\": 1,\n  \"a\": [\n    null,\n    {}\n  ]\n}"
        );
    }
}
