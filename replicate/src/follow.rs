//! The read replica: a local directory following the bucket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Result;
use crate::local;
use crate::plan;
use crate::remote::Remote;
use crate::restore::{RestoreReport, apply, read_objects};

/// Keeps a local read-only copy of a replicated database up to date.
///
/// Each [`Follower::sync`] reads the object manifest and downloads what is
/// new: runs, then segment bytes appended in order (whole frames only),
/// then a new MANIFEST. A [`timecask::Db::open_read_only`] on the
/// directory sees the new commits through [`timecask::Db::refresh`], by
/// the engine's follower rules (FORMAT.md, "Followers").
///
/// ```no_run
/// use timecask_replicate::{Follower, Remote, S3Options};
/// let remote = Remote::from_url("s3://backups/app-db", &S3Options::default())?;
/// let mut follower = Follower::new(remote, "replica.db")?;
/// follower.sync()?;
/// let db = timecask::Db::open_read_only("replica.db")?;
/// loop {
///     follower.sync()?;
///     db.refresh()?;
///     # break;
/// }
/// # Ok::<(), timecask_replicate::Error>(())
/// ```
pub struct Follower {
    remote: Remote,
    dir: PathBuf,
    generation: Option<u64>,
    txid: u64,
}

impl Follower {
    /// A follower writing into `dir` (created if missing; it must hold
    /// only what an earlier follower of the same prefix wrote).
    pub fn new(remote: Remote, dir: impl AsRef<Path>) -> Result<Follower> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        Ok(Follower {
            remote,
            dir,
            generation: None,
            txid: 0,
        })
    }

    /// The txid the local copy reaches.
    pub fn txid(&self) -> u64 {
        self.txid
    }

    /// Downloads what is new; returns the txid the local copy now reaches.
    pub fn sync(&mut self) -> Result<u64> {
        let Some(objects) = read_objects(&self.remote)? else {
            return Ok(self.txid);
        };
        if self.generation == Some(objects.generation) {
            return Ok(self.txid);
        }
        let local_seq = local::read_manifest(&self.dir)?.map_or(0, |(_, info)| info.seq);
        let best = plan::plans(&objects)
            .into_iter()
            .filter(|p| p.base.map_or(0, |b| b.seq) >= local_seq)
            .max_by_key(|p| (p.reach, p.runs_through, p.base.map_or(0, |b| b.seq)));
        if let Some(plan) = best {
            let mut report = RestoreReport::default();
            apply(&self.remote, &objects, &plan, &self.dir, None, &mut report)?;
            self.txid = plan.reach;
        }
        self.generation = Some(objects.generation);
        Ok(self.txid)
    }

    /// Syncs every `interval` until `keep_going` returns false, retrying
    /// failed rounds (the server unreachable) at the same pace.
    pub fn run(&mut self, interval: Duration, mut keep_going: impl FnMut(Result<u64>) -> bool) {
        loop {
            let result = self.sync();
            if !keep_going(result) {
                return;
            }
            std::thread::sleep(interval);
        }
    }
}
