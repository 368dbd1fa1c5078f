//! The block cache: decompressed blocks keyed by (run uid, block offset),
//! within a byte budget, shared by every open run.
//!
//! Sharded by key hash; each shard is a CLOCK (second chance) ring: a hit
//! sets the entry's reference bit under the shard's mutex (one hash lookup,
//! one `Arc` clone); an insert that needs room advances the hand, clearing
//! set bits and evicting the first entry whose bit is clear, so eviction is
//! amortised O(1) and never scans the cache. A block bigger than a shard's
//! budget is not cached.
//!
//! Entries cannot go stale: a run file never changes, and every opened run
//! gets a uid never used before (the caller's promise), so a block of a
//! deleted run simply ages out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A decompressed block as the cache shares it. A `Vec` behind the `Arc`
/// (not `Arc<[u8]>`): the decompressed buffer moves in without a copy.
pub(crate) type Block = Arc<Vec<u8>>;

/// Number of shards (a power of two).
const SHARDS: usize = 16;
/// Bytes charged per entry on top of the block (map slot, ring slot, `Arc`).
const ENTRY_OVERHEAD_BYTES: usize = 64;

const _: () = assert!(SHARDS.is_power_of_two());

type Key = (u64, u64);

/// A shared, bounded cache of decompressed blocks.
#[derive(Debug)]
pub(crate) struct BlockCache {
    shards: Box<[Mutex<Shard>]>,
    shard_budget: usize,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Key, usize>,
    ring: Vec<Slot>,
    free: Vec<usize>,
    hand: usize,
    used: usize,
}

#[derive(Debug)]
struct Slot {
    key: Key,
    block: Option<Block>,
    referenced: bool,
}

fn charge(block: &[u8]) -> usize {
    block.len() + ENTRY_OVERHEAD_BYTES
}

impl BlockCache {
    /// A cache holding at most about `budget_bytes` of blocks (0 caches
    /// nothing).
    pub(crate) fn new(budget_bytes: usize) -> BlockCache {
        BlockCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_budget: budget_bytes / SHARDS,
        }
    }

    fn shard(&self, key: Key) -> std::sync::MutexGuard<'_, Shard> {
        let h =
            (key.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ key.1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let shard = &self.shards[(h >> 60) as usize & (SHARDS - 1)];
        // A panic while holding a shard leaves it consistent (every update
        // is a few assignments), so a poisoned lock is still usable.
        shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached block, if any.
    pub(crate) fn get(&self, run_uid: u64, offset: u64) -> Option<Block> {
        let mut shard = self.shard((run_uid, offset));
        let &slot = shard.map.get(&(run_uid, offset))?;
        let slot = &mut shard.ring[slot];
        slot.referenced = true;
        slot.block.clone()
    }

    /// Caches `block` (already checked and decompressed).
    pub(crate) fn insert(&self, run_uid: u64, offset: u64, block: Block) {
        let size = charge(&block);
        if size > self.shard_budget {
            return;
        }
        let key = (run_uid, offset);
        let mut shard = self.shard(key);
        if shard.map.contains_key(&key) {
            return;
        }
        while shard.used + size > self.shard_budget {
            shard.evict_one();
        }
        shard.used += size;
        let slot = Slot {
            key,
            block: Some(block),
            referenced: false,
        };
        let index = match shard.free.pop() {
            Some(i) => {
                shard.ring[i] = slot;
                i
            }
            None => {
                shard.ring.push(slot);
                shard.ring.len() - 1
            }
        };
        shard.map.insert(key, index);
    }

    /// Bytes charged against the budget now.
    pub(crate) fn used_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .used
            })
            .sum()
    }
}

impl Shard {
    /// Advances the hand to the first unreferenced entry and evicts it.
    /// Terminates within two turns: the first clears every bit it passes.
    fn evict_one(&mut self) {
        assert!(!self.map.is_empty(), "only called while over budget");
        loop {
            let hand = self.hand;
            self.hand = (self.hand + 1) % self.ring.len();
            let slot = &mut self.ring[hand];
            let Some(block) = &slot.block else { continue };
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            let size = charge(block);
            let key = slot.key;
            slot.block = None;
            self.used -= size;
            self.map.remove(&key);
            self.free.push(hand);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(len: usize, byte: u8) -> Block {
        Arc::new(vec![byte; len])
    }

    #[test]
    fn a_hit_returns_the_block_and_a_miss_nothing() {
        let cache = BlockCache::new(1 << 20);
        cache.insert(1, 16, block(100, 7));
        assert_eq!(
            cache.get(1, 16).as_deref().map(Vec::as_slice),
            Some(&[7u8; 100][..])
        );
        assert!(cache.get(1, 17).is_none());
        assert!(cache.get(2, 16).is_none());
    }

    #[test]
    fn the_budget_holds_and_referenced_blocks_survive_a_sweep() {
        let cache = BlockCache::new(SHARDS * 1000);
        for offset in 0..1000 {
            cache.insert(1, offset, block(100, offset as u8));
            // Keep block 0 hot.
            let _ = cache.get(1, 0);
        }
        assert!(cache.used_bytes() <= SHARDS * 1000);
        assert!(
            cache.get(1, 0).is_some(),
            "a block read between inserts stays"
        );
        assert!(cache.get(1, 1).is_none(), "a cold old block was evicted");
    }

    #[test]
    fn a_block_larger_than_a_shard_is_not_cached_and_zero_budget_caches_nothing() {
        let cache = BlockCache::new(SHARDS * 100);
        cache.insert(1, 0, block(200, 0));
        assert!(cache.get(1, 0).is_none());
        let none = BlockCache::new(0);
        none.insert(1, 0, block(1, 0));
        assert!(none.get(1, 0).is_none());
    }
}
