//! Appends frames to the newest segment and rolls segments.
//!
//! Invariant: every segment but the newest ends on a frame boundary and was
//! fsynced before the next one was created, so a torn frame can only be the
//! tail of the newest segment. Fsyncs of the newest segment are not done
//! here but by group commit (`crate::durable`), outside the writer mutex.

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

/// The single appender of a database's log.
pub(crate) struct LogWriter {
    dir: PathBuf,
    segment: SegmentId,
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    storage: Arc<dyn Storage>,
    /// Bytes in the active segment; the next frame goes here.
    len: u64,
    roll_bytes: u64,
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
        roll_bytes: u64,
        poison: Arc<Poison>,
    ) -> LogWriter {
        LogWriter {
            storage,
            dir: dir.to_path_buf(),
            segment,
            path: segment_path(dir, segment),
            file,
            len,
            roll_bytes,
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
        if self.len > SEGMENT_HEADER_SIZE as u64 && self.len + frame.len() as u64 > self.roll_bytes
        {
            self.roll(txid, files)?;
        }
        let offset = self.len;
        if let Err(e) = self.file.write_all_at(frame, offset) {
            // Cut off whatever part of the frame reached the file, so the
            // next frame does not follow garbage.
            if let Err(cut) = self.file.set_len(offset) {
                self.poison.set(format!(
                    "a write to {} failed ({e}) and truncating it back failed ({cut})",
                    self.path.display()
                ));
            }
            return Err(Error::io(&self.path, e));
        }
        self.len += frame.len() as u64;
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

    /// Fsyncs the active segment, creates the next one and makes it active.
    fn roll(&mut self, first_txid: TxId, files: &SegmentFiles) -> Result<()> {
        self.poison.sync(self.file.as_ref(), &self.path)?;
        let id = SegmentId(self.segment.0 + 1);
        let file = create_segment(
            self.storage.as_ref(),
            &self.dir,
            SegmentHeader { id, first_txid },
        )?;
        files.insert(id, Arc::clone(&file));
        self.segment = id;
        self.path = segment_path(&self.dir, id);
        self.file = file;
        self.len = SEGMENT_HEADER_SIZE as u64;
        Ok(())
    }
}
