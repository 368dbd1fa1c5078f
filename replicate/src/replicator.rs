//! The replicator: ships a database directory to a bucket prefix.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::{PutMode, UpdateVersion};

use crate::error::{Error, Result};
use crate::lease::{Lease, new_owner_id};
use crate::local::{self, SEGMENT_HEADER_SIZE, ScanEnd};
use crate::objects::{Chunk, ManifestObject, OBJECT_MANIFEST, ObjectManifest, RunObject};
use crate::remote::Remote;

/// How a [`Replicator`] paces itself.
#[derive(Clone, Debug)]
pub struct ReplicatorConfig {
    /// How often the directory is looked at (sealed files ship as soon as
    /// they are seen).
    pub poll_interval: Duration,
    /// The durable tail of the active segment is shipped at least this
    /// often while it grows...
    pub tail_interval: Duration,
    /// ... or as soon as this many durable bytes wait, whichever is first.
    pub tail_bytes: u64,
    /// The largest segment piece one object holds.
    pub chunk_bytes_max: u64,
    /// The lease's time to live; renewed every third of it.
    pub lease_ttl: Duration,
    /// The first and the largest wait between retries after a failed
    /// round (the server unreachable); doubled each time.
    pub retry_backoff: (Duration, Duration),
}

impl Default for ReplicatorConfig {
    fn default() -> Self {
        ReplicatorConfig {
            poll_interval: Duration::from_millis(100),
            tail_interval: Duration::from_secs(1),
            tail_bytes: 1 << 20,
            chunk_bytes_max: 16 << 20,
            lease_ttl: Duration::from_secs(30),
            retry_backoff: (Duration::from_millis(100), Duration::from_secs(5)),
        }
    }
}

/// What one round shipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Objects uploaded (runs, manifests, segment pieces; not the object
    /// manifest).
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The object manifest's generation after the round.
    pub generation: u64,
    /// The highest txid the bucket now holds.
    pub shipped_txid: u64,
}

/// Ships a database directory to a bucket prefix: every sealed file once,
/// the durable tail of the active segment at most
/// [`ReplicatorConfig::tail_interval`] or [`ReplicatorConfig::tail_bytes`]
/// behind, and after every round an object manifest that says exactly
/// what the bucket holds. It only reads the directory (as a follower
/// does: whole CRC-checked frames, up to the commit witness in the active
/// segment), so the writer runs undisturbed; it never deletes an object.
///
/// ```no_run
/// use timecask_replicate::{Remote, Replicator, ReplicatorConfig, S3Options};
/// let remote = Remote::from_url("s3://backups/app-db", &S3Options::default())?;
/// let mut replicator = Replicator::open("app.db", remote, ReplicatorConfig::default())?;
/// let report = replicator.sync()?; // one round, the whole durable tail
/// println!("the bucket holds txids up to {}", report.shipped_txid);
/// let running = replicator.spawn(); // or keep shipping in a thread
/// running.stop()?;
/// # Ok::<(), timecask_replicate::Error>(())
/// ```
pub struct Replicator {
    dir: PathBuf,
    remote: Remote,
    config: ReplicatorConfig,
    lease: Lease,
    objects: ObjectManifest,
    /// The object manifest's version as this replicator last wrote or read it.
    objects_version: Option<UpdateVersion>,
    /// Segments whose last shipped piece was checked against the local file.
    checked: HashSet<(u32, u64)>,
    last_tail: Instant,
}

