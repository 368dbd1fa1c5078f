//! Group commit and the visibility watermark.
//!
//! Committers write their frames under the writer mutex but fsync outside
//! it: the first committer that needs durability becomes the syncer, and
//! one `fdatasync` covers every frame written before it started. Others
//! that arrive meanwhile wait and are covered by the next sync. Before it
//! starts, a syncer waits up to `GATHER_WAIT` for committers writing their
//! frames and, when fewer commits wait than the last sync covered, for the
//! committers that sync released to commit again: without that, steady
//! committers split into two groups that take turns, each fsync covering
//! half of them.
//!
//! The visible txid advances in txid order, only over transactions that are
//! written, indexed and (for `Immediate` ones) fsynced: a `Buffered` commit
//! that follows an `Immediate` one is published only when that one is
//! durable.
//!
//! A sync is the segment's `fdatasync` followed by the commit witness
//! (`crate::log::witness`) recording the txid it covers; only then are the
//! commits it covers acknowledged. Both go through the shared
//! [`Poison`]: a failure of either refuses every later write.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::Result;
use crate::log::poison::Poison;
use crate::log::witness::Witness;
use crate::storage::StorageFile;
use crate::types::TxId;

/// Shared by every committer and reader of one database.
pub(crate) struct Durable {
    state: Mutex<State>,
    changed: Condvar,
    /// Wakes the syncer gathering commits (a frame written): only it waits
    /// here, so a commit does not wake every committer waiting for a sync.
    gathered: Condvar,
    /// Highest txid readers may see. Only ever increases.
    visible: AtomicU64,
    /// Shared with the log writer: every fsync goes through it.
    poison: Arc<Poison>,
    /// The durable record of the last synced txid (`None` read-only).
    witness: Option<Witness>,
}

struct State {
    /// Highest txid written to the log and applied to the index.
    written: TxId,
    /// Every frame up to this txid is fsynced.
    synced: TxId,
    /// A syncer is running `fdatasync` now.
    syncing: bool,
    /// `Immediate` txids written but not yet covered by a sync, ascending.
    waiting_for_sync: VecDeque<TxId>,
    /// The segment new frames go to, and its path for error messages.
    active: Arc<dyn StorageFile>,
    active_path: PathBuf,
    /// Committers between "about to take the writer mutex" and "frame
    /// written": a syncer waits briefly for them so one fsync covers them.
    in_flight: usize,
    /// `Immediate` commits the last sync covered: the next syncer waits
    /// briefly for as many, since the committers it released are about to
    /// commit again (otherwise they split into two groups that take turns,
    /// each sync covering half of them).
    last_batch: usize,
}

/// How long a syncer waits for in-flight committers to write their frames
/// before it starts the fsync. Small next to an fsync (~100 µs–10 ms).
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_micros(100);

/// Marks a committer as about to write a frame; dropped once it has.
pub(crate) struct InFlight<'a> {
    durable: &'a Durable,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut state = self.durable.lock();
        state.in_flight -= 1;
        self.durable.gathered.notify_all();
    }
}

