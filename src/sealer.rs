//! The background sealer: one thread per writable `Db` that seals the log
//! into history runs whenever it has grown by `Config::seal_log_bytes`, so
//! the in-memory tail (and the number of open segment files) stays bounded
//! without anyone calling `Db::compact`.
//!
//! Commits count the bytes they append ([`Sealer::appended`]); once past
//! the threshold they wake the thread, which takes the maintenance lock
//! (waiting for a running compaction or backup), seals the active segment
//! and everything before it, and merges the newest runs by size. It holds
//! only a `Weak` reference between jobs, and the last `Db` handle stops and
//! joins it (`SealerGuard`), so a closed database has no thread left.
//! A failure is kept for `Stats::background_error`; the next wake-up tries
//! again.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use crate::engine::Shared;
use crate::error::Result;
use crate::record::CompactReport;
use crate::trigger::SealTrigger;
use crate::types::TxId;

/// Stops and joins the thread when the last `Db` handle goes.
#[derive(Debug)]
pub(crate) struct SealerGuard {
    sealer: Arc<SealTrigger>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for SealerGuard {
    fn drop(&mut self) {
        self.sealer.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the thread for `shared` (whose `sealer` it serves).
pub(crate) fn start(shared: &Arc<Shared>) -> Result<SealerGuard> {
    let sealer = Arc::clone(&shared.sealer);
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let thread = std::thread::Builder::new()
        .name("timecask-sealer".into())
        .spawn(move || run(&weak))
        .map_err(|e| crate::error::Error::io(&shared.dir, e))?;
    Ok(SealerGuard {
        sealer,
        thread: Some(thread),
    })
}

fn run(weak: &Weak<Shared>) {
    loop {
        let Some(sealer) = weak.upgrade().map(|s| Arc::clone(&s.sealer)) else {
            return;
        };
        if !sealer.wait() {
            return;
        }
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let outcome = seal_now(&shared);
        sealer.set_error(outcome.err().map(|e| e.to_string()));
    }
}

/// One background job: seal the active segment and everything before it.
pub(crate) fn seal_now(shared: &Shared) -> Result<CompactReport> {
    let _one_at_a_time = shared.lock_maintenance();
    shared.check_writable()?;
    let (active, next) = {
        let mut writer = shared.lock_writer();
        let next = shared.durable.written().next();
        (writer.log.seal(next, &shared.files)?, next)
    };
    crate::checkpoint::remove(shared.config.storage.as_ref(), &shared.dir)?;
    shared.sealer.reset(0);
    let mut report = CompactReport::default();
    shared.seal_history(active, TxId(next.0 - 1), false, &mut report)?;
    Ok(report)
}
