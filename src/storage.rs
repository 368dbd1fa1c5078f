//! The storage seam: every file operation the log performs on segment
//! files goes through these traits, so tests can inject I/O errors after N
//! calls and build post-crash images (only fsynced bytes kept).
//!
//! Renames and removals of files in the database directory have seam
//! methods too ([`Storage::rename`], [`Storage::remove_file`]), so a test
//! double can follow a file across a rename and model which directory
//! entries a crash keeps. Directory listing, the lock file and directory
//! creation use `std::fs` directly; they are not on the commit path.

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
    /// Opens an existing `path` for reading only (a read-only database).
    /// The default opens it with [`Storage::open`]; a read-only database
    /// never calls a write method on the handle either way.
    fn open_read_only(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        self.open(path, false)
    }
    /// Makes the creation, renaming or removal of files in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` if it exists (`rename(2)`:
    /// atomic, but durable only after [`Storage::sync_dir`]). The default
    /// is [`std::fs::rename`].
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    /// Maps the whole of `path` read-only, for files that never change once
    /// written (history runs), so point reads of them need no system call
    /// and no copy (sequential reads such as merges still use
    /// [`StorageFile::read_exact_at`]). `FileStorage` maps for random
    /// access: a page fault reads that page only. `None` (the default) reads them through
    /// [`StorageFile::read_exact_at`] instead; so does a caller whose map
    /// fails.
    fn map_read_only(&self, path: &Path) -> io::Result<Option<MappedFile>> {
        let _ = path;
        Ok(None)
    }
    /// Removes the file `path` (durable only after [`Storage::sync_dir`]).
    /// The default is [`std::fs::remove_file`].
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
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

    fn open_read_only(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(File::open(path)?))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn map_read_only(&self, path: &Path) -> io::Result<Option<MappedFile>> {
        let file = File::open(path)?;
        // SAFETY: `Mmap::map` is unsafe because the mapped bytes may change
        // or vanish if the file is written or truncated while mapped. The
        // only files timecask maps are history runs, which are immutable:
        // a run is written under a temporary name, fsynced and renamed into
        // place, and no code path opens an installed run for writing or
        // truncates it; compaction removes a run with `unlink`, which keeps
        // the mapped pages valid until the map is dropped. A read copies
        // the bytes it uses out of the map, then checks their CRC, then
        // decodes the copy (`runs::grouped::GroupedBlock::parse_shared`),
        // so bytes changed underneath (by another process writing into the
        // file, which timecask's contract forbids as for any database file)
        // are reported as `Corrupt`, never returned as data. Truncation by
        // another process is the remaining case: a read of a page past the
        // new end raises SIGBUS and ends the process (the same contract as
        // LMDB's); it cannot return wrong data or change any file. Tested by
        // `tests/run_mapping.rs` (reads through the map equal reads through
        // `read_exact_at`; a byte flipped on disk under a live map is
        // `Corrupt`).
        let map = unsafe { memmap2::Mmap::map(&file)? };
        // Reads through the map are point reads: a page fault should read
        // that page, not the kernel's read-around window (measured: a cold
        // as-of read 3.9 ms with read-around against one block read).
        map.advise(memmap2::Advice::Random)?;
        Ok(Some(MappedFile(Mapped::File(map))))
    }
}

/// A read-only map of a whole file, from [`Storage::map_read_only`].
///
/// ```
/// use timecask::storage::{FileStorage, Storage};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("f");
/// std::fs::write(&path, b"bytes")?;
/// let map = FileStorage.map_read_only(&path)?.expect("the file system maps");
/// assert_eq!(&map[..], b"bytes");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct MappedFile(Mapped);

enum Mapped {
    File(memmap2::Mmap),
    Bytes(Box<[u8]>),
}

impl MappedFile {
    /// A file's bytes that a [`Storage`] holds in memory, handed out as its
    /// map.
    ///
    /// ```
    /// let map = timecask::storage::MappedFile::from_bytes(b"run".to_vec());
    /// assert_eq!(&map[..], b"run");
    /// ```
    pub fn from_bytes(bytes: Vec<u8>) -> MappedFile {
        MappedFile(Mapped::Bytes(bytes.into_boxed_slice()))
    }
}

impl MappedFile {
    /// Asks the kernel to start reading `len` bytes at `offset` into the
    /// page cache (`MADV_WILLNEED`) without waiting: several reads that
    /// will fault pages of different files then wait for one round of
    /// I/O, not one each. A hint: out-of-range or failed advice is
    /// ignored.
    pub fn prefetch(&self, offset: usize, len: usize) {
        if let Mapped::File(map) = &self.0
            && offset.checked_add(len).is_some_and(|end| end <= map.len())
        {
            let _ = map.advise_range(memmap2::Advice::WillNeed, offset, len);
        }
    }
}

impl std::ops::Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Mapped::File(map) => map,
            Mapped::Bytes(bytes) => bytes,
        }
    }
}

impl fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedFile")
            .field("len", &self.len())
            .finish()
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

/// A handle of a read-only database: reads pass through, every write,
/// truncation or sync fails, so no code path can change a file by mistake.
#[derive(Debug)]
pub(crate) struct ReadOnlyFile(pub Arc<dyn StorageFile>);

impl ReadOnlyFile {
    fn refuse() -> io::Error {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the database is open read-only",
        )
    }
}

impl StorageFile for ReadOnlyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(ReadOnlyFile::refuse())
    }

    fn set_len(&self, _len: u64) -> io::Result<()> {
        Err(ReadOnlyFile::refuse())
    }

    fn sync_data(&self) -> io::Result<()> {
        Err(ReadOnlyFile::refuse())
    }

    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_file_refuses_every_write_and_keeps_the_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").expect("write");
        let file = ReadOnlyFile(FileStorage.open_read_only(&path).expect("open"));
        assert!(file.write_all_at(b"x", 0).is_err());
        assert!(file.set_len(0).is_err());
        assert!(file.sync_data().is_err());
        let mut buf = [0; 3];
        file.read_exact_at(&mut buf, 0).expect("read");
        assert_eq!(&buf, b"abc");
        assert_eq!(std::fs::read(&path).expect("read"), b"abc");
    }

    #[test]
    fn default_rename_and_remove_act_on_the_file_system() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"one").expect("write");
        std::fs::write(&b, b"two").expect("write");
        FileStorage.rename(&a, &b).expect("rename");
        assert!(!a.exists());
        assert_eq!(std::fs::read(&b).expect("read"), b"one");
        FileStorage.remove_file(&b).expect("remove");
        assert!(!b.exists());
        let err = FileStorage.remove_file(&b).expect_err("already gone");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
