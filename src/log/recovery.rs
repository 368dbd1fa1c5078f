//! Replays the log on open: checks every segment header and frame, hands
//! each decoded transaction to a visitor, and cuts a torn tail off the
//! newest segment.
//!
//! Damage anywhere but the tail of the newest segment is `Error::Corrupt`.
//! A bad frame in the newest segment counts as a torn tail only if no valid
//! frame follows it; otherwise it is damage to acknowledged data.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Recovery;
use crate::error::{Error, Result};
use crate::limits::TX_SIZE_MAX;
use crate::log::files::SegmentFiles;
use crate::log::frame::{
    DecodedTx, FRAME_HEADER_SIZE, FrameHeader, PAYLOAD_SIZE_MIN, decode_payload,
};
use crate::log::poison::Poison;
use crate::log::segment::{
    SEGMENT_HEADER_SIZE, SegmentHeader, create_segment, list_segments, segment_path, sync_dir,
};
use crate::log::writer::{FrameLocation, LogWriter, SegmentSizing};
use crate::storage::{ReadOnlyFile, Storage, StorageFile};
use crate::types::{SegmentId, TxId};

/// What recovery found, besides what it handed to the visitor.
pub(crate) struct Recovered {
    pub writer: LogWriter,
    /// The last txid in the log (`TxId(0)` if empty).
    pub last_txid: TxId,
    /// Bytes cut off the newest segment as a torn tail.
    pub torn_bytes: u64,
    /// Frames read and handed to the visitor.
    pub frames_replayed: u64,
    /// Txids the commit witness says were acknowledged as durable but the
    /// log no longer has (only with `Recovery::AcceptLoss`).
    pub lost: Option<RangeInclusive<TxId>>,
}

/// What recovery knows about the log before reading it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expected {
    /// Every txid up to this one was acknowledged as durable (the commit
    /// witness); `None` without a witness.
    pub acknowledged: Option<TxId>,
    pub recovery: Recovery,
}

/// Where replay starts when an index checkpoint already covers the log up
/// to there: frames before `offset` of `segment` are not read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResumePoint {
    pub segment: SegmentId,
    pub offset: u64,
    pub next_txid: TxId,
}

/// What recovery may do about a damaged or half-written end of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplayMode {
    /// The writer's open: cut a torn tail, rewrite a half-made newest
    /// segment's header, create the first segment of an empty database.
    Repair,
    /// A read-only open beside a writer that may be appending or rolling
    /// right now: the log ends where the valid frames end, a half-made
    /// newest segment is ignored, and no file is ever written.
    ReadOnly,
}

/// The segment files of a database, opened once before replay: replay, the
/// checkpoint check and every later read use these handles, never a path.
pub(crate) struct OpenSegments {
    /// Every segment of the log on disk when opened, ascending by id.
    pub files: Vec<(SegmentId, Arc<dyn StorageFile>)>,
    pub mode: ReplayMode,
    /// Where the log starts (the manifest says; segment 1, txid 1 without
    /// runs).
    pub start: LogStart,
}

/// The first segment of the log and the txid of its first frame: what the
/// history runs do not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogStart {
    pub segment: SegmentId,
    pub txid: TxId,
}

impl Default for LogStart {
    fn default() -> Self {
        LogStart {
            segment: SegmentId(1),
            txid: TxId(1),
        }
    }
}

