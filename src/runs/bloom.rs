//! The per-run bloom filter over `(table, key)`: a point read of a key that
//! is not in the run answers from memory, without reading a block.
//!
//! Hash: FNV-1a (64-bit) over the table id's four little-endian bytes then
//! the key, finished with SplitMix64: `h1 = mix(fnv)`, `h2 = mix(h1) | 1`.
//! Probe `i` (of `n_hashes`) sets bit `(h1 + i * h2) mod n_bits`
//! (wrapping `u64` arithmetic), bit `b` being bit `b % 64` of word `b / 64`.
//! The section is `u32 n_hashes | u32 n_words | n_words × u64`.

use super::codec::{DecodeResult, Reader};
use crate::types::TableId;

/// Most hash probes a filter may use.
pub(super) const BLOOM_HASHES_MAX: u32 = 30;
/// Most 64-bit words a filter may have (2^32 keys at 16 bits each).
pub(super) const BLOOM_WORDS_MAX: u32 = 1 << 30;

/// A built or loaded filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Bloom {
    n_hashes: u32,
    words: Vec<u64>,
}

/// The 64-bit hash a filter is built from.
pub(super) fn key_hash(table: TableId, key: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for &b in table.0.to_le_bytes().iter().chain(key) {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    mix(h)
}

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Bloom {
    /// A filter for the given key hashes at `bits_per_key` (the number of
    /// probes is `bits_per_key × ln 2`, the optimum).
    pub(super) fn build(hashes: &[u64], bits_per_key: u32) -> Bloom {
        assert!(
            (1..=64).contains(&bits_per_key),
            "bits per key is configured in 1..=64"
        );
        let n_bits = (hashes.len() as u64 * u64::from(bits_per_key)).max(64);
        let n_words = n_bits.div_ceil(64);
        assert!(
            n_words <= u64::from(BLOOM_WORDS_MAX),
            "runs hold at most 2^32 keys"
        );
        let n_hashes = ((f64::from(bits_per_key) * std::f64::consts::LN_2).round() as u32)
            .clamp(1, BLOOM_HASHES_MAX);
        let mut bloom = Bloom {
            n_hashes,
            words: vec![0; n_words as usize],
        };
        for &h in hashes {
            bloom.probe(h, |words, word, bit| words[word] |= bit);
        }
        bloom
    }

    fn probe(&mut self, h1: u64, mut f: impl FnMut(&mut [u64], usize, u64)) {
        let n_bits = self.words.len() as u64 * 64;
        let h2 = mix(h1) | 1;
        for i in 0..u64::from(self.n_hashes) {
            let b = h1.wrapping_add(i.wrapping_mul(h2)) % n_bits;
            f(&mut self.words, (b / 64) as usize, 1 << (b % 64));
        }
    }

    /// False means the key is certainly not in the run.
    pub(super) fn may_contain(&self, hash: u64) -> bool {
        let n_bits = self.words.len() as u64 * 64;
        let h2 = mix(hash) | 1;
        (0..u64::from(self.n_hashes)).all(|i| {
            let b = hash.wrapping_add(i.wrapping_mul(h2)) % n_bits;
            self.words[(b / 64) as usize] & (1 << (b % 64)) != 0
        })
    }

    /// Bytes held in memory.
    pub(super) fn heap_bytes(&self) -> usize {
        self.words.len() * 8
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.words.len() * 8);
        out.extend_from_slice(&self.n_hashes.to_le_bytes());
        let n_words = u32::try_from(self.words.len()).expect("bounded by BLOOM_WORDS_MAX");
        out.extend_from_slice(&n_words.to_le_bytes());
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> DecodeResult<Bloom> {
        let mut r = Reader::new(bytes);
        let n_hashes = r.u32("bloom hash count")?;
        if !(1..=BLOOM_HASHES_MAX).contains(&n_hashes) {
            return Err(format!("bloom hash count {n_hashes} is out of range"));
        }
        let n_words = r.u32("bloom word count")?;
        if n_words == 0 || n_words > BLOOM_WORDS_MAX || bytes.len() != 8 + n_words as usize * 8 {
            return Err(format!(
                "bloom of {n_words} words does not fit its {} bytes",
                bytes.len()
            ));
        }
        let words = (0..n_words)
            .map(|_| r.u64("bloom word"))
            .collect::<DecodeResult<Vec<u64>>>()?;
        Ok(Bloom { n_hashes, words })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(n: u32, salt: u32) -> Vec<u64> {
        (0..n)
            .map(|i| key_hash(TableId(salt), format!("key-{i}").as_bytes()))
            .collect()
    }

    #[test]
    fn every_inserted_key_is_found_and_few_others_are() {
        let present = hashes(10_000, 0);
        let bloom = Bloom::build(&present, 10);
        assert!(present.iter().all(|&h| bloom.may_contain(h)));
        let false_positives = hashes(10_000, 1)
            .iter()
            .filter(|&&h| bloom.may_contain(h))
            .count();
        // About 0.8% at 10 bits per key; 2% leaves room for chance.
        assert!(
            false_positives < 200,
            "{false_positives} false positives in 10,000"
        );
    }

    #[test]
    fn encode_decode_round_trips_and_bad_sections_are_refused() {
        let bloom = Bloom::build(&hashes(100, 0), 10);
        let bytes = bloom.encode();
        assert_eq!(Bloom::decode(&bytes), Ok(bloom));
        assert!(Bloom::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut zero_hashes = bytes.clone();
        zero_hashes[..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(Bloom::decode(&zero_hashes).is_err());
    }

    #[test]
    fn key_hash_is_pinned() {
        // The filter is part of the file format: the hash must never change.
        assert_eq!(key_hash(TableId(0), b""), 0x6683_21fe_5c9f_6e52);
        assert_eq!(key_hash(TableId(1), b"k"), key_hash(TableId(1), b"k"));
        assert_ne!(key_hash(TableId(1), b"k"), key_hash(TableId(2), b"k"));
    }
}
