//! Appends frames to the newest segment and rolls segments.
//!
//! Invariant: every segment but the newest ends on a frame boundary (its
//! file is exactly as long as its frames) and was fsynced before the next
//! one was created, so a torn frame can only be the tail of the newest
//! segment. Fsyncs of the newest segment's frames are not done here but by
//! group commit (`crate::durable`), outside the writer mutex.
//!
//! Preallocation: the newest segment's file is extended ahead of its frames
//! in chunks of zeros, each written and fsynced once
//! ([`SegmentSizing::preallocate_bytes`]), so the fsync of a commit
//! overwrites space the file already has and commits no size change. The
//! writer keeps the logical end (after the last frame) in memory; readers
//! find it where the frames stop (an all-zero frame header is never a
//! frame). A roll cuts the segment back to its logical end before it is
//! fsynced, so preallocated space only ever exists in the newest segment.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::log::files::SegmentFiles;
use crate::log::poison::Poison;
use crate::log::segment::{SEGMENT_HEADER_SIZE, SegmentHeader, create_segment, segment_path};
use crate::storage::{Storage, StorageFile};
use crate::types::{SegmentId, TxId};

/// Where a frame landed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameLocation {
    pub segment: SegmentId,
    pub offset: u32,
}

/// How large segments grow and how far ahead of its frames the newest one
/// is extended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentSizing {
    /// A segment that holds a frame rolls before a frame would take it past
    /// this.
    pub roll_bytes: u64,
    /// Zeros written (and fsynced) at a time past the logical end of the
    /// newest segment, up to `roll_bytes`; 0 turns preallocation off.
    pub preallocate_bytes: u64,
}

/// The largest single write of zeros when extending a segment.
const ZERO_WRITE_SIZE_MAX: usize = 1 << 20;

/// The single appender of a database's log.
pub(crate) struct LogWriter {
    dir: PathBuf,
    segment: SegmentId,
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    storage: Arc<dyn Storage>,
    /// The logical end of the active segment: the next frame goes here.
    len: u64,
    /// The file's length as the writer made it (at least `len`): bytes in
    /// `len..allocated` are zeros written and fsynced by [`LogWriter::extend`].
    allocated: u64,
    sizing: SegmentSizing,
    /// A roll cut this segment back and then failed to create the next one:
    /// frames go on into this segment without preallocation, so it still
    /// ends at its last frame if a stale next segment was left behind
    /// (recovery and followers take such a segment as a roll in progress).
    no_preallocation: bool,
    /// Shared with group commit: set by a failed fsync of any log file, or
    /// when a failed write could not be cut off again (the file's state is
    /// unknown); no more writes until reopen.
    poison: Arc<Poison>,
}

