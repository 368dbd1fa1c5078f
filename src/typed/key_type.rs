//! [`KeyType`]: the built-in key types by name, so that tools encode and
//! decode typed keys from a schema entry without the Rust types.

use super::key::{KeyDecodeError, KeyPosition, decode_bytes, encode_bytes};
use super::value::Value;

/// A built-in [`Key`](super::Key) type, parsed from its
/// [`type_name`](super::Key::type_name) (`u64`, `i32`, `bool`, `[u8;16]`,
/// `bytes`, `str`, `(str,u32)`).
///
/// ```
/// use timecask::typed::{Key, KeyEncode, KeyType};
/// let key_type = KeyType::parse(&<(String, u32)>::type_name()).expect("built in");
/// let bytes = key_type.encode_json(&serde_json::json!(["ann", 2]))?;
/// assert_eq!(bytes, ("ann".to_string(), 2u32).key_bytes());
/// assert_eq!(key_type.decode(&bytes)?.to_json(), r#"["ann",2]"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyType {
    /// `u8`..`u128`: the width in bits.
    Unsigned(u32),
    /// `i8`..`i128`: the width in bits.
    Signed(u32),
    /// `bool`.
    Bool,
    /// `[u8;16]`.
    Uuid,
    /// `bytes` (`Vec<u8>`).
    Bytes,
    /// `str` (`String`).
    Str,
    /// A tuple of 2 to 4 keys.
    Tuple(Vec<KeyType>),
}

impl KeyType {
    /// The key type named `name`, if it is a built-in one.
    pub fn parse(name: &str) -> Option<KeyType> {
        let name = name.trim();
        if let Some(inner) = name.strip_prefix('(').and_then(|n| n.strip_suffix(')')) {
            let parts = split_top_level(inner)?;
            if !(2..=4).contains(&parts.len()) {
                return None;
            }
            return parts
                .into_iter()
                .map(KeyType::parse)
                .collect::<Option<Vec<_>>>()
                .map(KeyType::Tuple);
        }
        let width = |rest: &str| {
            rest.parse::<u32>()
                .ok()
                .filter(|b| [8, 16, 32, 64, 128].contains(b))
        };
        Some(match name {
            "bool" => KeyType::Bool,
            "[u8;16]" => KeyType::Uuid,
            "bytes" => KeyType::Bytes,
            "str" => KeyType::Str,
            _ => match (name.strip_prefix('u'), name.strip_prefix('i')) {
                (Some(rest), _) => KeyType::Unsigned(width(rest)?),
                (_, Some(rest)) => KeyType::Signed(width(rest)?),
                _ => return None,
            },
        })
    }

    /// Decodes a stored key into a tree: integers, `Bool`, `Bytes` (for
    /// `bytes` and `[u8;16]`), `String`, tuples as `Seq`.
    pub fn decode(&self, bytes: &[u8]) -> Result<Value, KeyDecodeError> {
        let mut input = bytes;
        let value = self.decode_part(&mut input, KeyPosition::Last)?;
        if !input.is_empty() {
            return Err(KeyDecodeError {
                reason: format!("{} bytes left after the key", input.len()),
            });
        }
        Ok(value)
    }

