//! Test doubles shared by the integration tests, the fuzz targets and the
//! corpus replay test. Not part of the stable API.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::storage::{FileStorage, Storage, StorageFile};

/// Which calls fail. Counters count calls on segment files after the plan
/// is armed; `None` never fails.
#[derive(Debug, Default)]
pub struct Plan {
    /// Fail the Nth `write_all_at`.
    pub fail_write_at: Option<u64>,
    /// Fail the Nth `sync_data`.
    pub fail_sync_at: Option<u64>,
    /// Fail the Nth `set_len`.
    pub fail_set_len_at: Option<u64>,
    /// A failing write first writes this many bytes (a partial write).
    pub partial_write_bytes: usize,
    /// The error to fail with (`StorageFull` gives a real ENOSPC).
    pub error: Option<io::ErrorKind>,
    writes: u64,
    syncs: u64,
    set_lens: u64,
    /// Bytes of each file known to be durable (as of its last fsync).
    synced_len: HashMap<PathBuf, u64>,
}

/// A file system that fails on cue and remembers what was fsynced.
#[derive(Debug, Clone, Default)]
pub struct FaultyStorage {
    plan: Arc<Mutex<Plan>>,
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn StorageFile>,
    path: PathBuf,
    plan: Arc<Mutex<Plan>>,
}

fn injected(plan: &Plan) -> io::Error {
    match plan.error {
        Some(io::ErrorKind::StorageFull) => io::Error::from_raw_os_error(28), // ENOSPC
        Some(kind) => io::Error::new(kind, "injected fault"),
        None => io::Error::other("injected fault"),
    }
}

impl Storage for FaultyStorage {
    fn open(&self, path: &Path, create_new: bool) -> io::Result<Arc<dyn StorageFile>> {
        let inner = FileStorage.open(path, create_new)?;
        let len = inner.len()?;
        lock(&self.plan)
            .synced_len
            .entry(path.to_path_buf())
            .or_insert(len);
        Ok(Arc::new(FaultyFile {
            inner,
            path: path.to_path_buf(),
            plan: Arc::clone(&self.plan),
        }))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        FileStorage.sync_dir(dir)
    }
}

impl StorageFile for FaultyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut plan = lock(&self.plan);
        plan.writes += 1;
        if plan.fail_write_at == Some(plan.writes) {
            let partial = plan.partial_write_bytes.min(buf.len());
            self.inner.write_all_at(&buf[..partial], offset)?;
            return Err(injected(&plan));
        }
        self.inner.write_all_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut plan = lock(&self.plan);
        plan.set_lens += 1;
        if plan.fail_set_len_at == Some(plan.set_lens) {
            return Err(injected(&plan));
        }
        self.inner.set_len(len)?;
        let synced = plan.synced_len.entry(self.path.clone()).or_insert(len);
        *synced = (*synced).min(len);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut plan = lock(&self.plan);
        plan.syncs += 1;
        if plan.fail_sync_at == Some(plan.syncs) {
            return Err(injected(&plan));
        }
        self.inner.sync_data()?;
        let len = self.inner.len()?;
        plan.synced_len.insert(self.path.clone(), len);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl FaultyStorage {
    /// Whether any failure is set up.
    pub fn armed(&self) -> bool {
        let plan = lock(&self.plan);
        plan.fail_write_at.is_some()
            || plan.fail_sync_at.is_some()
            || plan.fail_set_len_at.is_some()
    }

    /// Clears earlier failures and counters, then sets up which calls fail.
    pub fn arm(&self, f: impl FnOnce(&mut Plan)) {
        let mut plan = lock(&self.plan);
        let synced_len = std::mem::take(&mut plan.synced_len);
        *plan = Plan {
            synced_len,
            ..Plan::default()
        };
        f(&mut plan);
    }

    /// Copies the database as a power cut would leave it: each segment cut
    /// to its fsynced length, followed by `garbage` bytes standing in for a
    /// torn unsynced tail.
    ///
    /// Panics on I/O errors: this is a test helper.
    pub fn crash_image(&self, from: &Path, to: &Path, garbage: &[u8]) {
        let plan = lock(&self.plan);
        for entry in std::fs::read_dir(from).expect("crash_image: read dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "tcseg") {
                continue;
            }
            let mut bytes = std::fs::read(&path).expect("read");
            let synced = plan.synced_len.get(&path).copied().unwrap_or(0) as usize;
            if synced < bytes.len() {
                bytes.truncate(synced);
                bytes.extend_from_slice(garbage);
            }
            std::fs::write(to.join(path.file_name().expect("name")), bytes).expect("write");
        }
    }
}

fn lock(plan: &Mutex<Plan>) -> MutexGuard<'_, Plan> {
    plan.lock().unwrap_or_else(|e| e.into_inner())
}
