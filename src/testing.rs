//! Test doubles shared by the integration tests, the fuzz targets and the
//! corpus replay test. Not part of the stable API.
//!
//! [`FaultyStorage`] fails calls on cue ([`Plan`]) and models what a crash
//! leaves on disk: for every file opened through it (followed by inode, so
//! across renames) the content as of its last successful `sync_data` and
//! the writes since, in order; for every directory the entries as of its
//! last `sync_dir`. A [`CrashState`] freezes that model at one moment; it
//! writes crash images under a [`CrashMode`] and a [`DirState`].

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::storage::{FileStorage, Storage, StorageFile};

/// Which calls fail. Counters count calls after the plan is armed; `None`
/// never fails.
#[derive(Debug, Default)]
pub struct Plan {
    /// Fail the Nth `write_all_at`.
    pub fail_write_at: Option<u64>,
    /// Fail the Nth `sync_data`.
    pub fail_sync_at: Option<u64>,
    /// Fail the Nth `set_len`.
    pub fail_set_len_at: Option<u64>,
    /// Fail the Nth `Storage::rename`.
    pub fail_rename_at: Option<u64>,
    /// Fail the Nth `Storage::remove_file`.
    pub fail_remove_at: Option<u64>,
    /// A failing write first writes this many bytes (a partial write).
    pub partial_write_bytes: usize,
    /// The error to fail with (`StorageFull` gives a real ENOSPC).
    pub error: Option<io::ErrorKind>,
    writes: u64,
    syncs: u64,
    set_lens: u64,
    renames: u64,
    removes: u64,
}

/// What a crash image keeps of the bytes written to a file since its last
/// successful `sync_data` ("unsynced writes"). Bytes synced are always kept;
/// a `set_len` that shrank a file counts as done (the cut is metadata).
/// Files never opened through [`FaultyStorage`] (`LOCK`, the checkpoint,
/// anything else) are copied as they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Only the synced content; if the file had grown since, `garbage`
    /// follows it (empty: a clean cut at the synced length). What the
    /// original `crash_image` builds.
    SyncedOnly {
        /// Bytes standing in for a torn unsynced tail.
        garbage: Vec<u8>,
    },
    /// The file has its live size but unsynced bytes were never written:
    /// everything past the synced length reads back as zeros, and unsynced
    /// overwrites inside it are lost (what ext4 or XFS can leave after a
    /// power cut: the size update reached the journal, the data did not).
    ZeroTail,
    /// The live size, and random bytes (from `seed`) over every unsynced
    /// region: past the synced length and wherever an unsynced write
    /// landed (sectors torn or scribbled by a failing disk).
    RandomTail {
        /// Seeds the bytes (mixed with the file's identity).
        seed: u64,
    },
    /// A random subset (from `seed`) of the unsynced writes persisted: each
    /// write, cut at 4 KiB page boundaries, persists page by page or not at
    /// all, independently, so a later write can survive an earlier one that
    /// did not. The file is as long as the synced content or the furthest
    /// persisted byte (gaps read as zeros).
    Reordered {
        /// Picks the subset (mixed with the file's identity).
        seed: u64,
    },
    /// Every write persisted: a process crash (SIGKILL), where the page
    /// cache survives.
    AllWritten,
}

impl CrashMode {
    /// Every mode, with `seeds` seeds for the random ones (`Reordered` gets
    /// each seed, `RandomTail` the first) and a short garbage tail.
    pub fn all(seeds: u64) -> Vec<CrashMode> {
        let mut modes = vec![
            CrashMode::SyncedOnly { garbage: vec![] },
            CrashMode::SyncedOnly {
                garbage: vec![0x5A; 13],
            },
            CrashMode::ZeroTail,
            CrashMode::RandomTail { seed: 1 },
            CrashMode::AllWritten,
        ];
        modes.extend((0..seeds).map(|seed| CrashMode::Reordered { seed }));
        modes
    }
}

/// Which directory entries a crash image has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirState {
    /// The entries as of the directory's last `sync_dir` through the seam
    /// (or as first seen): files created, renamed or removed since are as
    /// before. An entry keeps the file (inode) it named then, with that
    /// file's content under the crash mode.
    Durable,
    /// The entries as they are now (a file system that journals directory
    /// changes in order, or a process crash).
    Live,
}

