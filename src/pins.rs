//! Which txids live views read, and the purge horizon.
//!
//! Every `Snapshot` (and so every write transaction's begin snapshot and
//! every range iterator) pins its txid while it lives. The horizon can only
//! rise to a txid no pinned view is below, so a held view never changes
//! under a purge, and no view can be taken below the horizon.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::types::TxId;

pub(crate) struct Pins {
    state: Mutex<State>,
}

struct State {
    /// Live views per txid.
    counts: BTreeMap<TxId, usize>,
    /// Views below this txid are refused.
    horizon: TxId,
}

impl Pins {
    pub(crate) fn new(horizon: TxId) -> Pins {
        Pins {
            state: Mutex::new(State {
                counts: BTreeMap::new(),
                horizon,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The oldest readable txid.
    pub(crate) fn horizon(&self) -> TxId {
        self.lock().horizon
    }

    /// Pins `txid` for a new view; refused below the horizon.
    pub(crate) fn pin(&self, txid: TxId) -> Result<()> {
        let mut state = self.lock();
        if txid < state.horizon {
            return Err(Error::HistoryPurged {
                requested: txid,
                horizon: state.horizon,
            });
        }
        *state.counts.entry(txid).or_default() += 1;
        Ok(())
    }

    /// Pins `txid` again for a copy of a view that already pins it.
    pub(crate) fn pin_again(&self, txid: TxId) {
        let mut state = self.lock();
        let count = state
            .counts
            .get_mut(&txid)
            .expect("a view being copied pins its txid");
        *count += 1;
    }

    /// Releases one pin of `txid`.
    pub(crate) fn unpin(&self, txid: TxId) {
        let mut state = self.lock();
        let count = state
            .counts
            .get_mut(&txid)
            .expect("every unpin follows a pin");
        *count -= 1;
        if *count == 0 {
            state.counts.remove(&txid);
        }
    }

    /// The oldest txid a live view reads.
    pub(crate) fn oldest(&self) -> Option<TxId> {
        self.lock().oldest()
    }

    /// Fails unless no live view reads a txid below `to` (for trimming one
    /// table's history; the global horizon stays).
    pub(crate) fn check_unpinned_below(&self, to: TxId) -> Result<()> {
        self.lock().check_unpinned_below(to)
    }

    /// Raises the horizon to `to`, unless a live view reads an older txid;
    /// returns the horizon it replaced.
    pub(crate) fn raise_horizon(&self, to: TxId) -> Result<TxId> {
        let mut state = self.lock();
        state.check_unpinned_below(to)?;
        let previous = state.horizon;
        state.horizon = previous.max(to);
        Ok(previous)
    }

    /// Puts the horizon back to what [`raise_horizon`](Self::raise_horizon)
    /// returned, after the purge that raised it failed to reach the log.
    /// The caller holds the writer mutex, so no other purge raised it since.
    pub(crate) fn restore_horizon(&self, previous: TxId) {
        let mut state = self.lock();
        state.horizon = previous;
    }
}

impl State {
    fn oldest(&self) -> Option<TxId> {
        self.counts.first_key_value().map(|(t, _)| *t)
    }

    fn check_unpinned_below(&self, to: TxId) -> Result<()> {
        match self.oldest() {
            Some(oldest) if oldest < to => Err(Error::HistoryInUse {
                requested: to,
                oldest_view: oldest,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizon_rises_only_past_unpinned_txids() {
        let pins = Pins::new(TxId(0));
        pins.pin(TxId(3)).expect("pin");
        pins.pin_again(TxId(3));
        assert!(matches!(
            pins.raise_horizon(TxId(4)),
            Err(Error::HistoryInUse {
                oldest_view: TxId(3),
                ..
            })
        ));
        pins.raise_horizon(TxId(3))
            .expect("at the oldest view is fine");
        pins.unpin(TxId(3));
        assert!(pins.raise_horizon(TxId(4)).is_err(), "one pin is left");
        pins.unpin(TxId(3));
        pins.raise_horizon(TxId(4)).expect("no views left");
        assert!(matches!(
            pins.pin(TxId(3)),
            Err(Error::HistoryPurged {
                horizon: TxId(4),
                ..
            })
        ));
        pins.pin(TxId(4)).expect("at the horizon");
    }
}
