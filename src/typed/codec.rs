//! The value codec: the one place that knows how typed values become bytes.
//!
//! Today: bincode 2.0.1 through serde with the `standard` configuration
//! (little-endian, variable-length integers). Swapping the codec means
//! changing this file and [`CODEC_ID`]; tables written with the old id then
//! fail with [`TypedError::CodecMismatch`](super::TypedError::CodecMismatch)
//! instead of decoding into garbage.
//!
//! bincode is not self-describing: types that need `deserialize_any`
//! (`#[serde(flatten)]`, untagged enums, `serde_json::Value`) do not
//! round-trip through it; decoding them fails with a typed error.

use serde::Serialize;
use serde::de::DeserializeOwned;

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
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the value",
            bytes.len() - used
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
