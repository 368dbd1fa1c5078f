//! The object manifest: what the bucket holds, checksummed (FORMAT.md,
//! "Replication objects"). Only the replicator holding the lease writes it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::local::u32_at;

/// The object manifest's name under the prefix.
pub(crate) const OBJECT_MANIFEST: &str = "timecask-replica.tcrm";
const MAGIC: &[u8; 8] = b"TCREPLMF";
const VERSION: u32 = 1;
const HEADER_SIZE: usize = 32;
/// The largest object manifest read (checked before allocating).
const BODY_SIZE_MAX: u64 = 1 << 30;

/// A piece of a log segment: whole frames (and the header, for the piece
/// at offset 0), bytes `start..end` of segment `segment`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The segment id.
    pub segment: u32,
    /// First byte of the segment in this piece.
    pub start: u64,
    /// One past its last byte.
    pub end: u64,
    /// Txid of its first frame (for a header-only piece: the segment's
    /// first txid).
    pub first_txid: u64,
    /// Txid of its last frame (`first_txid - 1` when it holds none).
    pub last_txid: u64,
    /// CRC-32 of its bytes.
    pub crc: u32,
}

impl Chunk {
    /// Its object name under the prefix.
    pub fn object(&self) -> String {
        format!(
            "segments/{:010}/{:016}-{:016}.tcchunk",
            self.segment, self.start, self.end
        )
    }
}

/// A history run file, shipped once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunObject {
    /// Its file number (`NNNNNNNNNNNNNNNN.tcrun`).
    pub number: u64,
    /// First txid it covers.
    pub first_txid: u64,
    /// Last txid it covers.
    pub last_txid: u64,
    /// File length in bytes.
    pub len: u64,
    /// CRC-32 of the whole file.
    pub crc: u32,
}

impl RunObject {
    /// Its object name under the prefix.
    pub fn object(&self) -> String {
        format!("runs/{}", crate::local::run_file_name(self.number))
    }
}

/// One generation of the database's `MANIFEST`, shipped once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    /// The MANIFEST's `seq`.
    pub seq: u64,
    /// Every txid up to it is in its runs.
    pub runs_through: u64,
    /// The first log segment it keeps.
    pub log_first_segment: u32,
    /// That segment's first txid (`runs_through + 1`).
    pub log_first_txid: u64,
    /// The run file numbers it lists.
    pub runs: Vec<u64>,
    /// File length.
    pub len: u64,
    /// CRC-32 of the file.
    pub crc: u32,
}

impl ManifestObject {
    /// Its object name under the prefix.
    pub fn object(&self) -> String {
        format!("manifests/{:020}.MANIFEST", self.seq)
    }
}

/// The body of the object manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectManifest {
    /// One higher with every write of the object manifest.
    pub generation: u64,
    /// Who wrote it (the lease owner id).
    pub writer: String,
    /// Segment pieces, ascending by `(segment, start)`, contiguous within
    /// a segment from offset 0.
    pub chunks: Vec<Chunk>,
    /// Runs, ascending by number.
    pub runs: Vec<RunObject>,
    /// MANIFEST generations, ascending by seq.
    pub manifests: Vec<ManifestObject>,
}

impl ObjectManifest {
    /// Encodes it: a 32-byte checksummed header, then the JSON body.
    pub(crate) fn encode(&self) -> Bytes {
        let body = serde_json::to_vec(self).expect("plain data always serializes");
        let mut out = Vec::with_capacity(HEADER_SIZE + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        let header_crc = crc32fast::hash(&out[0..28]);
        out.extend_from_slice(&header_crc.to_le_bytes());
        out.extend_from_slice(&body);
        Bytes::from(out)
    }

    /// Decodes and checks an object manifest read from `object`.
    pub(crate) fn decode(bytes: &[u8], object: &str) -> Result<ObjectManifest> {
        let bad = |reason: String| Error::CorruptObject {
            object: object.to_string(),
            reason,
        };
        if bytes.len() < HEADER_SIZE || &bytes[0..8] != MAGIC {
            return Err(bad("not an object manifest (magic)".into()));
        }
        if u32_at(bytes, 28) != crc32fast::hash(&bytes[0..28]) {
            return Err(bad("header crc mismatch".into()));
        }
        let version = u32_at(bytes, 8);
        if version != VERSION {
            return Err(Error::UnsupportedFormat {
                object: object.to_string(),
                version,
            });
        }
        let body_len = crate::local::u64_at(bytes, 16);
        if body_len > BODY_SIZE_MAX || body_len != (bytes.len() - HEADER_SIZE) as u64 {
            return Err(bad(format!(
                "body length {body_len} does not match the object ({} bytes)",
                bytes.len()
            )));
        }
        let body = &bytes[HEADER_SIZE..];
        if crc32fast::hash(body) != u32_at(bytes, 24) {
            return Err(bad("body crc mismatch".into()));
        }
        let manifest: ObjectManifest =
            serde_json::from_slice(body).map_err(|e| bad(format!("body does not decode: {e}")))?;
        manifest.check().map_err(bad)?;
        Ok(manifest)
    }

    /// The invariants a restore relies on.
    fn check(&self) -> std::result::Result<(), String> {
        for pair in self.chunks.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let ordered = (a.segment, a.start) < (b.segment, b.start);
            let contiguous =
                a.segment != b.segment || (a.end == b.start && b.first_txid == a.last_txid + 1);
            if !ordered || !contiguous {
                return Err(format!(
                    "chunks {} and {} are out of order or not contiguous",
                    a.object(),
                    b.object()
                ));
            }
        }
        for c in &self.chunks {
            if c.end <= c.start || c.last_txid + 1 < c.first_txid {
                return Err(format!("chunk {} has an impossible range", c.object()));
            }
        }
        Ok(())
    }