/// Lists and opens the segments of `dir`. Read-only handles are opened
/// newest first: compaction renames rewrites over sealed segments in
/// ascending order, so once a rewritten segment is seen every older one
/// opened after it is rewritten too, and an erase record reduced by
/// compaction is never paired with the versions it erased.
///
/// A read-only open of a directory with no segments is `Error::NotFound`.
/// Segments below `start` are covered by history runs: the writer deletes
/// them (a crash after the manifest switched left them), a reader skips
/// them.
pub(crate) fn open_segments(
    storage: &dyn Storage,
    dir: &Path,
    mode: ReplayMode,
    start: LogStart,
) -> Result<OpenSegments> {
    let mut ids = list_segments(dir)?;
    let covered: Vec<SegmentId> = ids
        .iter()
        .copied()
        .filter(|id| *id < start.segment)
        .collect();
    ids.retain(|id| *id >= start.segment);
    if mode == ReplayMode::Repair {
        for id in &covered {
            let path = segment_path(dir, *id);
            storage
                .remove_file(&path)
                .map_err(|e| Error::io(&path, e))?;
        }
        if !covered.is_empty() {
            storage.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
        }
    }
    if let Some(first) = ids.first()
        && *first != start.segment
    {
        return Err(Error::corrupt(
            segment_path(dir, start.segment),
            0,
            format!(
                "the first segment is missing: the log starts at segment {}",
                first.0
            ),
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        let expected = SegmentId(ids[0].0 + i as u32);
        if *id != expected {
            return Err(Error::corrupt(
                segment_path(dir, expected),
                0,
                "segment file is missing: segments must be numbered without gaps",
            ));
        }
    }
    let mut files = Vec::with_capacity(ids.len());
    match mode {
        ReplayMode::Repair => {
            for &id in &ids {
                let path = segment_path(dir, id);
                let file = storage
                    .open(&path, false)
                    .map_err(|e| Error::io(&path, e))?;
                files.push((id, file));
            }
        }
        ReplayMode::ReadOnly => {
            if ids.is_empty() {
                return Err(Error::NotFound {
                    path: dir.to_path_buf(),
                });
            }
            for &id in ids.iter().rev() {
                let path = segment_path(dir, id);
                let file = storage
                    .open_read_only(&path)
                    .map_err(|e| Error::io(&path, e))?;
                let file: Arc<dyn StorageFile> = Arc::new(ReadOnlyFile(file));
                files.push((id, file));
            }
            files.reverse();
        }
    }
    Ok(OpenSegments { files, mode, start })
}

/// The log and where it lives, for [`replay`].
pub(crate) struct LogFiles<'a> {
    pub storage: &'a Arc<dyn Storage>,
    pub dir: &'a Path,
    pub sizing: SegmentSizing,
    pub segments: &'a OpenSegments,
    pub files: &'a SegmentFiles,
    /// The poison the returned writer's fsyncs go through.
    pub poison: &'a Arc<Poison>,
}

/// Replays every frame of the log in `segments` in txid order (from
/// `resume` on, if given).
///
/// `visit` gets each frame's location, its payload length and the decoded
/// payload. Returns the writer positioned after the last valid frame.
///
/// With a commit witness (`expected.acknowledged`), a frame at or below the
/// acknowledged txid that is damaged is `Error::Corrupt` and a log that
/// ends before it `Error::CommitsLost` (unless `Recovery::AcceptLoss`);
/// every bad frame after it starts the unsynced tail, which is cut. Without
/// a witness, a bad frame followed by a valid later one is damage, not a
/// tear. Nothing is truncated or rewritten before every check that could
/// refuse the open has passed for that segment.
pub(crate) fn replay(
    log: LogFiles<'_>,
    expected: Expected,
    resume: Option<ResumePoint>,
    mut visit: impl FnMut(FrameLocation, u32, &DecodedTx<'_>) -> Result<()>,
) -> Result<Recovered> {
    let LogFiles {
        storage,
        dir,
        sizing,
        segments,
        files,
        poison,
    } = log;
    let read_only = segments.mode == ReplayMode::ReadOnly;
    let strict = expected.recovery == Recovery::Strict;
    let acknowledged = expected.acknowledged.unwrap_or(TxId::ZERO);
    let start = segments.start;
    let Some(&(last_id, _)) = segments.files.last() else {
        if acknowledged >= start.txid && strict {
            return Err(Error::CommitsLost {
                path: segment_path(dir, start.segment),
                log_end: TxId(start.txid.0 - 1),
                acknowledged,
            });
        }
        if read_only {
            return Err(Error::NotFound {
                path: dir.to_path_buf(),
            });
        }
        let id = start.segment;
        let header = SegmentHeader {
            id,
            first_txid: start.txid,
        };
        let file = create_segment(storage.as_ref(), dir, header)?;
        files.insert(id, Arc::clone(&file));
        return Ok(Recovered {
            writer: LogWriter::new(
                Arc::clone(storage),
                dir,
                id,
                file,
                SEGMENT_HEADER_SIZE as u64,
                sizing,
                Arc::clone(poison),
            ),
            last_txid: TxId(start.txid.0 - 1),
            torn_bytes: 0,
            frames_replayed: 0,
            lost: (acknowledged >= start.txid).then_some(start.txid..=acknowledged),
        });
    };
    // The txid the next frame must have; `None` after segments a
    // checkpoint covers (only their headers are checked).
    let mut next_txid: Option<TxId> = Some(start.txid);
    let mut torn_bytes = 0;
    let mut frames_replayed = 0;
    let mut active = None;
    for (id, file) in &segments.files {
        let (id, file) = (*id, Arc::clone(file));
        let path = segment_path(dir, id);
        let is_last = id == last_id;
        let size = file.len().map_err(|e| Error::io(&path, e))?;
        if size < SEGMENT_HEADER_SIZE as u64 {
            if !is_last {
                return Err(Error::corrupt(
                    &path,
                    0,
                    "segment is shorter than its header",
                ));
            }
            // A crash while creating the newest segment leaves a prefix of
            // the header it was given; anything else was not written here
            // and is left as it is.
            let header = SegmentHeader {
                id,
                first_txid: next_txid.unwrap_or(TxId(1)),
            };
            let mut bytes = vec![0; size as usize];
            file.read_exact_at(&mut bytes, 0)
                .map_err(|e| Error::io(&path, e))?;
            if bytes[..] != header.encode()[..bytes.len()] {
                if can_set_aside(is_last, active.is_some(), next_txid, expected) {
                    if read_only {
                        torn_bytes += size;
                        break;
                    }
                    let file = replace_unrecognised(storage, dir, &path, header)?;
                    torn_bytes += size;
                    files.insert(id, Arc::clone(&file));
                    active = Some((id, file, SEGMENT_HEADER_SIZE as u64));
                    continue;
                }
                return Err(Error::corrupt(
                    &path,
                    0,
                    "file is shorter than a segment header and not the start of one \
                     (not written by timecask; left as it is)",
                ));
            }
            if read_only {
                // A writer is creating it right now (or crashed doing so):
                // the log ends at the previous segment.
                ignore_half_made_segment(&path, id, resume)?;
                torn_bytes += size;
                break;
            }
            if let Some(next) = next_txid
                && next <= acknowledged
                && strict
            {
                // Acknowledged frames should be in this segment.
                return Err(Error::CommitsLost {
                    path,
                    log_end: TxId(next.0 - 1),
                    acknowledged,
                });
            }
            file.set_len(0).map_err(|e| Error::io(&path, e))?;
            rewrite_header(file.as_ref(), &path, header)?;
            sync_dir(storage.as_ref(), dir)?;
            torn_bytes += size;
            files.insert(id, Arc::clone(&file));
            active = Some((id, file, SEGMENT_HEADER_SIZE as u64));
            next_txid = Some(header.first_txid);
            continue;
        }
        let mut header_bytes = [0; SEGMENT_HEADER_SIZE];
        file.read_exact_at(&mut header_bytes, 0)
            .map_err(|e| Error::io(&path, e))?;
        let mut header = match SegmentHeader::decode(&header_bytes, &path) {
            Ok(header) => header,
            Err(Error::Corrupt { .. })
                if can_set_aside(is_last, active.is_some(), next_txid, expected) =>
            {
                // A power cut while rolling: the new segment's header never
                // reached the disk (zeros or garbage in its place).
                if read_only {
                    torn_bytes += size;
                    break;
                }
                let fresh = SegmentHeader {
                    id,
                    first_txid: next_txid.unwrap_or(TxId(1)),
                };
                let file = replace_unrecognised(storage, dir, &path, fresh)?;
                torn_bytes += size;
                files.insert(id, Arc::clone(&file));
                active = Some((id, file, SEGMENT_HEADER_SIZE as u64));
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some(next) = next_txid
            && is_last
            && active.is_some()
            && size == SEGMENT_HEADER_SIZE as u64
            && header.first_txid != next
            && header.id == id
        {
            if read_only {
                // A roll in progress or one that failed: nothing in it yet.
                ignore_half_made_segment(&path, id, resume)?;
                break;
            }
            // An empty newest segment left by a roll that failed or was
            // cut short: nothing in it to lose; give it the right start.
            header.first_txid = next;
            rewrite_header(file.as_ref(), &path, header)?;
        }
        if header.id != id {
            return Err(Error::corrupt(
                &path,
                0,
                format!("header names segment {}", header.id.0),
            ));
        }
        if let Some(next) = next_txid
            && header.first_txid != next
        {
            let Some((prev_id, _, prev_len)) = &active else {
                return Err(Error::corrupt(
                    &path,
                    0,
                    format!(
                        "the first segment starts at txid {} instead of 1: the log before it is missing",
                        header.first_txid
                    ),
                ));
            };
            // Frames missing at the end of the previous segment is the
            // likely story when this one starts later; name that file.
            if header.first_txid > next {
                return Err(Error::corrupt(
                    segment_path(dir, *prev_id),
                    *prev_len,
                    format!(
                        "segment ends before txid {next} but the next segment starts at txid {}: frames are missing",
                        header.first_txid
                    ),
                ));
            }
            return Err(Error::corrupt(
                &path,
                0,
                format!(
                    "segment starts at txid {} but the previous one ends before {}",
                    header.first_txid, next
                ),
            ));
        }
        let mut scan = SegmentScan::new(&path, id, size, header.first_txid);
        match resume {
            // Covered by the checkpoint: only the header is checked.
            Some(resume) if id < resume.segment => {
                files.insert(id, Arc::clone(&file));
                active = Some((id, file, size));
                next_txid = None;
                continue;
            }
            Some(resume) if id == resume.segment => {
                scan.start = resume.offset;
                scan.next_txid = resume.next_txid;
            }
            _ => {}
        }
        let end = scan.run(file.as_ref(), &mut |loc, len, tx| {
            frames_replayed += 1;
            visit(loc, len, tx)
        })?;
        next_txid = Some(scan.next_txid);
        if end < size {
            if !is_last {
                return Err(Error::corrupt(
                    &path,
                    end,
                    "damaged frame in a segment that is not the newest",
                ));
            }
            // Zeros after the last frame are preallocated space (or what a
            // crash between extending the file and writing into it left):
            // the log ends there. Anything else is a torn or damaged frame.
            let data_end = nonzero_end(file.as_ref(), &path, end, size)?;
            if scan.next_txid <= acknowledged {
                // The witness says this frame was acknowledged as durable.
                if strict {
                    return Err(match scan.stopped_by {
                        _ if data_end == end => Error::CommitsLost {
                            path,
                            log_end: TxId(scan.next_txid.0 - 1),
                            acknowledged,
                        },
                        Some(ScanStop::PastEnd) => Error::CommitsLost {
                            path,
                            log_end: TxId(scan.next_txid.0 - 1),
                            acknowledged,
                        },
                        _ => Error::corrupt(
                            &path,
                            end,
                            format!(
                                "the frame of txid {} is damaged, but COMMIT says it was \
                                 acknowledged as durable (txids through {acknowledged} were)",
                                scan.next_txid
                            ),
                        ),
                    });
                }
            } else if expected.acknowledged.is_none()
                && data_end > end
                && let Some(found) =
                    find_valid_frame_after(file.as_ref(), &path, end, size, scan.next_txid)?
            {
                // No witness to tell unsynced from acknowledged frames: a
                // valid frame after a bad one means the bad one was damaged.
                return Err(Error::corrupt(
                    &path,
                    end,
                    format!(
                        "damaged frame followed by a valid frame (txid {found}); acknowledged data is damaged"
                    ),
                ));
            }
            // Read-only: a writer may be appending this frame right now;
            // the log ends before it. The writer cuts the preallocated
            // space too (it extends the file again when it needs to).
            if !read_only {
                file.set_len(end).map_err(|e| Error::io(&path, e))?;
                file.sync_data().map_err(|e| Error::io(&path, e))?;
            }
            torn_bytes += data_end - end;
        }
        files.insert(id, Arc::clone(&file));
        active = Some((id, file, end));
    }
    let Some((id, file, len)) = active else {
        // Read-only, and the only segment is being created right now.
        return Err(Error::NotFound {
            path: dir.to_path_buf(),
        });
    };
    let last_txid = TxId(next_txid.map_or(0, |t| t.0 - 1));
    let lost = (last_txid < acknowledged).then(|| last_txid.next()..=acknowledged);
    if lost.is_some() && strict {
        // The newest segment on disk ends early, or newer ones are gone.
        let path = segment_path(dir, id);
        return Err(Error::CommitsLost {
            path,
            log_end: last_txid,
            acknowledged,
        });
    }
    // Frames a crashed process left in the page cache become durable now,
    // so everything replayed counts as synced.
    if !read_only {
        file.sync_data()
            .map_err(|e| Error::io(segment_path(dir, id), e))?;
    }
    Ok(Recovered {
        writer: LogWriter::new(
            Arc::clone(storage),
            dir,
            id,
            file,
            len,
            sizing,
            Arc::clone(poison),
        ),
        last_txid,
        torn_bytes,
        frames_replayed,
        lost,
    })
}

/// Whether an unrecognised newest segment may be set aside: the commit
/// witness shows every acknowledged commit is in the segments before it, so
/// it can only be a segment whose creation a power cut interrupted.
fn can_set_aside(
    is_last: bool,
    has_previous: bool,
    next: Option<TxId>,
    expected: Expected,
) -> bool {
    match (expected.acknowledged, next) {
        (Some(acknowledged), Some(next)) => is_last && has_previous && next > acknowledged,
        _ => false,
    }
}

/// Renames an unrecognised newest segment to `<name>.unrecognised` (its
/// bytes are kept, never overwritten) and creates the segment afresh.
fn replace_unrecognised(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    path: &Path,
    header: SegmentHeader,
) -> Result<Arc<dyn StorageFile>> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(UNRECOGNISED_SUFFIX);
    let aside = PathBuf::from(aside);
    if aside.exists() {
        return Err(Error::corrupt(
            path,
            0,
            format!(
                "not a segment header, and {} is taken: move one of them away",
                aside.display()
            ),
        ));
    }
    storage
        .rename(path, &aside)
        .map_err(|e| Error::io(path, e))?;
    create_segment(storage.as_ref(), dir, header)
}

/// Suffix of a newest segment that recovery set aside, unread.
pub(crate) const UNRECOGNISED_SUFFIX: &str = ".unrecognised";

/// A read-only replay ignores a half-made newest segment, unless the
/// checkpoint it resumes from claims to cover it: then that checkpoint is
/// not used (the caller replays the whole log).
fn ignore_half_made_segment(path: &Path, id: SegmentId, resume: Option<ResumePoint>) -> Result<()> {
    match resume {
        Some(resume) if id <= resume.segment => Err(Error::corrupt(
            path,
            0,
            "the checkpoint covers a segment that is being created",
        )),
        _ => Ok(()),
    }
}

/// Writes `header` over the start of `file` and makes it durable (repairs
/// of the newest segment after an interrupted or failed roll).
fn rewrite_header(file: &dyn StorageFile, path: &Path, header: SegmentHeader) -> Result<()> {
    file.write_all_at(&header.encode(), 0)
        .and_then(|()| file.sync_data())
        .map_err(|e| Error::io(path, e))
}

/// Sequential scan of one segment's frames.
pub(crate) struct SegmentScan {
    pub path: PathBuf,
    pub id: SegmentId,
    pub size: u64,
    /// Offset of the first frame to read.
    pub start: u64,
    pub next_txid: TxId,
    /// Frames after this txid are not visited; the scan stops before them.
    pub stop_after: TxId,
    /// The scan stopped at a frame after `stop_after`.
    pub stopped: bool,
    /// Why the valid frames ended before the end of the file, if they did.
    pub stopped_by: Option<ScanStop>,
}

/// What ended a segment's valid frames before the end of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanStop {
    /// The next frame's header or payload runs past the end of the file.
    PastEnd,
    /// A frame header announces a payload too small or too large to be one
    /// (an all-zero tail reads as a header of length 0).
    NotAFrame,
    /// A payload's checksum does not match its header.
    Checksum,
}

impl SegmentScan {
    /// A scan of a whole segment whose header says it starts at `first_txid`.
    pub(crate) fn new(path: &Path, id: SegmentId, size: u64, first_txid: TxId) -> SegmentScan {
        SegmentScan {
            path: path.to_path_buf(),
            id,
            size,
            start: SEGMENT_HEADER_SIZE as u64,
            next_txid: first_txid,
            stop_after: TxId(u64::MAX),
            stopped: false,
            stopped_by: None,
        }
    }

    /// Visits every valid frame; returns the offset where valid frames end
    /// (`size` when the segment is whole).
    pub(crate) fn run(
        &mut self,
        file: &dyn StorageFile,
        visit: &mut impl FnMut(FrameLocation, u32, &DecodedTx<'_>) -> Result<()>,
    ) -> Result<u64> {
        let mut reader = SequentialReader::new(file, self.start, self.size);
        let mut pos = self.start;
        let mut payload = Vec::new();
        while pos < self.size {
            let remaining = self.size - pos;
            if remaining < FRAME_HEADER_SIZE as u64 {
                self.stopped_by = Some(ScanStop::PastEnd);
                return Ok(pos);
            }
            let mut header = [0; FRAME_HEADER_SIZE];
            if !self.read(&mut reader, &mut header)? {
                return Ok(pos);
            }
            let header = FrameHeader::parse(header);
            let len = u64::from(header.payload_len);
            // Check the length before allocating anything sized by it.
            if (len as usize) < PAYLOAD_SIZE_MIN || len as usize > TX_SIZE_MAX {
                self.stopped_by = Some(ScanStop::NotAFrame);
                return Ok(pos);
            }
            if len > remaining - FRAME_HEADER_SIZE as u64 {
                self.stopped_by = Some(ScanStop::PastEnd);
                return Ok(pos);
            }
            payload.resize(len as usize, 0);
            if !self.read(&mut reader, &mut payload)? {
                return Ok(pos);
            }
            if crc32fast::hash(&payload) != header.crc {
                self.stopped_by = Some(ScanStop::Checksum);
                return Ok(pos);
            }
            let tx = decode_payload(&payload)
                .map_err(|reason| Error::corrupt(&self.path, pos, reason))?;
            if tx.txid > self.stop_after {
                self.stopped = true;
                return Ok(pos);
            }
            if tx.txid != self.next_txid {
                return Err(Error::corrupt(
                    &self.path,
                    pos,
                    format!(
                        "frame holds txid {} where txid {} was expected",
                        tx.txid, self.next_txid
                    ),
                ));
            }
            let location = FrameLocation {
                segment: self.id,
                offset: u32::try_from(pos).map_err(|_| {
                    Error::corrupt(&self.path, pos, "segment is larger than the format allows")
                })?,
            };
            visit(location, header.payload_len, &tx)?;
            self.next_txid = self.next_txid.next();
            pos += FRAME_HEADER_SIZE as u64 + len;
        }
        Ok(pos)
    }
}

impl SegmentScan {
    /// Fills `out` from `reader`; `false` if the file ended first. Only a
    /// reader beside a running writer sees that: the writer cut the
    /// preallocated space off the segment it rolled away from, which holds
    /// no frames, so the scan ends there (`ScanStop::PastEnd`).
    fn read(&mut self, reader: &mut SequentialReader<'_>, out: &mut [u8]) -> Result<bool> {
        match reader.read_exact(out) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.stopped_by = Some(ScanStop::PastEnd);
                Ok(false)
            }
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }
}

/// Where the bytes of `file` in `from..size` stop being all zeros: the
/// offset after the last non-zero byte, or `from` if every byte is zero
/// (preallocated space after the last frame). Reads from the end backwards
/// in chunks. If the file shrinks meanwhile (a writer cut its preallocated
/// space while a reader looks), what is gone counts as zeros.
pub(crate) fn nonzero_end(
    file: &dyn StorageFile,
    path: &Path,
    from: u64,
    size: u64,
) -> Result<u64> {
    const CHUNK: u64 = 1 << 20;
    let mut end = size;
    let mut buf = vec![0; CHUNK.min(size.saturating_sub(from)) as usize];
    while end > from {
        let n = (end - from).min(CHUNK);
        let at = end - n;
        let chunk = &mut buf[..n as usize];
        match file.read_exact_at(chunk, at) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let now = file.len().map_err(|e| Error::io(path, e))?;
                if now >= end {
                    return Err(Error::io(path, e));
                }
                end = now.max(from);
                continue;
            }
            Err(e) => return Err(Error::io(path, e)),
        }
        if let Some(i) = chunk.iter().rposition(|b| *b != 0) {
            return Ok(at + i as u64 + 1);
        }
        end = at;
    }
    Ok(from)
}