impl LogWriter {
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        dir: &Path,
        segment: SegmentId,
        file: Arc<dyn StorageFile>,
        len: u64,
        sizing: SegmentSizing,
        poison: Arc<Poison>,
    ) -> LogWriter {
        LogWriter {
            storage,
            dir: dir.to_path_buf(),
            segment,
            path: segment_path(dir, segment),
            file,
            len,
            allocated: len,
            sizing,
            no_preallocation: false,
            poison,
        }
    }

    /// The segment frames are appended to now, and its path.
    pub(crate) fn active(&self) -> (&Arc<dyn StorageFile>, &PathBuf) {
        (&self.file, &self.path)
    }

    /// The active segment and the offset the next frame goes to (for a
    /// read-only database: where its log ends).
    pub(crate) fn position(&self) -> (SegmentId, u64) {
        (self.segment, self.len)
    }

    /// Appends one encoded frame for `txid`, rolling to a new segment first
    /// if the active one is full. Does not fsync the frame.
    ///
    /// On error nothing of the frame is visible to a later append: a failed
    /// write is cut off again (or, if that fails too, the writer refuses
    /// every later append).
    pub(crate) fn append(
        &mut self,
        frame: &[u8],
        txid: TxId,
        files: &SegmentFiles,
    ) -> Result<FrameLocation> {
        self.poison.check()?;
        if self.len > SEGMENT_HEADER_SIZE as u64
            && self.len + frame.len() as u64 > self.sizing.roll_bytes
        {
            self.roll(txid, files)?;
        }
        let offset = self.len;
        self.extend(offset + frame.len() as u64)?;
        if let Err(e) = self.file.write_all_at(frame, offset) {
            // Cut off whatever part of the frame reached the file (and the
            // preallocated space after it), so the next frame does not
            // follow garbage.
            self.allocated = offset;
            if let Err(cut) = self.file.set_len(offset) {
                self.poison.set(format!(
                    "a write to {} failed ({e}) and truncating it back failed ({cut})",
                    self.path.display()
                ));
            }
            return Err(Error::io(&self.path, e));
        }
        self.len += frame.len() as u64;
        self.allocated = self.allocated.max(self.len);
        Ok(FrameLocation {
            segment: self.segment,
            offset: u32::try_from(offset).expect("segments stay below SEGMENT_SIZE_MAX"),
        })
    }

    /// Seals the active segment if it holds any frame (the next frame,
    /// `next_txid`, goes to a new segment). Returns the active segment's id
    /// afterwards: every segment below it is sealed.
    pub(crate) fn seal(&mut self, next_txid: TxId, files: &SegmentFiles) -> Result<SegmentId> {
        self.poison.check()?;
        if self.len > SEGMENT_HEADER_SIZE as u64 {
            self.roll(next_txid, files)?;
        }
        Ok(self.segment)
    }

    /// Makes sure the active segment's file reaches `end`: if it does not,
    /// extends it by a chunk of zeros (at least to `end`, at most to the
    /// roll size unless `end` is past it) and fsyncs them, so the frames
    /// written into that space later need no size change to be durable. A
    /// frame that would not fit in a whole chunk is left to extend the file
    /// itself.
    ///
    /// A failed write leaves the frames before it as they were (zeros past
    /// the logical end are what recovery expects there); a failed fsync
    /// poisons the writer like any other. Either way no frame is written.
    fn extend(&mut self, end: u64) -> Result<()> {
        if end <= self.allocated || self.no_preallocation {
            return Ok(());
        }
        let chunk_end = self.allocated + self.sizing.preallocate_bytes;
        if end >= chunk_end {
            // Preallocation off, or a frame larger than a chunk: its own
            // write extends the file (writing it twice would cost more than
            // the size change its fsync commits).
            return Ok(());
        }
        let target = end.max(chunk_end.min(self.sizing.roll_bytes));
        let zeros = vec![0; ZERO_WRITE_SIZE_MAX.min((target - self.allocated) as usize)];
        let mut at = self.allocated;
        while at < target {
            let n = (target - at).min(zeros.len() as u64) as usize;
            self.file
                .write_all_at(&zeros[..n], at)
                .map_err(|e| Error::io(&self.path, e))?;
            at += n as u64;
        }
        self.poison.sync(self.file.as_ref(), &self.path)?;
        self.allocated = target;
        Ok(())
    }

    /// Cuts the preallocated space off the active segment (a clean close:
    /// the file is left as long as its frames). Not fsynced: if the cut is
    /// lost, recovery finds zeros after the last frame, as after a crash.
    pub(crate) fn release_preallocation(&mut self) -> Result<()> {
        self.poison.check()?;
        if self.allocated > self.len {
            self.file
                .set_len(self.len)
                .map_err(|e| Error::io(&self.path, e))?;
            self.allocated = self.len;
        }
        Ok(())
    }

    /// Cuts the active segment back to its last frame, fsyncs it, creates
    /// the next one and makes it active.
    fn roll(&mut self, first_txid: TxId, files: &SegmentFiles) -> Result<()> {
        if self.allocated > self.len {
            // Only the newest segment has preallocated space: readers take
            // the end of every other one as the end of its frames.
            self.file
                .set_len(self.len)
                .map_err(|e| Error::io(&self.path, e))?;
            self.allocated = self.len;
        }
        self.poison.sync(self.file.as_ref(), &self.path)?;
        let id = SegmentId(self.segment.0 + 1);
        let file = create_segment(
            self.storage.as_ref(),
            &self.dir,
            SegmentHeader { id, first_txid },
        )
        .inspect_err(|_| self.no_preallocation = true)?;
        files.insert(id, Arc::clone(&file));
        self.segment = id;
        self.path = segment_path(&self.dir, id);
        self.file = file;
        self.len = SEGMENT_HEADER_SIZE as u64;
        self.allocated = self.len;
        self.no_preallocation = false;
        Ok(())
    }
}