    /// Where segment `id`'s shipped bytes end (0: none shipped).
    pub(crate) fn segment_end(&self, id: u32) -> u64 {
        self.last_chunk(id).map_or(0, |c| c.end)
    }

    /// The last chunk of segment `id`.
    pub(crate) fn last_chunk(&self, id: u32) -> Option<&Chunk> {
        self.chunks.iter().rev().find(|c| c.segment == id)
    }

    /// Adds a chunk, keeping the order.
    pub(crate) fn add_chunk(&mut self, chunk: Chunk) {
        let at = self
            .chunks
            .partition_point(|c| (c.segment, c.start) < (chunk.segment, chunk.start));
        self.chunks.insert(at, chunk);
    }

    /// The highest txid any shipped frame holds.
    pub fn last_shipped_txid(&self) -> u64 {
        let chunks = self.chunks.iter().map(|c| c.last_txid);
        let runs = self.manifests.iter().map(|m| m.runs_through);
        chunks.chain(runs).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(segment: u32, start: u64, end: u64, first_txid: u64, last_txid: u64) -> Chunk {
        Chunk {
            segment,
            start,
            end,
            first_txid,
            last_txid,
            crc: 7,
        }
    }

    fn sample() -> ObjectManifest {
        ObjectManifest {
            generation: 3,
            writer: "w".into(),
            chunks: vec![chunk(1, 0, 100, 1, 2), chunk(1, 100, 180, 3, 3)],
            ..ObjectManifest::default()
        }
    }

    #[test]
    fn an_object_manifest_round_trips() {
        let bytes = sample().encode();
        assert_eq!(&bytes[0..8], b"TCREPLMF");
        assert_eq!(
            ObjectManifest::decode(&bytes, "m").expect("decodes"),
            sample()
        );
    }

    #[test]
    fn any_flipped_bit_or_cut_is_a_corrupt_object_naming_it() {
        let bytes = sample().encode().to_vec();
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            let err = ObjectManifest::decode(&bad, "p/m").expect_err("damage is detected");
            assert!(
                matches!(&err, Error::CorruptObject { object, .. } | Error::UnsupportedFormat { object, .. } if object == "p/m"),
                "{err}"
            );
        }
        for len in 0..bytes.len() {
            let err = ObjectManifest::decode(&bytes[..len], "p/m").expect_err("a cut is detected");
            assert!(matches!(&err, Error::CorruptObject { .. }), "{err}");
        }
    }

    #[test]
    fn pieces_that_are_not_contiguous_are_refused() {
        let mut m = sample();
        m.chunks[1].start = 101;
        let err = ObjectManifest::decode(&m.encode(), "m").expect_err("a gap");
        assert!(matches!(&err, Error::CorruptObject { .. }), "{err}");
    }

    #[test]
    fn restorable_ranges_follow_bases_and_chains() {
        let mut m = sample();
        // Segment 3 starts a chain only a manifest with runs through 5 can use.
        m.chunks.push(chunk(3, 0, 90, 6, 8));
        assert_eq!(crate::plan::restorable(&m), vec![(0, 3)]);
        m.runs.push(RunObject {
            number: 1,
            first_txid: 1,
            last_txid: 5,
            len: 10,
            crc: 1,
        });
        m.manifests.push(ManifestObject {
            seq: 1,
            runs_through: 5,
            log_first_segment: 3,
            log_first_txid: 6,
            runs: vec![1],
            len: 10,
            crc: 1,
        });
        assert_eq!(crate::plan::restorable(&m), vec![(0, 3), (5, 8)]);
        // Without its run the manifest is no base.
        m.runs.clear();
        assert_eq!(crate::plan::restorable(&m), vec![(0, 3)]);
    }
}