/// Reads a file front to back in large positioned reads, up to `end`.
struct SequentialReader<'a> {
    file: &'a dyn StorageFile,
    /// File offset of `buf[0]`.
    buf_start: u64,
    buf: Vec<u8>,
    /// Read position inside `buf`.
    at: usize,
    end: u64,
}

impl<'a> SequentialReader<'a> {
    const CHUNK: u64 = 1 << 20;

    fn new(file: &'a dyn StorageFile, start: u64, end: u64) -> SequentialReader<'a> {
        SequentialReader {
            file,
            buf_start: start,
            buf: Vec::new(),
            at: 0,
            end,
        }
    }

    /// Fills `out` completely; the caller never reads past `end`.
    fn read_exact(&mut self, out: &mut [u8]) -> std::io::Result<()> {
        let mut filled = 0;
        while filled < out.len() {
            if self.at == self.buf.len() {
                let next = self.buf_start + self.buf.len() as u64;
                let want = (out.len() - filled) as u64;
                // Large reads go straight into `out`, small ones through a chunk.
                if want >= Self::CHUNK {
                    self.file.read_exact_at(&mut out[filled..], next)?;
                    self.buf_start = next + want;
                    self.buf.clear();
                    self.at = 0;
                    return Ok(());
                }
                let len = Self::CHUNK.min(self.end.saturating_sub(next)).max(want);
                self.buf.resize(len as usize, 0);
                if let Err(e) = self.file.read_exact_at(&mut self.buf, next) {
                    // A writer cut the preallocated space off this segment
                    // (it rolled) since `end` was taken: read ahead only as
                    // far as the file goes now.
                    let now = self.file.len()?;
                    if e.kind() != std::io::ErrorKind::UnexpectedEof || now >= self.end {
                        return Err(e);
                    }
                    self.end = now;
                    self.buf.clear();
                    self.buf_start = next;
                    self.at = 0;
                    if next + want > now {
                        return Err(e);
                    }
                    continue;
                }
                self.buf_start = next;
                self.at = 0;
            }
            let n = (out.len() - filled).min(self.buf.len() - self.at);
            out[filled..filled + n].copy_from_slice(&self.buf[self.at..self.at + n]);
            self.at += n;
            filled += n;
        }
        Ok(())
    }
}

/// Looks for a valid frame with a txid at or after `next_txid` anywhere in
/// `start+1..size`. Finding one means the bad frame at `start` is damage,
/// not a torn write. Reads in chunks; checks a checksum only for candidates
/// whose length and txid are plausible.
fn find_valid_frame_after(
    file: &dyn StorageFile,
    path: &Path,
    start: u64,
    size: u64,
    next_txid: TxId,
) -> Result<Option<TxId>> {
    const CHUNK: u64 = 1 << 20;
    const PROBE: u64 = FRAME_HEADER_SIZE as u64 + 8;
    let max_txid = next_txid.0 + (size - start) / PROBE + 1;
    let mut chunk_start = start + 1;
    while chunk_start + PROBE <= size {
        let chunk_len = CHUNK.min(size - chunk_start);
        let mut chunk = vec![0; chunk_len as usize];
        file.read_exact_at(&mut chunk, chunk_start)
            .map_err(|e| Error::io(path, e))?;
        let probes = chunk_len.saturating_sub(PROBE - 1);
        for i in 0..probes as usize {
            let at = chunk_start + i as u64;
            let b = &chunk[i..i + PROBE as usize];
            let len = u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let crc = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            let mut t = [0; 8];
            t.copy_from_slice(&b[8..16]);
            let txid = u64::from_le_bytes(t);
            if (len as usize) < PAYLOAD_SIZE_MIN
                || len as usize > TX_SIZE_MAX
                || at + FRAME_HEADER_SIZE as u64 + len > size
            {
                continue;
            }
            if txid < next_txid.0 || txid > max_txid {
                continue;
            }
            let mut payload = vec![0; len as usize];
            file.read_exact_at(&mut payload, at + FRAME_HEADER_SIZE as u64)
                .map_err(|e| Error::io(path, e))?;
            if crc32fast::hash(&payload) == crc && decode_payload(&payload).is_ok() {
                return Ok(Some(TxId(txid)));
            }
        }
        chunk_start += probes;
    }
    Ok(None)
}
