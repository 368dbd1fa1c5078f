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

    /// Raises the horizon to `to` whatever the live views read: a
    /// read-only database following a writer in another process, whose
    /// purges cannot see this process's views (`Db::refresh`).
    pub(crate) fn follow_horizon(&self, to: TxId) {
        let mut state = self.lock();
        state.horizon = state.horizon.max(to);
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

    /// Holds the pins while a commit moves a horizon: from its check until
    /// its frame is indexed no view can start (or end), so none can start
    /// below a horizon in the making. Readers of the horizon wait too;
    /// purges and trims are rare.
    pub(crate) fn hold(&self) -> HorizonHold<'_> {
        HorizonHold(self.lock())
    }
}

/// The pins, locked by [`Pins::hold`].
pub(crate) struct HorizonHold<'a>(MutexGuard<'a, State>);

impl HorizonHold<'_> {
    /// Fails unless no live view reads a txid below `to` (for trimming one
    /// table's history; the global horizon stays).
    pub(crate) fn check_unpinned_below(&self, to: TxId) -> Result<()> {
        self.0.check_unpinned_below(to)
    }

    /// Raises the horizon to `to`, unless a live view reads an older txid;
    /// returns the horizon it replaced.
    pub(crate) fn raise_horizon(&mut self, to: TxId) -> Result<TxId> {
        self.0.check_unpinned_below(to)?;
        let previous = self.0.horizon;
        self.0.horizon = previous.max(to);
        Ok(previous)
    }

    /// Puts the horizon back to what [`raise_horizon`](Self::raise_horizon)
    /// returned, after the purge that raised it failed to reach the log.
    pub(crate) fn restore_horizon(&mut self, previous: TxId) {
        self.0.horizon = previous;
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
            pins.hold().raise_horizon(TxId(4)),
            Err(Error::HistoryInUse {
                oldest_view: TxId(3),
                ..
            })
        ));
        pins.hold()
            .raise_horizon(TxId(3))
            .expect("at the oldest view is fine");
        pins.unpin(TxId(3));
        assert!(
            pins.hold().raise_horizon(TxId(4)).is_err(),
            "one pin is left"
        );
        pins.unpin(TxId(3));
        let mut hold = pins.hold();
        assert_eq!(hold.raise_horizon(TxId(4)).expect("no views left"), TxId(3));
        hold.restore_horizon(TxId(3));
        drop(hold);
        assert_eq!(pins.horizon(), TxId(3), "restored");
        pins.hold().raise_horizon(TxId(4)).expect("no views left");
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