    fn decode_part(
        &self,
        input: &mut &[u8],
        position: KeyPosition,
    ) -> Result<Value, KeyDecodeError> {
        let mut take = |n: usize| -> Result<Vec<u8>, KeyDecodeError> {
            if input.len() < n {
                return Err(KeyDecodeError {
                    reason: format!("a key component needs {n} bytes, {} are left", input.len()),
                });
            }
            let (head, rest) = input.split_at(n);
            *input = rest;
            Ok(head.to_vec())
        };
        let be = |bytes: &[u8]| bytes.iter().fold(0u128, |n, b| (n << 8) | u128::from(*b));
        Ok(match self {
            KeyType::Unsigned(bits) => Value::UInt(be(&take(byte_width(*bits))?)),
            KeyType::Signed(bits) => {
                let raw = be(&take(byte_width(*bits))?) ^ (1 << (bits - 1));
                // Sign-extend the width's two's complement.
                let shift = 128 - bits;
                Value::Int(((raw << shift) as i128) >> shift)
            }
            KeyType::Bool => match take(1)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(KeyDecodeError {
                        reason: format!("byte {b:#04x} is not a bool key (0 or 1)"),
                    });
                }
            },
            KeyType::Uuid => Value::Bytes(take(16)?),
            KeyType::Bytes => Value::Bytes(decode_bytes(input, position)?),
            KeyType::Str => Value::String(
                String::from_utf8(decode_bytes(input, position)?).map_err(|e| KeyDecodeError {
                    reason: format!("string key is not UTF-8: {e}"),
                })?,
            ),
            KeyType::Tuple(parts) => {
                let mut items = Vec::with_capacity(parts.len());
                for (i, part) in parts.iter().enumerate() {
                    let last = i + 1 == parts.len();
                    let at = if last { position } else { KeyPosition::Inner };
                    items.push(part.decode_part(input, at)?);
                }
                Value::Seq(items)
            }
        })
    }

    /// Encodes a key given as JSON: a number, `true`/`false`, a string (for
    /// `str`; for `bytes` its UTF-8; for `[u8;16]` 32 hex digits), an array
    /// of byte values, or an array of components for a tuple.
    pub fn encode_json(&self, key: &serde_json::Value) -> Result<Vec<u8>, KeyDecodeError> {
        let mut out = Vec::new();
        self.encode_part(key, KeyPosition::Last, &mut out)?;
        Ok(out)
    }

    /// Encodes a key typed by a person: the text itself for `str` and
    /// `bytes`, else the text as JSON (`1`, `true`, `["ann", 2]`).
    pub fn encode_text(&self, text: &str) -> Result<Vec<u8>, KeyDecodeError> {
        match self {
            KeyType::Str | KeyType::Bytes => {
                self.encode_json(&serde_json::Value::String(text.to_string()))
            }
            _ => {
                let json = serde_json::from_str(text).map_err(|e| KeyDecodeError {
                    reason: format!("{text:?} is not a {} key: {e}", self.name()),
                })?;
                self.encode_json(&json)
            }
        }
    }

    /// The type's name, as [`Key::type_name`](super::Key::type_name) spells it.
    pub fn name(&self) -> String {
        match self {
            KeyType::Unsigned(bits) => format!("u{bits}"),
            KeyType::Signed(bits) => format!("i{bits}"),
            KeyType::Bool => "bool".into(),
            KeyType::Uuid => "[u8;16]".into(),
            KeyType::Bytes => "bytes".into(),
            KeyType::Str => "str".into(),
            KeyType::Tuple(parts) => {
                let names: Vec<String> = parts.iter().map(KeyType::name).collect();
                format!("({})", names.join(","))
            }
        }
    }

    fn encode_part(
        &self,
        key: &serde_json::Value,
        position: KeyPosition,
        out: &mut Vec<u8>,
    ) -> Result<(), KeyDecodeError> {
        use serde_json::Value as J;
        let wrong = || KeyDecodeError {
            reason: format!("{key} is not a {} key", self.name()),
        };
        match (self, key) {
            (KeyType::Unsigned(bits), J::Number(n)) => {
                let n = n.as_u64().ok_or_else(wrong)?;
                if *bits < 64 && n >> bits != 0 {
                    return Err(wrong());
                }
                out.extend_from_slice(&u128::from(n).to_be_bytes()[16 - byte_width(*bits)..]);
            }
            (KeyType::Signed(bits), J::Number(n)) => {
                let n = n.as_i64().ok_or_else(wrong)?;
                let (min, max) = (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1);
                if !(min..=max).contains(&i128::from(n)) {
                    return Err(wrong());
                }
                let flipped = (i128::from(n) as u128) ^ (1 << (bits - 1));
                out.extend_from_slice(&flipped.to_be_bytes()[16 - byte_width(*bits)..]);
            }
            (KeyType::Bool, J::Bool(b)) => out.push(u8::from(*b)),
            (KeyType::Uuid, J::String(hex)) => {
                let bytes = parse_hex(hex).filter(|b| b.len() == 16).ok_or_else(wrong)?;
                out.extend_from_slice(&bytes);
            }
            (KeyType::Uuid | KeyType::Bytes, J::Array(items)) => {
                let bytes = items
                    .iter()
                    .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(wrong)?;
                if *self == KeyType::Uuid && bytes.len() != 16 {
                    return Err(wrong());
                }
                match self {
                    KeyType::Uuid => out.extend_from_slice(&bytes),
                    _ => encode_bytes(&bytes, position, out),
                }
            }
            (KeyType::Bytes | KeyType::Str, J::String(s)) => {
                encode_bytes(s.as_bytes(), position, out)
            }
            (KeyType::Tuple(parts), J::Array(items)) if parts.len() == items.len() => {
                for (i, (part, item)) in parts.iter().zip(items).enumerate() {
                    let last = i + 1 == parts.len();
                    let at = if last { position } else { KeyPosition::Inner };
                    part.encode_part(item, at, out)?;
                }
            }
            _ => return Err(wrong()),
        }
        Ok(())
    }
}

