//! Segment files: naming, the 32-byte header, listing a directory.
//!
//! A segment is `header | frame | frame | ...`. Segments are numbered
//! densely from 1; only the newest may end in a torn frame.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::storage::{Storage, StorageFile};
use crate::types::{SegmentId, TxId};

/// Magic bytes at the start of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"TCASKLOG";
/// The format version this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Size of the segment header in bytes.
pub(crate) const SEGMENT_HEADER_SIZE: usize = 32;
/// File name suffix of segment files.
const SEGMENT_SUFFIX: &str = ".tcseg";

/// Field offsets inside the header, built from their sizes.
const MAGIC_END: usize = SEGMENT_MAGIC.len();
const VERSION_END: usize = MAGIC_END + 4;
const SEGMENT_ID_END: usize = VERSION_END + 4;
const FIRST_TXID_END: usize = SEGMENT_ID_END + 8;
const RESERVED_END: usize = FIRST_TXID_END + 4;
const CRC_END: usize = RESERVED_END + 4;
const _: () = assert!(CRC_END == SEGMENT_HEADER_SIZE);

/// The decoded header of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub id: SegmentId,
    /// Txid of the first frame this segment holds (or will hold).
    pub first_txid: TxId,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_SIZE] {
        let mut b = [0u8; SEGMENT_HEADER_SIZE];
        b[..MAGIC_END].copy_from_slice(&SEGMENT_MAGIC);
        b[MAGIC_END..VERSION_END].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[VERSION_END..SEGMENT_ID_END].copy_from_slice(&self.id.0.to_le_bytes());
        b[SEGMENT_ID_END..FIRST_TXID_END].copy_from_slice(&self.first_txid.0.to_le_bytes());
        let crc = crc32fast::hash(&b[..RESERVED_END]);
        b[RESERVED_END..CRC_END].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Checks magic, version and checksum. `path` only locates errors.
    pub(crate) fn decode(bytes: &[u8; SEGMENT_HEADER_SIZE], path: &Path) -> Result<SegmentHeader> {
        let u32_at = |end: usize| {
            let mut a = [0; 4];
            a.copy_from_slice(&bytes[end - 4..end]);
            u32::from_le_bytes(a)
        };
        if bytes[..MAGIC_END] != SEGMENT_MAGIC {
            return Err(Error::corrupt(
                path,
                0,
                "segment header has the wrong magic",
            ));
        }
        let crc = crc32fast::hash(&bytes[..RESERVED_END]);
        if crc != u32_at(CRC_END) {
            return Err(Error::corrupt(path, 0, "segment header checksum mismatch"));
        }
        let version = u32_at(VERSION_END);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedFormat {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let mut txid = [0; 8];
        txid.copy_from_slice(&bytes[SEGMENT_ID_END..FIRST_TXID_END]);
        Ok(SegmentHeader {
            id: SegmentId(u32_at(SEGMENT_ID_END)),
            first_txid: TxId(u64::from_le_bytes(txid)),
        })
    }
}

/// Path of segment `id` inside `dir`.
pub(crate) fn segment_path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(format!("{:010}{SEGMENT_SUFFIX}", id.0))
}

/// Lists the segment files of `dir`, sorted by id. Other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<SegmentId>> {
    let mut ids = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        if stem.len() == 10
            && stem.bytes().all(|b| b.is_ascii_digit())
            && let Ok(id) = stem.parse::<u32>()
        {
            ids.push(SegmentId(id));
        }
    }
    ids.sort();
    Ok(ids)
}

/// Creates a new segment file holding only its header, fsyncs it and the
/// directory, and returns it opened for reading and writing.
pub(crate) fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    header: SegmentHeader,
) -> Result<Arc<dyn StorageFile>> {
    let path = segment_path(dir, header.id);
    let file = storage.open(&path, true).map_err(|e| Error::io(&path, e))?;
    let written = file
        .write_all_at(&header.encode(), 0)
        .and_then(|()| file.sync_data())
        .map_err(|e| Error::io(&path, e))
        .and_then(|()| sync_dir(storage, dir));
    if let Err(e) = written {
        // Do not leave a half-made newest segment behind: the writer keeps
        // appending to the previous one. (Recovery also copes if this
        // removal fails or a crash comes first.)
        let _ = std::fs::remove_file(&path);
        let _ = storage.sync_dir(dir);
        return Err(e);
    }
    Ok(file)
}

/// Fsyncs a directory so that a file created or removed in it is durable.
pub(crate) fn sync_dir(storage: &dyn Storage, dir: &Path) -> Result<()> {
    storage.sync_dir(dir).map_err(|e| Error::io(dir, e))
}

/// Suffix of a segment being rewritten by compaction.
pub(crate) const COMPACT_SUFFIX: &str = ".compact";

/// Deletes rewrites left behind by a crash during compaction: only
/// `NNNNNNNNNN.tcseg.compact` beside an existing segment; no other file is
/// ever touched.
pub(crate) fn remove_stray_rewrites(dir: &Path) -> Result<()> {
    for id in list_segments(dir)? {
        let mut path = segment_path(dir, id).into_os_string();
        path.push(COMPACT_SUFFIX);
        let path = PathBuf::from(path);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_segment_header_v1() {
        let header = SegmentHeader {
            id: SegmentId(1),
            first_txid: TxId(1),
        };
        let bytes = header.encode();
        let golden = crate::test_support::golden("v1/segment-header.bin", &bytes);
        assert_eq!(
            bytes.to_vec(),
            golden,
            "header bytes changed: bump the format version"
        );
        assert_eq!(
            SegmentHeader::decode(&bytes, Path::new("x")).expect("valid"),
            header
        );
    }

    #[test]
    fn header_with_newer_version_is_unsupported_format() {
        let mut bytes = SegmentHeader {
            id: SegmentId(3),
            first_txid: TxId(7),
        }
        .encode();
        bytes[8] = 2;
        let crc = crc32fast::hash(&bytes[..RESERVED_END]);
        bytes[RESERVED_END..].copy_from_slice(&crc.to_le_bytes());
        let err = SegmentHeader::decode(&bytes, Path::new("x")).expect_err("refused");
        assert!(matches!(
            err,
            Error::UnsupportedFormat {
                found: 2,
                supported: 1,
                ..
            }
        ));
    }

    #[test]
    fn header_with_foreign_magic_is_corrupt() {
        let mut bytes = SegmentHeader {
            id: SegmentId(3),
            first_txid: TxId(7),
        }
        .encode();
        bytes[0] = b'X';
        let err = SegmentHeader::decode(&bytes, Path::new("x")).expect_err("refused");
        assert!(matches!(err, Error::Corrupt { offset: 0, .. }));
    }
}
