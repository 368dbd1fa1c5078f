//! A cache of value (and metadata) bytes read from segment files, so hot
//! reads skip the `pread` syscall.
//!
//! Entries are keyed by `(handle uid, offset)`. Bytes at an offset that an
//! index location points to never change while that file handle is in use
//! (segments are append-only; compaction writes a new file, which gets a
//! new handle uid), so an entry can never go stale — it can only become
//! unreachable and age out. Erasure clears the cache, so erased bytes do not
//! linger in memory.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

const SHARDS: usize = 16;

/// One value's bytes as read, owned by the reader: shared with the cache
/// (no copy), or read from the file.
pub(crate) enum ValueBytes {
    /// Shared with a cache entry.
    Cached(Arc<[u8]>),
    /// Read from the file (or a transaction's pending write).
    Read(Vec<u8>),
}

impl std::ops::Deref for ValueBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            ValueBytes::Cached(bytes) => bytes,
            ValueBytes::Read(bytes) => bytes,
        }
    }
}

/// A sharded, size-bounded map from file location to bytes. Eviction is
/// first in, first out: each shard keeps its keys in insertion order, so
/// an eviction costs O(1). (Taking "whatever the hash map yields first"
/// instead scans the empty buckets left by earlier evictions: quadratic
/// once the cache is full, which made a bulk build crawl.)
pub(crate) struct ValueCache {
    shards: Vec<Mutex<Shard>>,
    shard_capacity_bytes: usize,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<(u64, u64), Arc<[u8]>, BuildHasherDefault<LocationHasher>>,
    /// The keys of `entries` in insertion order, each once.
    order: VecDeque<(u64, u64)>,
    bytes: usize,
}

impl Shard {
    /// Removes the oldest entry; false if there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some(victim) = self.order.pop_front() {
            if let Some(old) = self.entries.remove(&victim) {
                self.bytes -= old.len() + ENTRY_OVERHEAD_BYTES;
                return true;
            }
        }
        false
    }
}

/// A multiply-rotate hash for `(uid, offset)` keys. The keys are not
/// chosen by an adversary (file offsets the log itself assigned), so the
/// DoS resistance of the default SipHash buys nothing here, and SipHash was
/// ~5% of a cached point read.
#[derive(Default)]
struct LocationHasher(u64);

impl Hasher for LocationHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(26) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        // Fold the well-mixed high half into the low bits the table indexes.
        self.0 ^ (self.0 >> 29)
    }
}

/// Per-entry bookkeeping counted against the capacity.
const ENTRY_OVERHEAD_BYTES: usize = 48;

impl ValueCache {
    pub(crate) fn new(capacity_bytes: usize) -> ValueCache {
        ValueCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity_bytes: capacity_bytes / SHARDS,
        }
    }

    fn shard(&self, uid: u64, offset: u64) -> MutexGuard<'_, Shard> {
        let hash = (uid.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ offset.wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
            >> 32;
        self.shards[hash as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `f` with the cached bytes at `offset` of handle `uid`, under
    /// the shard's lock, if they are `len` long.
    fn lookup<R>(
        &self,
        uid: u64,
        offset: u64,
        len: usize,
        f: impl FnOnce(&Arc<[u8]>) -> R,
    ) -> Option<R> {
        if self.shard_capacity_bytes == 0 {
            return None;
        }
        let shard = self.shard(uid, offset);
        let bytes = shard.entries.get(&(uid, offset))?;
        (bytes.len() == len).then(|| f(bytes))
    }

    /// The cached bytes at `offset` of handle `uid`, if they are `len` long.
    pub(crate) fn get(&self, uid: u64, offset: u64, len: usize) -> Option<Vec<u8>> {
        self.lookup(uid, offset, len, |bytes| bytes.to_vec())
    }

    /// The cached bytes at `offset` of handle `uid`, if they are `len`
    /// long, shared rather than copied: for callers that only look at them.
    pub(crate) fn get_shared(&self, uid: u64, offset: u64, len: usize) -> Option<Arc<[u8]>> {
        self.lookup(uid, offset, len, Arc::clone)
    }

    /// Copies the cached bytes at `offset` of handle `uid` into `out` if
    /// they are `out.len()` long; whether they were there. For small values
    /// a copy is cheaper than sharing: no allocation and no reference-count
    /// traffic on a cold cache line.
    pub(crate) fn copy_into(&self, uid: u64, offset: u64, out: &mut [u8]) -> bool {
        self.lookup(uid, offset, out.len(), |bytes| out.copy_from_slice(bytes))
            .is_some()
    }

    /// Remembers `bytes` read at `offset` of handle `uid`.
    pub(crate) fn insert(&self, uid: u64, offset: u64, bytes: &[u8]) {
        let cost = bytes.len() + ENTRY_OVERHEAD_BYTES;
        if cost > self.shard_capacity_bytes / 4 {
            return;
        }
        let mut shard = self.shard(uid, offset);
        while shard.bytes + cost > self.shard_capacity_bytes && shard.evict_oldest() {}
        match shard.entries.insert((uid, offset), Arc::from(bytes)) {
            // Replaced: its key is in the order already.
            Some(old) => shard.bytes -= old.len() + ENTRY_OVERHEAD_BYTES,
            None => shard.order.push_back((uid, offset)),
        }
        shard.bytes += cost;
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            shard.entries.clear();
            shard.order.clear();
            shard.bytes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_oldest_first_and_keeps_order_and_entries_equal() {
        let cache = ValueCache::new(SHARDS * 10 * (60 + ENTRY_OVERHEAD_BYTES));
        // Far more inserts than fit: each shard holds its 10 newest.
        for i in 0..100_000u64 {
            cache.insert(1, i * 64, &[i as u8; 60]);
        }
        assert!(cache.get(1, 0, 60).is_none(), "the first is long gone");
        assert_eq!(
            cache.get(1, 99_999 * 64, 60),
            Some(vec![99_999u64 as u8; 60])
        );
        for shard in &cache.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            assert_eq!(shard.order.len(), shard.entries.len());
            assert!(shard.entries.len() <= 10);
        }
        // Replacing an entry keeps one key in the order.
        cache.insert(1, 99_999 * 64, &[7; 60]);
        let total: usize = cache
            .shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                assert_eq!(s.order.len(), s.entries.len());
                s.entries.len()
            })
            .sum();
        assert!(total > 0);
    }

    #[test]
    fn stays_within_capacity_and_checks_length() {
        let cache = ValueCache::new(16 * 1024);
        for i in 0..1000u64 {
            cache.insert(1, i * 100, &[i as u8; 60]);
        }
        let held: usize = cache
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).bytes)
            .sum();
        assert!(held <= 16 * 1024, "{held}");
        cache.insert(2, 0, b"abc");
        assert_eq!(cache.get(2, 0, 3), Some(b"abc".to_vec()));
        assert_eq!(cache.get(2, 0, 4), None, "a different length is a miss");
        assert_eq!(cache.get_shared(2, 0, 3).as_deref(), Some(&b"abc"[..]));
        assert_eq!(cache.get_shared(2, 0, 4), None);
        assert_eq!(cache.get(3, 0, 3), None, "another handle is a miss");
        cache.clear();
        assert_eq!(cache.get(2, 0, 3), None);
        let off = ValueCache::new(0);
        off.insert(1, 0, b"x");
        assert_eq!(off.get(1, 0, 1), None);
        assert_eq!(off.get_shared(1, 0, 1), None);
    }
}