impl Replicator {
    /// Takes the prefix's lease ([`Error::Leased`] if another replicator
    /// holds it) and reads the object manifest, so that only what is
    /// missing is shipped.
    pub fn open(
        dir: impl AsRef<Path>,
        remote: Remote,
        config: ReplicatorConfig,
    ) -> Result<Replicator> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::metadata(&dir).map_err(|e| Error::io(&dir, e))?;
        let lease = Lease::acquire(&remote, &new_owner_id(), config.lease_ttl)?;
        let (objects, objects_version) = match remote.get_opt(OBJECT_MANIFEST)? {
            Some(f) => (
                ObjectManifest::decode(&f.bytes, &remote.key(OBJECT_MANIFEST))?,
                Some(f.version),
            ),
            None => (ObjectManifest::default(), None),
        };
        Ok(Replicator {
            dir,
            remote,
            config,
            lease,
            objects,
            objects_version,
            checked: HashSet::new(),
            last_tail: Instant::now(),
        })
    }

    /// What the bucket holds, as this replicator last wrote it.
    pub fn objects(&self) -> &ObjectManifest {
        &self.objects
    }

    /// One round that ships everything durable now, the whole tail
    /// included.
    pub fn sync(&mut self) -> Result<SyncReport> {
        self.round(true)
    }

    /// One round: sealed files always, the tail when it is due.
    fn round(&mut self, force_tail: bool) -> Result<SyncReport> {
        self.lease.renew_if_due(&self.remote)?;
        let mut report = SyncReport::default();
        self.ship_manifest(&mut report)?;
        self.ship_segments(force_tail, &mut report)?;
        if report.objects > 0 {
            self.write_object_manifest()?;
        }
        report.generation = self.objects.generation;
        report.shipped_txid = self.objects.last_shipped_txid();
        Ok(report)
    }

    fn upload(&self, name: &str, bytes: Bytes, report: &mut SyncReport) -> Result<()> {
        report.objects += 1;
        report.bytes += bytes.len() as u64;
        self.remote.put(name, bytes)
    }

    /// The MANIFEST and the runs it names, if its seq is new.
    fn ship_manifest(&mut self, report: &mut SyncReport) -> Result<()> {
        const ATTEMPTS_MAX: usize = 8;
        for _ in 0..ATTEMPTS_MAX {
            let Some((bytes, info)) = local::read_manifest(&self.dir)? else {
                return Ok(());
            };
            if self.objects.manifests.iter().any(|m| m.seq == info.seq) {
                return Ok(());
            }
            // Open every run first: a later manifest may delete them, but
            // an open handle keeps the bytes.
            let mut files = Vec::new();
            let mut vanished = false;
            for &(number, _, _, len) in &info.runs {
                if self.objects.runs.iter().any(|r| r.number == number) {
                    continue;
                }
                let path = self.dir.join(local::run_file_name(number));
                match File::open(&path) {
                    Ok(f) => files.push((number, len, path, f)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        vanished = true;
                        break;
                    }
                    Err(e) => return Err(Error::io(&path, e)),
                }
            }
            if vanished {
                continue; // replaced meanwhile: read the newer manifest
            }
            for (number, len, path, mut file) in files {
                let mut buf = Vec::new();
                file.read_to_end(&mut buf)
                    .map_err(|e| Error::io(&path, e))?;
                if buf.len() as u64 != len {
                    return Err(Error::corrupt(
                        &path,
                        0,
                        format!("run is {} bytes, the manifest says {len}", buf.len()),
                    ));
                }
                let &(_, first_txid, last_txid, _) =
                    info.runs.iter().find(|r| r.0 == number).ok_or_else(|| {
                        Error::corrupt(&path, 0, "run vanished from the manifest")
                    })?;
                let run = RunObject {
                    number,
                    first_txid,
                    last_txid,
                    len,
                    crc: crc32fast::hash(&buf),
                };
                self.upload(&run.object(), Bytes::from(buf), report)?;
                let at = self.objects.runs.partition_point(|r| r.number < number);
                self.objects.runs.insert(at, run);
            }
            let object = ManifestObject {
                seq: info.seq,
                runs_through: info.runs_through,
                log_first_segment: info.log_first_segment,
                log_first_txid: info.log_first_txid,
                runs: info.runs.iter().map(|r| r.0).collect(),
                len: bytes.len() as u64,
                crc: crc32fast::hash(&bytes),
            };
            self.upload(&object.object(), Bytes::from(bytes), report)?;
            let at = self.objects.manifests.partition_point(|m| m.seq < info.seq);
            self.objects.manifests.insert(at, object);
            return Ok(());
        }
        Ok(()) // the writer keeps replacing it: the next round tries again
    }

    /// New pieces of every segment on disk.
    fn ship_segments(&mut self, force_tail: bool, report: &mut SyncReport) -> Result<()> {
        let witness = local::read_witness(&self.dir)?.unwrap_or(0);
        let ids = local::list_segments(&self.dir)?;
        let tail_due = force_tail || self.last_tail.elapsed() >= self.config.tail_interval;
        let mut shipped_tail = false;
        for (i, &id) in ids.iter().enumerate() {
            let path = local::segment_path(&self.dir, id);
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // sealed into runs
                Err(e) => return Err(Error::io(&path, e)),
            };
            let mut header = [0u8; SEGMENT_HEADER_SIZE as usize];
            let first_txid = match file.read_exact_at(&mut header, 0) {
                Ok(()) => local::segment_first_txid(&header, id),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
                Err(e) => return Err(Error::io(&path, e)),
            };
            let Some(first_txid) = first_txid else {
                break; // being created: nothing after it yet
            };
            let next_first = match ids.get(i + 1) {
                Some(&next) => next_segment_first_txid(&self.dir, next)?,
                None => None,
            };
            loop {
                let shipped = self.objects.segment_end(id);
                self.check_continuity(&file, &path, id)?;
                let from = shipped.max(SEGMENT_HEADER_SIZE);
                // Segment N is sealed once N + 1 has a valid header that
                // continues it: the writer fsynced N before creating it.
                let prev_last = self
                    .objects
                    .last_chunk(id)
                    .map_or(first_txid - 1, |c| c.last_txid);
                let (frames, end) =
                    local::scan_frames(&file, &path, from, self.config.chunk_bytes_max)?;
                let byte_limited = end == ScanEnd::Limit;
                let last_txid = frames.last().map_or(prev_last, |f| f.txid);
                // Sealed: the next segment continues this one (or this
                // scan stopped at the byte limit before the end of it).
                let sealed =
                    next_first.is_some() && (byte_limited || next_first == Some(last_txid + 1));
                if sealed && end == ScanEnd::BadFrame {
                    let at = frames.last().map_or(from, |f| f.end);
                    return Err(Error::corrupt(&path, at, "bad frame in a sealed segment"));
                }
                // The active segment: only what the witness says is durable.
                let mut frames = frames;
                let before = frames.len();
                if !sealed {
                    frames.retain(|f| f.txid <= witness);
                }
                let more = byte_limited && frames.len() == before;
                let last_txid = frames.last().map_or(prev_last, |f| f.txid);
                let pending = frames.last().map_or(0, |f| f.end - from);
                let header_only = shipped == 0;
                if frames.is_empty() && !header_only {
                    break;
                }
                if !sealed && !tail_due && pending < self.config.tail_bytes {
                    break;
                }
                let start = shipped;
                let stop = frames.last().map_or(SEGMENT_HEADER_SIZE, |f| f.end);
                let len = usize::try_from(stop - start)
                    .map_err(|_| Error::corrupt(&path, start, "piece too large"))?;
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, start)
                    .map_err(|e| Error::io(&path, e))?;
                let chunk = Chunk {
                    segment: id,
                    start,
                    end: stop,
                    first_txid: frames.first().map_or(prev_last + 1, |f| f.txid),
                    last_txid,
                    crc: crc32fast::hash(&buf),
                };
                assert!(
                    frames.first().is_none_or(|f| f.txid == prev_last + 1),
                    "frames dense"
                );
                self.upload(&chunk.object(), Bytes::from(buf), report)?;
                self.checked.insert((id, chunk.end));
                self.objects.add_chunk(chunk);
                shipped_tail |= !sealed;
                if !more {
                    break;
                }
            }
        }
        if shipped_tail || tail_due {
            self.last_tail = Instant::now();
        }
        Ok(())
    }

    /// Before adding to segment `id`, its last shipped piece must still
    /// be what the local file holds (once per piece): a database replaced
    /// by another, or restored to an earlier txid, is refused rather than
    /// mixed into the history.
    fn check_continuity(&mut self, file: &File, path: &Path, id: u32) -> Result<()> {
        let Some(last) = self.objects.last_chunk(id).cloned() else {
            return Ok(());
        };
        if self.checked.contains(&(id, last.end)) {
            return Ok(());
        }
        let mismatch = |reason: String| Error::SourceMismatch {
            path: path.to_path_buf(),
            reason: format!(
                "{reason} than the bucket's {} (was the database replaced or restored? use a new prefix)",
                last.object()
            ),
        };
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < last.end {
            return Err(mismatch(format!("the segment is shorter ({len} bytes)")));
        }
        let size = usize::try_from(last.end - last.start)
            .map_err(|_| Error::corrupt(path, last.start, "piece too large"))?;
        let mut buf = vec![0u8; size];
        file.read_exact_at(&mut buf, last.start)
            .map_err(|e| Error::io(path, e))?;
        if crc32fast::hash(&buf) != last.crc {
            return Err(mismatch("the segment holds other bytes".into()));
        }
        self.checked.insert((id, last.end));
        Ok(())
    }

    /// Writes the object manifest, conditionally on the version this
    /// replicator last saw: a write by anyone else in between is
    /// [`Error::LeaseLost`], never overwritten.
    fn write_object_manifest(&mut self) -> Result<()> {
        self.objects.generation += 1;
        self.objects.writer = self.lease.owner().to_string();
        let mode = match &self.objects_version {
            Some(v) => PutMode::Update(v.clone()),
            None => PutMode::Create,
        };
        match self
            .remote
            .put_mode(OBJECT_MANIFEST, self.objects.encode(), mode)
        {
            Ok(version) => {
                self.objects_version = Some(version);
                Ok(())
            }
            Err(Error::Store {
                source:
                    object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. },
                ..
            }) => Err(Error::LeaseLost {
                prefix: self.remote.url().to_string(),
                owner: "another writer of the object manifest".into(),
            }),
            Err(e) => {
                // Not known to be written: the next round writes it again
                // with the same generation.
                self.objects.generation -= 1;
                Err(e)
            }
        }
    }

    /// Ships until `stop` is set, retrying failed rounds with backoff
    /// ([`ReplicatorConfig::retry_backoff`]); a non-transient error (a
    /// lost lease, local damage) ends it. On stop it ships the whole
    /// durable tail and releases the lease.
    pub fn run(mut self, stop: &AtomicBool, status: &Mutex<Status>) -> Result<()> {
        let (first, max) = self.config.retry_backoff;
        let mut backoff = first;
        while !stop.load(Ordering::Relaxed) {
            match self.round(false) {
                Ok(report) => {
                    backoff = first;
                    if let Ok(mut s) = status.lock() {
                        s.shipped_txid = report.shipped_txid;
                        s.generation = report.generation;
                        s.last_error = None;
                    }
                    std::thread::sleep(self.config.poll_interval);
                }
                Err(e) if e.is_transient() => {
                    if let Ok(mut s) = status.lock() {
                        s.retries += 1;
                        s.last_error = Some(e.to_string());
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(max);
                }
                Err(e) => return Err(e),
            }
        }
        let report = self.sync()?;
        if let Ok(mut s) = status.lock() {
            s.shipped_txid = report.shipped_txid;
            s.generation = report.generation;
        }
        self.lease.release(&self.remote)
    }

    /// Runs [`Replicator::run`] in a thread.
    pub fn spawn(self) -> RunningReplicator {
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(Status::default()));
        let (s, st) = (Arc::clone(&stop), Arc::clone(&status));
        let thread = std::thread::spawn(move || self.run(&s, &st));
        RunningReplicator {
            stop,
            status,
            thread,
        }
    }

    /// Releases the lease without another round.
    pub fn release(self) -> Result<()> {
        self.lease.release(&self.remote)
    }
}

