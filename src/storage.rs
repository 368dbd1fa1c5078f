//! The storage seam: every file operation the log performs on segment
//! files goes through these traits, so tests can inject I/O errors after N
//! calls and build post-crash images (only fsynced bytes kept).
//!
//! Directory listing, the lock file and directory creation use `std::fs`
//! directly; they are not on the commit path.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// One open segment file.
///
/// Implementations must be safe to call from several threads at once:
/// readers do positioned reads while the writer appends and syncs.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Reads exactly `buf.len()` bytes at `offset` (`UnexpectedEof` if the
    /// file is shorter).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes every byte written so far durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// The file's current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// Opens segment files and syncs directories.
///
/// ```
/// use std::sync::Arc;
/// let config = timecask::Config {
///     storage: Arc::new(timecask::storage::FileStorage),
///     ..Default::default()
/// };
/// # let _ = config;
/// ```
pub trait Storage: Send + Sync + fmt::Debug {
    /// Opens `path` for reading and writing; with `create_new`, creates it
    /// and fails if it exists.
    fn open(&self, path: &Path, create_new: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Makes the creation or removal of files in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct FileStorage;

impl Storage for FileStorage {
    fn open(&self, path: &Path, create_new: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(create_new)
            .open(path)?;
        Ok(Arc::new(file))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl StorageFile for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}
