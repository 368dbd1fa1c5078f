//! Which txids live views read, and the purge horizon.
//!
//! Every `Snapshot` (and so every write transaction's begin snapshot and
//! every range iterator) pins its txid while it lives. The horizon can only
//! rise to a txid no pinned view is below, so a held view never changes
//! under a purge, and no view can be taken below the horizon.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::types::TxId;

/// Shards of the pin table (a power of two). A view pins in its thread's
/// shard, so views taken on different threads lock different mutexes on
/// different cache lines; only a horizon change locks them all.
const SHARDS: usize = 16;
const _: () = assert!(SHARDS.is_power_of_two());

/// Which shard a thread pins in: threads take shards round-robin.
fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // `usize::MAX` until the thread's first pin (a const initialiser
        // needs no lazy-init check on every access).
        static SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        s.get()
    })
}

/// Where a view's pin is: the shard to release it in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PinSlot(usize);

pub(crate) struct Pins {
    shards: Box<[Shard]>,
    /// Views below this txid are refused. Changed only with every shard
    /// locked ([`Pins::hold`]); read by a pin under its shard's lock, so a
    /// pin and a horizon change never interleave.
    horizon: AtomicU64,
}

/// One shard: its live views per txid, on a cache line of its own.
#[repr(align(128))]
struct Shard(Mutex<BTreeMap<TxId, usize>>);

impl Shard {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<TxId, usize>> {
        // Every update is one map operation: a poisoned shard is whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Pins {
    pub(crate) fn new(horizon: TxId) -> Pins {
        Pins {
            shards: (0..SHARDS)
                .map(|_| Shard(Mutex::new(BTreeMap::new())))
                .collect(),
            horizon: AtomicU64::new(horizon.0),
        }
    }

    /// The oldest readable txid.
    pub(crate) fn horizon(&self) -> TxId {
        TxId(self.horizon.load(Ordering::Acquire))
    }

    /// Raises the horizon to `to` whatever the live views read: a
    /// read-only database following a writer in another process, whose
    /// purges cannot see this process's views (`Db::refresh`).
    pub(crate) fn follow_horizon(&self, to: TxId) {
        let hold = self.hold();
        hold.pins.horizon.fetch_max(to.0, Ordering::AcqRel);
    }

    /// Pins `txid` for a new view; refused below the horizon.
    pub(crate) fn pin(&self, txid: TxId) -> Result<PinSlot> {
        let slot = thread_shard();
        let mut shard = self.shards[slot].lock();
        let horizon = self.horizon();
        if txid < horizon {
            return Err(Error::HistoryPurged {
                requested: txid,
                horizon,
            });
        }
        *shard.entry(txid).or_default() += 1;
        Ok(PinSlot(slot))
    }

    /// Pins `txid` again for a copy of a view that already pins it in
    /// `slot`.
    pub(crate) fn pin_again(&self, slot: PinSlot, txid: TxId) {
        let mut shard = self.shards[slot.0].lock();
        let count = shard
            .get_mut(&txid)
            .expect("a view being copied pins its txid");
        *count += 1;
    }

    /// Releases one pin of `txid` in `slot`.
    pub(crate) fn unpin(&self, slot: PinSlot, txid: TxId) {
        let mut shard = self.shards[slot.0].lock();
        let count = shard.get_mut(&txid).expect("every unpin follows a pin");
        *count -= 1;
        if *count == 0 {
            shard.remove(&txid);
        }
    }

    /// The oldest txid a live view reads.
    pub(crate) fn oldest(&self) -> Option<TxId> {
        self.shards
            .iter()
            .filter_map(|s| s.lock().first_key_value().map(|(t, _)| *t))
            .min()
    }

    /// Holds the pins while a commit moves a horizon: from its check until
    /// its frame is indexed no view can start (or end), so none can start
    /// below a horizon in the making. Views wait meanwhile; purges and
    /// trims are rare.
    pub(crate) fn hold(&self) -> HorizonHold<'_> {
        HorizonHold {
            pins: self,
            // In shard order, the one order every holder locks them in.
            shards: self.shards.iter().map(Shard::lock).collect(),
        }
    }
}

/// The pins, every shard locked by [`Pins::hold`].
pub(crate) struct HorizonHold<'a> {
    pins: &'a Pins,
    shards: Vec<MutexGuard<'a, BTreeMap<TxId, usize>>>,
}

impl HorizonHold<'_> {
    fn oldest(&self) -> Option<TxId> {
        self.shards
            .iter()
            .filter_map(|s| s.first_key_value().map(|(t, _)| *t))
            .min()
    }

    /// Fails unless no live view reads a txid below `to` (for trimming one
    /// table's history; the global horizon stays).
    pub(crate) fn check_unpinned_below(&self, to: TxId) -> Result<()> {
        match self.oldest() {
            Some(oldest) if oldest < to => Err(Error::HistoryInUse {
                requested: to,
                oldest_view: oldest,
            }),
            _ => Ok(()),
        }
    }

    /// Raises the horizon to `to`, unless a live view reads an older txid;
    /// returns the horizon it replaced.
    pub(crate) fn raise_horizon(&mut self, to: TxId) -> Result<TxId> {
        self.check_unpinned_below(to)?;
        let previous = self.pins.horizon();
        self.pins
            .horizon
            .store(previous.max(to).0, Ordering::Release);
        Ok(previous)
    }

    /// Puts the horizon back to what [`raise_horizon`](Self::raise_horizon)
    /// returned, after the purge that raised it failed to reach the log.
    pub(crate) fn restore_horizon(&mut self, previous: TxId) {
        self.pins.horizon.store(previous.0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizon_rises_only_past_unpinned_txids() {
        let pins = Pins::new(TxId(0));
        let slot = pins.pin(TxId(3)).expect("pin");
        pins.pin_again(slot, TxId(3));
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
        pins.unpin(slot, TxId(3));
        assert!(
            pins.hold().raise_horizon(TxId(4)).is_err(),
            "one pin is left"
        );
        pins.unpin(slot, TxId(3));
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

    /// Views pinned on many threads (in different shards) all hold the
    /// horizon back, and the oldest is the least of them.
    #[test]
    fn pins_in_every_shard_hold_the_horizon() {
        let pins = std::sync::Arc::new(Pins::new(TxId(0)));
        let slots: Vec<(PinSlot, TxId)> = (0..2 * SHARDS as u64)
            .map(|i| {
                let pins = std::sync::Arc::clone(&pins);
                std::thread::spawn(move || (pins.pin(TxId(10 + i)).expect("pin"), TxId(10 + i)))
                    .join()
                    .expect("thread")
            })
            .collect();
        let used: std::collections::BTreeSet<usize> = slots.iter().map(|(s, _)| s.0).collect();
        assert!(used.len() > 1, "threads share one shard");
        assert_eq!(pins.oldest(), Some(TxId(10)));
        for (slot, txid) in &slots {
            assert!(pins.hold().raise_horizon(TxId(txid.0 + 1)).is_err());
            pins.unpin(*slot, *txid);
        }
        assert_eq!(pins.oldest(), None);
        pins.hold().raise_horizon(TxId(100)).expect("no views");
        assert!(pins.pin(TxId(99)).is_err());
    }
}
