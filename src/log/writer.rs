//! Appends frames to the newest segment, rolls segments, fsyncs.
//!
//! Invariant: every segment but the newest ends on a frame boundary and was
//! fsynced before the next one was created, so a torn frame can only be the
//! tail of the newest segment.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::log::files::SegmentFiles;
use crate::log::segment::{SEGMENT_HEADER_SIZE, SegmentHeader, create_segment, segment_path};
use crate::types::{Durability, SegmentId, TxId};

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
    file: Arc<File>,
    /// Bytes in the active segment; the next frame goes here.
    len: u64,
    roll_bytes: u64,
    /// Bytes were written since the last fsync.
    unsynced: bool,
    /// Set after a failed fsync (or a failed cleanup after a failed write):
    /// the file's state is unknown, so no more writes until reopen.
    poisoned: Option<String>,
}

impl LogWriter {
    pub(crate) fn new(
        dir: &Path,
        segment: SegmentId,
        file: Arc<File>,
        len: u64,
        roll_bytes: u64,
    ) -> LogWriter {
        LogWriter {
            dir: dir.to_path_buf(),
            segment,
            file,
            len,
            roll_bytes,
            unsynced: false,
            poisoned: None,
        }
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(reason) => Err(Error::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Appends one encoded frame for `txid`, rolling to a new segment first
    /// if the active one is full. With `Durability::Immediate` the frame is
    /// fsynced before this returns.
    ///
    /// On error nothing of the frame is visible to a later append: a failed
    /// write is cut off again, and a failed fsync poisons the writer.
    pub(crate) fn append(
        &mut self,
        frame: &[u8],
        txid: TxId,
        durability: Durability,
        files: &SegmentFiles,
    ) -> Result<FrameLocation> {
        self.check_poisoned()?;
        if self.len > SEGMENT_HEADER_SIZE as u64 && self.len + frame.len() as u64 > self.roll_bytes
        {
            self.roll(txid, files)?;
        }
        let offset = self.len;
        let path = segment_path(&self.dir, self.segment);
        if let Err(e) = self.file.write_all_at(frame, offset) {
            // Cut off whatever part of the frame reached the file, so the
            // next frame does not follow garbage.
            if let Err(cut) = self.file.set_len(offset) {
                self.poisoned = Some(format!(
                    "write failed ({e}) and truncating it back failed ({cut})"
                ));
            }
            return Err(Error::io(path, e));
        }
        self.len += frame.len() as u64;
        self.unsynced = true;
        if durability == Durability::Immediate {
            self.sync()?;
        }
        Ok(FrameLocation {
            segment: self.segment,
            offset: u32::try_from(offset).expect("segments stay below SEGMENT_SIZE_MAX"),
        })
    }

    /// Fsyncs the active segment if anything was written since the last sync.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.check_poisoned()?;
        if !self.unsynced {
            return Ok(());
        }
        if let Err(e) = self.file.sync_data() {
            self.poisoned = Some(format!("fsync failed: {e}"));
            return Err(Error::io(segment_path(&self.dir, self.segment), e));
        }
        self.unsynced = false;
        Ok(())
    }

    fn roll(&mut self, first_txid: TxId, files: &SegmentFiles) -> Result<()> {
        self.sync()?;
        let id = SegmentId(self.segment.0 + 1);
        let file = Arc::new(create_segment(&self.dir, SegmentHeader { id, first_txid })?);
        files.insert(id, Arc::clone(&file));
        self.segment = id;
        self.file = file;
        self.len = SEGMENT_HEADER_SIZE as u64;
        Ok(())
    }
}
