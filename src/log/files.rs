//! Read access to segment files: one open handle per segment, positioned
//! reads of exactly the bytes asked for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::log::segment::segment_path;
use crate::storage::StorageFile;
use crate::types::SegmentId;

/// The open segment files of one database, shared by readers and the writer.
///
/// Invariant: the lock is held only to clone a file handle, never across I/O.
pub(crate) struct SegmentFiles {
    dir: PathBuf,
    /// Each open handle with a process-unique id (never reused), so caches
    /// keyed by it cannot confuse a rewritten segment with its old file.
    files: RwLock<BTreeMap<SegmentId, UidHandle>>,
}

/// An open segment handle and its process-unique id.
type UidHandle = (u64, Arc<dyn StorageFile>);

/// Source of handle ids.
static NEXT_HANDLE_UID: AtomicU64 = AtomicU64::new(1);

impl SegmentFiles {
    pub(crate) fn new(dir: &Path) -> SegmentFiles {
        SegmentFiles {
            dir: dir.to_path_buf(),
            files: RwLock::new(BTreeMap::new()),
        }
    }

    pub(crate) fn insert(&self, id: SegmentId, file: Arc<dyn StorageFile>) {
        let uid = NEXT_HANDLE_UID.fetch_add(1, Ordering::Relaxed);
        self.files
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (uid, file));
    }

    /// Closes (drops) every handle of a segment below `id`: their history
    /// is in runs now.
    pub(crate) fn remove_below(&self, id: SegmentId) {
        self.files
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|seg, _| *seg >= id);
    }

    /// Replaces every handle with those of `other` (a follower that read
    /// the log afresh). Callers hold the index write lock, so the handles
    /// change together with the locations that point into them.
    pub(crate) fn replace_all(&self, other: SegmentFiles) {
        let fresh = other.files.into_inner().unwrap_or_else(|e| e.into_inner());
        *self.files.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    }

    /// The open handle of segment `id`. Callers that hold an index
    /// location take the handle under the same index lock (see `Located`).
    pub(crate) fn handle(&self, id: SegmentId) -> Result<Arc<dyn StorageFile>> {
        Ok(self.handle_with_uid(id)?.1)
    }

    /// [`SegmentFiles::handle`] with the handle's unique id.
    pub(crate) fn handle_with_uid(&self, id: SegmentId) -> Result<UidHandle> {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        match files.get(&id) {
            Some((uid, file)) => Ok((*uid, Arc::clone(file))),
            None => Err(Error::corrupt(
                segment_path(&self.dir, id),
                0,
                "the index refers to a segment that is not open",
            )),
        }
    }

    /// The ids of every open segment, ascending.
    pub(crate) fn ids(&self) -> Vec<SegmentId> {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        files.keys().copied().collect()
    }

    /// Reads exactly `len` bytes at `offset` of `file`, segment `id`.
    pub(crate) fn read_from(
        &self,
        file: &dyn StorageFile,
        id: SegmentId,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::corrupt(
                    segment_path(&self.dir, id),
                    offset,
                    "file ends before the data the index points to",
                )
            } else {
                Error::io(segment_path(&self.dir, id), e)
            }
        })?;
        Ok(buf)
    }

    /// Path of segment `id`, for error messages.
    pub(crate) fn path(&self, id: SegmentId) -> PathBuf {
        segment_path(&self.dir, id)
    }
}