impl Durable {
    /// `last` is the last txid in the log, already on disk (and recorded
    /// by `witness`).
    pub(crate) fn new(
        last: TxId,
        active: Arc<dyn StorageFile>,
        active_path: PathBuf,
        poison: Arc<Poison>,
        witness: Option<Witness>,
    ) -> Durable {
        Durable {
            poison,
            witness,
            state: Mutex::new(State {
                written: last,
                synced: last,
                syncing: false,
                waiting_for_sync: VecDeque::new(),
                active,
                active_path,
                in_flight: 0,
                last_batch: 0,
            }),
            changed: Condvar::new(),
            gathered: Condvar::new(),
            visible: AtomicU64::new(last.0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The highest txid readers may see.
    pub(crate) fn visible(&self) -> TxId {
        TxId(self.visible.load(Ordering::Acquire))
    }

    /// The highest txid written and indexed (visible or not yet).
    pub(crate) fn written(&self) -> TxId {
        self.lock().written
    }

    /// Registers a committer that is about to write a frame.
    pub(crate) fn in_flight(&self) -> InFlight<'_> {
        self.lock().in_flight += 1;
        InFlight { durable: self }
    }

    /// Refuses writes after a failed fsync.
    pub(crate) fn check_writable(&self) -> Result<()> {
        self.poison.check()
    }

    /// Records that `txid` is written and indexed, in segment `active`.
    /// Called by the committer under the writer mutex, in txid order.
    pub(crate) fn record_written(
        &self,
        txid: TxId,
        needs_sync: bool,
        active: &Arc<dyn StorageFile>,
        active_path: &Path,
    ) {
        let mut state = self.lock();
        assert_eq!(state.written.next(), txid, "txids are written in order");
        state.written = txid;
        if !Arc::ptr_eq(&state.active, active) {
            // The writer fsynced the previous segment before rolling.
            state.active = Arc::clone(active);
            state.active_path = active_path.to_path_buf();
        }
        if needs_sync {
            state.waiting_for_sync.push_back(txid);
        }
        self.publish(&state);
    }

    /// Advances the visible txid as far as it may go.
    fn publish(&self, state: &State) {
        let publishable = state
            .waiting_for_sync
            .front()
            .map_or(state.written, |first| TxId(first.0 - 1));
        if publishable > self.visible() {
            self.visible.store(publishable.0, Ordering::Release);
            self.changed.notify_all();
        }
    }

    /// Blocks until `txid` is visible and, if `durable`, fsynced. Runs the
    /// fsync itself when no one else is.
    pub(crate) fn wait(&self, txid: TxId, durable: bool) -> Result<()> {
        let mut state = self.lock();
        loop {
            let done = if durable {
                state.synced >= txid
            } else {
                self.visible() >= txid
            };
            if done {
                return Ok(());
            }
            self.poison.check()?;
            // A Buffered commit behind an unsynced Immediate one helps
            // rather than waits for that one's committer to come back.
            if !state.syncing && (durable || !state.waiting_for_sync.is_empty()) {
                state = self.sync(state)?;
                continue;
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Runs one fsync covering everything written so far, with the state
    /// lock released while it runs.
    fn sync<'a>(&'a self, mut state: MutexGuard<'a, State>) -> Result<MutexGuard<'a, State>> {
        state.syncing = true;
        // Let committers that are writing their frames right now, and
        // those the last sync released that are coming back, make it into
        // this fsync instead of waiting for the next one.
        let deadline = std::time::Instant::now() + GATHER_WAIT;
        while state.in_flight > 0
            || (!state.waiting_for_sync.is_empty()
                && state.waiting_for_sync.len() < state.last_batch)
        {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .gathered
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let target = state.written;
        let file = Arc::clone(&state.active);
        let path = state.active_path.clone();
        drop(state);
        let result = self.poison.sync(file.as_ref(), &path).and_then(|()| {
            self.witness
                .as_ref()
                .map_or(Ok(()), |w| w.record(target, &self.poison))
        });
        let mut state = self.lock();
        state.syncing = false;
        match result {
            Ok(()) => {
                state.synced = state.synced.max(target);
                let mut covered = 0;
                while state.waiting_for_sync.front().is_some_and(|t| *t <= target) {
                    state.waiting_for_sync.pop_front();
                    covered += 1;
                }
                state.last_batch = covered;
                self.publish(&state);
                self.changed.notify_all();
                Ok(state)
            }
            Err(e) => {
                // Poisoned by the failed fsync or witness write.
                self.changed.notify_all();
                Err(e)
            }
        }
    }

    /// Blocks until the visible txid is past `txid` or `deadline` passes.
    pub(crate) fn wait_visible_beyond(&self, txid: TxId, deadline: std::time::Instant) {
        let mut state = self.lock();
        while self.visible() <= txid {
            let now = std::time::Instant::now();
            if now >= deadline {
                return;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// A read-only database that caught up with another process's log
    /// (`Db::refresh`): everything up to `txid` is indexed, so readers may
    /// see it; wakes every waiter. Never lowers the visible txid.
    pub(crate) fn publish_followed(&self, txid: TxId) {
        let mut state = self.lock();
        state.written = state.written.max(txid);
        state.synced = state.synced.max(txid);
        if txid > self.visible() {
            self.visible.store(txid.0, Ordering::Release);
        }
        self.changed.notify_all();
    }

    /// Fsyncs everything written so far.
    pub(crate) fn sync_all(&self) -> Result<()> {
        let written = self.written();
        self.wait(written, true)
    }
}