/// The first txid of segment `id` if its header is whole and valid.
fn next_segment_first_txid(dir: &Path, id: u32) -> Result<Option<u64>> {
    let path = local::segment_path(dir, id);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let mut header = [0u8; SEGMENT_HEADER_SIZE as usize];
    match file.read_exact_at(&mut header, 0) {
        Ok(()) => Ok(local::segment_first_txid(&header, id)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// How a running replicator is doing.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// The highest txid the bucket holds (as of the last good round).
    pub shipped_txid: u64,
    /// The object manifest's generation.
    pub generation: u64,
    /// Failed rounds retried so far.
    pub retries: u64,
    /// The last round's error, if it failed.
    pub last_error: Option<String>,
}

/// A replicator shipping in its own thread ([`Replicator::spawn`]).
pub struct RunningReplicator {
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<Status>>,
    thread: JoinHandle<Result<()>>,
}

impl RunningReplicator {
    /// How it is doing.
    pub fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether it ended (by an error: see [`RunningReplicator::stop`]).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits until the bucket holds `txid` or `timeout` passed; whether it does.
    pub fn wait_shipped(&self, txid: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.status().shipped_txid >= txid {
                return true;
            }
            if self.thread.is_finished() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.status().shipped_txid >= txid
    }

    /// Stops it: a last round ships the whole durable tail, then the lease
    /// is released. Returns the error that ended it, if one did.
    pub fn stop(self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}
