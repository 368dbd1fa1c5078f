//! Following a log that another process writes: the frames appended to
//! the newest segment since the last look, and the segments it rolled to.
//!
//! A follower applies only complete frames whose checksum holds. A bad or
//! incomplete frame at the end of the newest segment is where the writer
//! is appending right now: following stops before it, and the next call
//! starts there again. Only once the writer has rolled to a new segment
//! (which it does after fsyncing the previous one) is the previous
//! segment known to be whole, and a bad frame in it `Error::Corrupt`.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::log::files::SegmentFiles;
use crate::log::frame::{DecodedTx, FRAME_HEADER_SIZE};
use crate::log::recovery::SegmentScan;
use crate::log::segment::{SEGMENT_HEADER_SIZE, SegmentHeader, segment_path};
use crate::log::writer::FrameLocation;
use crate::storage::{ReadOnlyFile, Storage, StorageFile};
use crate::types::{SegmentId, TxId};

/// Where a follower's log ends: the next frame it expects is `next_txid`
/// at `offset` of `segment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogTail {
    pub segment: SegmentId,
    pub offset: u64,
    pub next_txid: TxId,
}

/// Visits every complete, checksummed frame written after `tail`, in txid
/// order, moving across segments the writer rolled to (their handles go
/// into `files`), and advances `tail` past each frame `visit` accepted.
///
/// Stops without error before an incomplete or bad frame at the end of
/// the newest segment, and before a newest segment that is still being
/// created. A frame whose checksum holds but that does not decode, or
/// whose txid is not the next one, is `Error::Corrupt`; so is a bad frame
/// in a segment the writer has rolled away from.
pub(crate) fn follow(
    storage: &dyn Storage,
    dir: &Path,
    files: &SegmentFiles,
    tail: &mut LogTail,
    mut visit: impl FnMut(FrameLocation, u32, &DecodedTx<'_>) -> Result<()>,
) -> Result<()> {
    loop {
        let file = files.handle(tail.segment)?;
        scan(file.as_ref(), dir, tail, &mut visit)?;
        let next_id = SegmentId(tail.segment.0 + 1);
        let Some(NextSegment {
            file: next,
            header,
            size,
        }) = open_next(storage, dir, next_id)?
        else {
            return Ok(());
        };
        // The writer fsynced this segment before it created the next one:
        // what it appended since the scan above is here now.
        scan(file.as_ref(), dir, tail, &mut visit)?;
        if header.first_txid != tail.next_txid && size == SEGMENT_HEADER_SIZE as u64 {
            // A roll in progress or one that failed: nothing in it yet.
            return Ok(());
        }
        let path = segment_path(dir, tail.segment);
        let len = file.len().map_err(|e| Error::io(&path, e))?;
        if tail.offset < len {
            return Err(Error::corrupt(
                &path,
                tail.offset,
                "damaged frame in a segment that is not the newest",
            ));
        }
        if header.first_txid != tail.next_txid {
            return Err(Error::corrupt(
                segment_path(dir, next_id),
                0,
                format!(
                    "segment starts at txid {} but the previous one ends before {}",
                    header.first_txid, tail.next_txid
                ),
            ));
        }
        files.insert(next_id, next);
        *tail = LogTail {
            segment: next_id,
            offset: SEGMENT_HEADER_SIZE as u64,
            next_txid: header.first_txid,
        };
    }
}

/// Visits the valid frames of `file` from `tail` on.
fn scan(
    file: &dyn StorageFile,
    dir: &Path,
    tail: &mut LogTail,
    visit: &mut impl FnMut(FrameLocation, u32, &DecodedTx<'_>) -> Result<()>,
) -> Result<()> {
    let path = segment_path(dir, tail.segment);
    let size = file.len().map_err(|e| Error::io(&path, e))?;
    if size <= tail.offset {
        return Ok(());
    }
    let mut scan = SegmentScan::new(&path, tail.segment, size, tail.next_txid);
    scan.start = tail.offset;
    scan.run(file, &mut |loc, payload_len, tx| {
        visit(loc, payload_len, tx)?;
        // Advanced per frame, so a failed visit leaves `tail` after the
        // last frame that was applied.
        tail.offset = u64::from(loc.offset) + FRAME_HEADER_SIZE as u64 + u64::from(payload_len);
        tail.next_txid = tx.txid.next();
        Ok(())
    })?;
    Ok(())
}

/// A segment after the one being followed, opened.
struct NextSegment {
    file: Arc<dyn StorageFile>,
    header: SegmentHeader,
    size: u64,
}

/// Opens segment `id` if it exists and has a whole header. `None` while
/// it does not exist or is being created.
fn open_next(storage: &dyn Storage, dir: &Path, id: SegmentId) -> Result<Option<NextSegment>> {
    let path = segment_path(dir, id);
    let file = match storage.open_read_only(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let file: Arc<dyn StorageFile> = Arc::new(ReadOnlyFile(file));
    let size = file.len().map_err(|e| Error::io(&path, e))?;
    if size < SEGMENT_HEADER_SIZE as u64 {
        return Ok(None);
    }
    let mut bytes = [0; SEGMENT_HEADER_SIZE];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| Error::io(&path, e))?;
    let header = match SegmentHeader::decode(&bytes, &path) {
        Ok(header) => header,
        // Not a header (yet): a writer's open sets such a file aside and
        // creates the segment afresh; until then the log ends before it.
        Err(Error::Corrupt { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    if header.id != id {
        return Err(Error::corrupt(
            &path,
            0,
            format!("header names segment {}", header.id.0),
        ));
    }
    Ok(Some(NextSegment { file, header, size }))
}