/// One write or truncation since a file's last successful `sync_data`.
#[derive(Clone, Debug)]
enum Pending {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

/// What is known about one file (inode) opened through the seam.
#[derive(Clone, Debug, Default)]
struct Tracked {
    /// The content as of the last successful `sync_data`.
    durable: Vec<u8>,
    /// Writes and truncations since, in order.
    pending: Vec<Pending>,
}

fn write_into(out: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let start = offset as usize;
    let end = start + bytes.len();
    if out.len() < end {
        out.resize(end, 0);
    }
    out[start..end].copy_from_slice(bytes);
}

/// splitmix64: a few lines, good enough to pick bytes and subsets.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, file: usize) -> Rng {
        Rng(seed ^ (file as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

const PAGE_SIZE: u64 = 4096;

impl Tracked {
    /// The content with every write applied (what the file holds now).
    fn live(&self) -> Vec<u8> {
        let mut out = self.durable.clone();
        for p in &self.pending {
            match p {
                Pending::Write { offset, bytes } => write_into(&mut out, *offset, bytes),
                Pending::SetLen(len) => out.resize(*len as usize, 0),
            }
        }
        out
    }

    fn sync(&mut self) {
        self.durable = self.live();
        self.pending.clear();
    }

    /// The synced content cut to the shortest length a pending `set_len`
    /// left (a cut is metadata and counts as done).
    fn synced_base(&self) -> Vec<u8> {
        let mut base = self.durable.clone();
        for p in &self.pending {
            if let Pending::SetLen(len) = p {
                base.truncate(*len as usize);
            }
        }
        base
    }

    fn image(&self, mode: &CrashMode, file: usize) -> Vec<u8> {
        if self.pending.is_empty() {
            return self.durable.clone();
        }
        let live_len = self.live().len();
        match mode {
            CrashMode::AllWritten => self.live(),
            CrashMode::SyncedOnly { garbage } => {
                let mut out = self.synced_base();
                if live_len > out.len() {
                    out.extend_from_slice(garbage);
                }
                out
            }
            CrashMode::ZeroTail => {
                let mut out = self.synced_base();
                out.resize(live_len, 0);
                out
            }
            CrashMode::RandomTail { seed } => {
                let mut rng = Rng::new(*seed, file);
                let mut out = self.synced_base();
                let synced = out.len();
                out.resize(live_len, 0);
                let mut scribble = |range: std::ops::Range<usize>| {
                    for b in &mut out[range] {
                        *b = rng.next() as u8;
                    }
                };
                scribble(synced.min(live_len)..live_len);
                for p in &self.pending {
                    if let Pending::Write { offset, bytes } = p {
                        let start = (*offset as usize).min(live_len);
                        let end = (*offset as usize + bytes.len()).min(live_len);
                        scribble(start..end);
                    }
                }
                out
            }
            CrashMode::Reordered { seed } => {
                let mut rng = Rng::new(*seed, file);
                let mut out = self.durable.clone();
                for p in &self.pending {
                    match p {
                        Pending::SetLen(len) => out.resize(*len as usize, 0),
                        Pending::Write { offset, bytes } => {
                            let mut at = *offset;
                            let mut rest = &bytes[..];
                            while !rest.is_empty() {
                                let room = (PAGE_SIZE - at % PAGE_SIZE) as usize;
                                let (piece, tail) = rest.split_at(room.min(rest.len()));
                                if rng.next() & 1 == 1 {
                                    write_into(&mut out, at, piece);
                                }
                                at += piece.len() as u64;
                                rest = tail;
                            }
                        }
                    }
                }
                out
            }
        }
    }
}

/// A directory entry in the model.
#[derive(Clone, Debug)]
enum Entry {
    /// A file opened through the seam (index into `Tracker::files`).
    Tracked(usize),
    /// Any other file, with its inode and its bytes when last seen.
    Untracked { ino: u64, bytes: Vec<u8> },
}

/// The model of every file and directory the seam has touched.
#[derive(Debug, Default)]
struct Tracker {
    files: Vec<Tracked>,
    by_ino: HashMap<u64, usize>,
    /// Directory entries as of the last `sync_dir` (or as first seen).
    durable_dirs: HashMap<PathBuf, BTreeMap<OsString, Entry>>,
    /// Mutating seam calls so far (creating opens, writes, truncations,
    /// syncs, renames, removals), failed ones included.
    calls: u64,
    capture_every_call: bool,
    captures: Vec<CrashState>,
}

fn read_regular_files(dir: &Path) -> io::Result<Vec<(OsString, u64, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            // Removed while listing (a concurrent compaction or checkpoint).
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !meta.is_file() {
            continue;
        }
        match std::fs::read(entry.path()) {
            Ok(bytes) => out.push((entry.file_name(), meta.ino(), bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

impl Tracker {
    /// The entries of `dir` now. A file counts as tracked only if its inode
    /// is known and its bytes are what the model says (an inode number
    /// reused by a file written around the seam is not mistaken for it).
    fn scan(&self, dir: &Path) -> BTreeMap<OsString, Entry> {
        let files = read_regular_files(dir).unwrap_or_default();
        files
            .into_iter()
            .map(|(name, ino, bytes)| {
                let entry = match self.by_ino.get(&ino) {
                    Some(&id) if self.files[id].live() == bytes => Entry::Tracked(id),
                    _ => Entry::Untracked { ino, bytes },
                };
                (name, entry)
            })
            .collect()
    }

    /// Records the first sight of `dir` as its durable state.
    fn see_dir(&mut self, dir: &Path) {
        if !self.durable_dirs.contains_key(dir) {
            let entries = self.scan(dir);
            self.durable_dirs.insert(dir.to_path_buf(), entries);
        }
    }

    /// Counts a mutating call on a file in `dir`; captures the state first
    /// if asked to.
    fn before_call(&mut self, dir: &Path) {
        self.see_dir(dir);
        if self.capture_every_call {
            let state = self.capture();
            self.captures.push(state);
        }
        self.calls += 1;
    }

    fn capture(&self) -> CrashState {
        let dirs = self
            .durable_dirs
            .iter()
            .map(|(dir, durable)| {
                let live = self.scan(dir);
                // An untracked file still there under its name is copied as
                // it is now; one replaced or removed since, as it was.
                let durable = durable
                    .iter()
                    .map(|(name, entry)| {
                        let entry = match (entry, live.get(name)) {
                            (
                                Entry::Untracked { ino, .. },
                                Some(now @ Entry::Untracked { ino: live_ino, .. }),
                            ) if ino == live_ino => now.clone(),
                            _ => entry.clone(),
                        };
                        (name.clone(), entry)
                    })
                    .collect();
                (dir.clone(), Dirs { durable, live })
            })
            .collect();
        CrashState {
            calls: self.calls,
            files: self.files.clone(),
            dirs,
        }
    }

    /// The model of the file just opened at `path` (inode `ino`, holding
    /// `bytes`): a new one if it was created or is unknown, else the one
    /// known for that inode.
    fn track(&mut self, ino: u64, created: bool, bytes: Vec<u8>) -> usize {
        if !created
            && let Some(&id) = self.by_ino.get(&ino)
            && self.files[id].live() == bytes
        {
            return id;
        }
        self.files.push(Tracked {
            durable: bytes,
            pending: Vec::new(),
        });
        let id = self.files.len() - 1;
        self.by_ino.insert(ino, id);
        id
    }
}

#[derive(Clone, Debug)]
struct Dirs {
    durable: BTreeMap<OsString, Entry>,
    live: BTreeMap<OsString, Entry>,
}

/// The crash model frozen at one moment: build any number of images from
/// it with [`CrashState::write_image`].
#[derive(Clone, Debug)]
pub struct CrashState {
    calls: u64,
    files: Vec<Tracked>,
    dirs: HashMap<PathBuf, Dirs>,
}

impl CrashState {
    /// Mutating seam calls made before this state (compare with
    /// [`FaultyStorage::calls`] taken when an operation returned: the
    /// operation finished before this state iff that count is `<=` this).
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// The files (name, bytes) a crash at this moment leaves of directory
    /// `from`. A directory the seam never touched is taken as it is now.
    ///
    /// Panics on I/O errors: this is a test helper.
    pub fn image(
        &self,
        from: &Path,
        mode: &CrashMode,
        dir: DirState,
    ) -> BTreeMap<OsString, Vec<u8>> {
        let Some(dirs) = self.dirs.get(from) else {
            return read_regular_files(from)
                .expect("crash image: read dir")
                .into_iter()
                .map(|(name, _, bytes)| (name, bytes))
                .collect();
        };
        let entries = match dir {
            DirState::Durable => &dirs.durable,
            DirState::Live => &dirs.live,
        };
        entries
            .iter()
            .map(|(name, entry)| {
                let bytes = match entry {
                    Entry::Tracked(id) => self.files[*id].image(mode, *id),
                    Entry::Untracked { bytes, .. } => bytes.clone(),
                };
                (name.clone(), bytes)
            })
            .collect()
    }

    /// Writes into `to` (an existing, empty directory) what a crash at this
    /// moment leaves of directory `from` ([`CrashState::image`]).
    ///
    /// Panics on I/O errors: this is a test helper.
    pub fn write_image(&self, from: &Path, to: &Path, mode: &CrashMode, dir: DirState) {
        for (name, bytes) in self.image(from, mode, dir) {
            std::fs::write(to.join(name), bytes).expect("crash image: write");
        }
    }

    /// Whether an image under `mode` can differ from one under
    /// [`CrashMode::AllWritten`] and [`DirState::Live`], i.e. whether any
    /// write or directory change is not yet durable.
    pub fn has_unsynced(&self) -> bool {
        self.files.iter().any(|f| !f.pending.is_empty())
            || self.dirs.values().any(|d| {
                d.durable.len() != d.live.len()
                    || d.durable.iter().zip(&d.live).any(|((a, x), (b, y))| {
                        a != b
                            || match (x, y) {
                                (Entry::Tracked(i), Entry::Tracked(j)) => i != j,
                                (
                                    Entry::Untracked { ino: i, .. },
                                    Entry::Untracked { ino: j, .. },
                                ) => i != j,
                                _ => true,
                            }
                    })
            })
    }
}

/// A file system that fails on cue and models what a crash keeps.
#[derive(Debug, Clone, Default)]
pub struct FaultyStorage {
    plan: Arc<Mutex<Plan>>,
    tracker: Arc<Mutex<Tracker>>,
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn StorageFile>,
    dir: PathBuf,
    id: usize,
    plan: Arc<Mutex<Plan>>,
    tracker: Arc<Mutex<Tracker>>,
}

fn injected(plan: &Plan) -> io::Error {
    match plan.error {
        Some(io::ErrorKind::StorageFull) => io::Error::from_raw_os_error(28), // ENOSPC
        Some(kind) => io::Error::new(kind, "injected fault"),
        None => io::Error::other("injected fault"),
    }
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl FaultyStorage {
    fn open_tracked(
        &self,
        path: &Path,
        create_new: bool,
        read_only: bool,
    ) -> io::Result<Arc<dyn StorageFile>> {
        let dir = parent(path);
        let mut tracker = lock(&self.tracker);
        if create_new {
            tracker.before_call(&dir);
        } else {
            tracker.see_dir(&dir);
        }
        let file = if read_only {
            File::open(path)?
        } else {
            File::options()
                .read(true)
                .write(true)
                .create_new(create_new)
                .open(path)?
        };
        let ino = file.metadata()?.ino();
        let bytes = if create_new {
            Vec::new()
        } else {
            std::fs::read(path)?
        };
        let id = tracker.track(ino, create_new, bytes);
        Ok(Arc::new(FaultyFile {
            inner: Arc::new(file),
            dir,
            id,
            plan: Arc::clone(&self.plan),
            tracker: Arc::clone(&self.tracker),
        }))
    }
}

impl Storage for FaultyStorage {
    fn open(&self, path: &Path, create_new: bool) -> io::Result<Arc<dyn StorageFile>> {
        self.open_tracked(path, create_new, false)
    }

    fn open_read_only(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        self.open_tracked(path, false, true)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut tracker = lock(&self.tracker);
        tracker.before_call(dir);
        FileStorage.sync_dir(dir)?;
        let entries = tracker.scan(dir);
        tracker.durable_dirs.insert(dir.to_path_buf(), entries);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut plan = lock(&self.plan);
        let mut tracker = lock(&self.tracker);
        tracker.before_call(&parent(from));
        tracker.see_dir(&parent(to));
        plan.renames += 1;
        if plan.fail_rename_at == Some(plan.renames) {
            return Err(injected(&plan));
        }
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut plan = lock(&self.plan);
        let mut tracker = lock(&self.tracker);
        tracker.before_call(&parent(path));
        plan.removes += 1;
        if plan.fail_remove_at == Some(plan.removes) {
            return Err(injected(&plan));
        }
        std::fs::remove_file(path)
    }
}

impl StorageFile for FaultyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut plan = lock(&self.plan);
        let mut tracker = lock(&self.tracker);
        tracker.before_call(&self.dir);
        plan.writes += 1;
        let (written, result) = if plan.fail_write_at == Some(plan.writes) {
            let partial = plan.partial_write_bytes.min(buf.len());
            match self.inner.write_all_at(&buf[..partial], offset) {
                Ok(()) => (partial, Err(injected(&plan))),
                Err(e) => (0, Err(e)),
            }
        } else {
            match self.inner.write_all_at(buf, offset) {
                Ok(()) => (buf.len(), Ok(())),
                // A real failed write may have written part: assume none.
                Err(e) => (0, Err(e)),
            }
        };
        if written > 0 {
            tracker.files[self.id].pending.push(Pending::Write {
                offset,
                bytes: buf[..written].to_vec(),
            });
        }
        result
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut plan = lock(&self.plan);
        let mut tracker = lock(&self.tracker);
        tracker.before_call(&self.dir);
        plan.set_lens += 1;
        if plan.fail_set_len_at == Some(plan.set_lens) {
            return Err(injected(&plan));
        }
        self.inner.set_len(len)?;
        tracker.files[self.id].pending.push(Pending::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut plan = lock(&self.plan);
        let mut tracker = lock(&self.tracker);
        tracker.before_call(&self.dir);
        plan.syncs += 1;
        if plan.fail_sync_at == Some(plan.syncs) {
            return Err(injected(&plan));
        }
        self.inner.sync_data()?;
        tracker.files[self.id].sync();
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
            || plan.fail_rename_at.is_some()
            || plan.fail_remove_at.is_some()
    }

    /// Clears earlier failures and counters, then sets up which calls fail.
    /// (The crash model is kept.)
    pub fn arm(&self, f: impl FnOnce(&mut Plan)) {
        let mut plan = lock(&self.plan);
        *plan = Plan::default();
        f(&mut plan);
    }

    /// Mutating calls made through this storage so far: creating opens,
    /// writes, truncations, file and directory syncs, renames, removals.
    pub fn calls(&self) -> u64 {
        lock(&self.tracker).calls
    }

    /// The crash model now.
    pub fn capture(&self) -> CrashState {
        lock(&self.tracker).capture()
    }

    /// With `on`, captures the crash model just before every mutating call
    /// (a crash at each point the engine touches the disk); collect them
    /// with [`FaultyStorage::take_captures`].
    pub fn capture_before_every_call(&self, on: bool) {
        lock(&self.tracker).capture_every_call = on;
    }

    /// The states captured so far (see
    /// [`FaultyStorage::capture_before_every_call`]), oldest first.
    pub fn take_captures(&self) -> Vec<CrashState> {
        std::mem::take(&mut lock(&self.tracker).captures)
    }

    /// Writes into `to` what a crash now leaves of `from` under `mode`
    /// and `dir` (see [`CrashState::write_image`]).
    pub fn crash_image_with(&self, from: &Path, to: &Path, mode: &CrashMode, dir: DirState) {
        self.capture().write_image(from, to, mode, dir);
    }

    /// Copies the database as a power cut would leave it: each segment cut
    /// to its fsynced length, followed by `garbage` bytes standing in for a
    /// torn unsynced tail; every other file as it is
    /// ([`CrashMode::SyncedOnly`] with the live directory entries).
    ///
    /// Panics on I/O errors: this is a test helper.
    pub fn crash_image(&self, from: &Path, to: &Path, garbage: &[u8]) {
        let mode = CrashMode::SyncedOnly {
            garbage: garbage.to_vec(),
        };
        self.crash_image_with(from, to, &mode, DirState::Live);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn tracked(durable: &[u8], pending: Vec<Pending>) -> Tracked {
        Tracked {
            durable: durable.to_vec(),
            pending,
        }
    }

    fn write(offset: u64, bytes: &[u8]) -> Pending {
        Pending::Write {
            offset,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn each_mode_keeps_what_it_documents() {
        let file = tracked(b"abcd", vec![write(4, b"EF"), write(6, b"GH")]);
        let cases: &[(CrashMode, &[u8])] = &[
            (CrashMode::AllWritten, b"abcdEFGH"),
            (CrashMode::SyncedOnly { garbage: vec![] }, b"abcd"),
            (
                CrashMode::SyncedOnly {
                    garbage: b"zz".to_vec(),
                },
                b"abcdzz",
            ),
            (CrashMode::ZeroTail, b"abcd\0\0\0\0"),
        ];
        for (mode, want) in cases {
            assert_eq!(file.image(mode, 0), *want, "{mode:?}");
        }
        let random = file.image(&CrashMode::RandomTail { seed: 3 }, 0);
        assert_eq!((&random[..4], random.len()), (&b"abcd"[..], 8));
        assert_ne!(&random[4..], b"EFGH");
    }

    #[test]
    fn reordered_keeps_a_later_write_without_an_earlier_one_for_some_seed() {
        let file = tracked(b"ab", vec![write(2, b"C"), write(3, b"D")]);
        let images: BTreeSet<Vec<u8>> = (0..32)
            .map(|seed| file.image(&CrashMode::Reordered { seed }, 0))
            .collect();
        let want: BTreeSet<Vec<u8>> = [&b"ab"[..], b"abC", b"ab\0D", b"abCD"]
            .iter()
            .map(|b| b.to_vec())
            .collect();
        assert_eq!(images, want);
    }

    #[test]
    fn a_synced_file_is_the_same_in_every_mode() {
        let mut file = tracked(b"ab", vec![write(2, b"cd"), Pending::SetLen(3)]);
        file.sync();
        for mode in CrashMode::all(4) {
            assert_eq!(file.image(&mode, 0), b"abc", "{mode:?}");
        }
    }

    #[test]
    fn images_follow_renames_and_honour_the_durable_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FaultyStorage::default();
        std::fs::write(dir.path().join("LOCK"), b"").expect("lock");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let file = storage.open(&a, true).expect("create");
        file.write_all_at(b"synced", 0).expect("write");
        file.sync_data().expect("sync");
        storage.sync_dir(dir.path()).expect("sync dir");
        file.write_all_at(b"+tail", 6).expect("write");
        storage.rename(&a, &b).expect("rename");
        let names = |mode: &CrashMode, state: DirState| {
            let image = tempfile::tempdir().expect("tempdir");
            storage.crash_image_with(dir.path(), image.path(), mode, state);
            let mut files: Vec<(String, Vec<u8>)> = read_regular_files(image.path())
                .expect("read")
                .into_iter()
                .map(|(n, _, bytes)| (n.to_string_lossy().into_owned(), bytes))
                .collect();
            files.sort();
            files
        };
        let s = |n: &str, b: &[u8]| (n.to_owned(), b.to_vec());
        assert_eq!(
            names(&CrashMode::AllWritten, DirState::Durable),
            vec![s("LOCK", b""), s("a", b"synced+tail")]
        );
        assert_eq!(
            names(&CrashMode::ZeroTail, DirState::Live),
            vec![s("LOCK", b""), s("b", b"synced\0\0\0\0\0")]
        );
        storage.sync_dir(dir.path()).expect("sync dir");
        assert_eq!(
            names(
                &CrashMode::SyncedOnly { garbage: vec![] },
                DirState::Durable
            ),
            vec![s("LOCK", b""), s("b", b"synced")]
        );
    }

    #[test]
    fn a_state_is_captured_before_every_mutating_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FaultyStorage::default();
        storage.capture_before_every_call(true);
        let file = storage.open(&dir.path().join("a"), true).expect("create");
        file.write_all_at(b"x", 0).expect("write");
        let mut buf = [0; 1];
        file.read_exact_at(&mut buf, 0).expect("read");
        file.sync_data().expect("sync");
        storage.sync_dir(dir.path()).expect("sync dir");
        let calls: Vec<u64> = storage
            .take_captures()
            .iter()
            .map(CrashState::calls)
            .collect();
        assert_eq!(calls, vec![0, 1, 2, 3]);
        assert_eq!(storage.calls(), 4);
        assert!(!storage.capture().has_unsynced());
    }

    #[test]
    fn renames_and_removals_fail_on_cue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"a").expect("write");
        let storage = FaultyStorage::default();
        storage.arm(|p| {
            p.fail_rename_at = Some(1);
            p.fail_remove_at = Some(2);
        });
        assert!(storage.rename(&a, &b).is_err());
        storage.rename(&a, &b).expect("second rename");
        storage.remove_file(&b).expect("first remove");
        std::fs::write(&a, b"a").expect("write");
        assert!(storage.remove_file(&a).is_err());
        assert!(a.exists() && !b.exists());
    }

    #[test]
    fn a_file_written_around_the_seam_is_copied_as_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FaultyStorage::default();
        let path = dir.path().join("a");
        let file = storage.open(&path, true).expect("create");
        file.write_all_at(b"unsynced", 0).expect("write");
        drop(file);
        // Replaced behind the seam's back (perhaps reusing the inode).
        std::fs::remove_file(&path).expect("remove");
        std::fs::write(&path, b"other bytes").expect("write");
        let image = storage
            .capture()
            .image(dir.path(), &CrashMode::ZeroTail, DirState::Live);
        assert_eq!(
            image.get(std::ffi::OsStr::new("a")).map(Vec::as_slice),
            Some(&b"other bytes"[..])
        );
    }
}