fn byte_width(bits: u32) -> usize {
    (bits / 8) as usize
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Splits `a,(b,c),d` at its top-level commas.
fn split_top_level(text: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return None;
        }
    }
    parts.push(&text[start..]);
    Some(parts)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::typed::Key;

    #[track_caller]
    fn check<K: Key>(key: K, json: serde_json::Value) {
        let key_type = KeyType::parse(&K::type_name()).expect("a built-in key type");
        assert_eq!(key_type.name(), K::type_name());
        let bytes = key.key_bytes();
        assert_eq!(key_type.encode_json(&json).expect("encode"), bytes);
        assert_eq!(
            key_type.decode(&bytes).expect("decode").to_json(),
            json.to_string()
        );
    }

    #[test]
    fn built_in_keys_match_their_rust_encodings() {
        check(7u64, json!(7));
        check(255u8, json!(255));
        check(-5i32, json!(-5));
        check(i64::MIN, json!(i64::MIN));
        check(i8::MAX, json!(127));
        check(true, json!(true));
        check("a\0b".to_string(), json!("a\u{0}b"));
        check(vec![0u8, 1], json!([0, 1]));
        check(("ann".to_string(), 2u32), json!(["ann", 2]));
        check((1u8, "x\0".to_string(), -1i16), json!([1, "x\u{0}", -1]));
        check((vec![0u8], true), json!([[0], true]));
        check(
            [7u8; 16],
            json!([7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]),
        );
    }

    #[test]
    fn wrong_keys_are_errors() {
        let u8_type = KeyType::Unsigned(8);
        assert!(u8_type.encode_json(&json!(256)).is_err());
        assert!(u8_type.encode_json(&json!("1")).is_err());
        assert!(KeyType::Signed(8).encode_json(&json!(-129)).is_err());
        assert!(KeyType::Unsigned(64).decode(&[1, 2]).is_err());
        assert!(KeyType::Unsigned(8).decode(&[1, 2]).is_err());
        assert_eq!(
            KeyType::Unsigned(64).encode_text("1").expect("a number"),
            1u64.to_be_bytes()
        );
        assert_eq!(KeyType::Str.encode_text("1").expect("text"), b"1");
        assert!(KeyType::parse("u7").is_none());
        assert!(KeyType::parse("UserId").is_none());
        assert!(KeyType::parse("(u8)").is_none());
    }
}
