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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;

use crate::compact::CompactReport;
use crate::db::Shared;
use crate::error::Result;
use crate::types::TxId;

/// What commits and the thread share.
#[derive(Debug, Default)]
pub(crate) struct Sealer {
    /// Bytes appended to the log since the last seal (or open).
    appended: AtomicU64,
    state: Mutex<State>,
    wake: Condvar,
    /// The last background failure, if the last job failed.
    error: Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct State {
    requested: bool,
    stop: bool,
}

impl Sealer {
    /// Counts `bytes` just appended; wakes the thread once past
    /// `threshold`.
    pub(crate) fn appended(&self, bytes: u64, threshold: Option<u64>) {
        let Some(threshold) = threshold else {
            return;
        };
        let total = self.appended.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if total >= threshold {
            self.request();
        }
    }

    /// Wakes the thread once the tail's estimated size reaches `budget`.
    pub(crate) fn tail(&self, bytes: u64, budget: Option<u64>) {
        if budget.is_some_and(|b| bytes >= b) {
            self.request();
        }
    }

    fn request(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.requested {
            state.requested = true;
            self.wake.notify_one();
        }
    }

    /// Starts counting again (after a seal, or at open with the log's
    /// size).
    pub(crate) fn reset(&self, bytes: u64) {
        self.appended.store(bytes, Ordering::Relaxed);
    }

    /// The last background failure, if the last job failed.
    pub(crate) fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits for a request; `false` once told to stop.
    fn wait(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !state.requested && !state.stop {
            state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.requested = false;
        !state.stop
    }

    fn stop(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.stop = true;
        self.wake.notify_one();
    }
}

/// Stops and joins the thread when the last `Db` handle goes.
#[derive(Debug)]
pub(crate) struct SealerGuard {
    sealer: Arc<Sealer>,
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
        *sealer.error.lock().unwrap_or_else(|e| e.into_inner()) =
            outcome.err().map(|e| e.to_string());
    }
}

/// One background job: seal the active segment and everything before it.
pub(crate) fn seal_now(shared: &Shared) -> Result<()> {
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
    shared.seal_history(active, TxId(next.0 - 1), false, &mut report)
}
