//! `SealTrigger`: what commits tell the background sealer (`sealer.rs`),
//! and how its thread waits and is stopped. No I/O, no engine state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// What commits and the thread share.
#[derive(Debug, Default)]
pub(crate) struct SealTrigger {
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

impl SealTrigger {
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
    pub(crate) fn wait(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !state.requested && !state.stop {
            state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.requested = false;
        !state.stop
    }

    pub(crate) fn stop(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.stop = true;
        self.wake.notify_one();
    }
}

impl SealTrigger {
    /// Records the outcome of a background job.
    pub(crate) fn set_error(&self, error: Option<String>) {
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }
}
