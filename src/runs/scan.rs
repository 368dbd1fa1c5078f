//! Range scans over a run: per key of a range, the latest version at a
//! txid, in batches of at most a given number of keys. A scan jumps to its
//! first block through the block index and reads blocks through the
//! [`super::BlockCache`] like point reads do.

use std::ops::Bound;

use super::VersionEntry;
use super::reader::Run;
use crate::error::Result;
use crate::types::{TableId, TxId};

/// One batch of a range scan over a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScanBatch {
    /// Per distinct key looked at, in scan order, the latest version with
    /// txid <= at (a Delete version included: the caller decides
    /// visibility). Keys of the range with no version <= at are looked at
    /// but produce no entry.
    pub entries: Vec<VersionEntry>,
    /// The last key looked at (all of its versions consumed), if any; the
    /// caller resumes with an Excluded bound on it.
    pub last_key: Option<Vec<u8>>,
    /// True when the run holds no key of `table` in the range beyond
    /// `last_key` (in scan direction).
    pub exhausted: bool,
}

/// The keys of one table within two bounds.
struct KeyRange<'a> {
    table: TableId,
    lower: Bound<&'a [u8]>,
    upper: Bound<&'a [u8]>,
}

impl KeyRange<'_> {
    /// Whether `(table, key)` sorts before every key of the range.
    fn before_start(&self, table: TableId, key: &[u8]) -> bool {
        table < self.table
            || (table == self.table
                && match self.lower {
                    Bound::Included(l) => key < l,
                    Bound::Excluded(l) => key <= l,
                    Bound::Unbounded => false,
                })
    }

    /// Whether `(table, key)` sorts after every key of the range.
    fn after_end(&self, table: TableId, key: &[u8]) -> bool {
        table > self.table
            || (table == self.table
                && match self.upper {
                    Bound::Included(u) => key > u,
                    Bound::Excluded(u) => key >= u,
                    Bound::Unbounded => false,
                })
    }

    /// True when the bounds admit no key at all.
    fn is_empty(&self) -> bool {
        match (self.lower, self.upper) {
            (Bound::Included(l), Bound::Included(u)) => l > u,
            (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u))
            | (Bound::Excluded(l), Bound::Included(u)) => l >= u,
            (Bound::Unbounded, Bound::Excluded(u)) => u.is_empty(),
            _ => false,
        }
    }

    /// A sort key every entry before which is before the range, for
    /// `VersionCursor::seek` (run txids are at least 1).
    fn seek_target(&self) -> (TableId, &[u8], TxId) {
        match self.lower {
            Bound::Included(l) => (self.table, l, TxId::ZERO),
            Bound::Excluded(l) => (self.table, l, TxId(u64::MAX)),
            Bound::Unbounded => (self.table, &[], TxId::ZERO),
        }
    }
}

/// A key being looked at: its bytes and its latest version <= at so far.
type Current = (Vec<u8>, Option<VersionEntry>);

/// The batch under construction.
struct Batch {
    entries: Vec<VersionEntry>,
    last_key: Option<Vec<u8>>,
    looked: usize,
    max_keys: usize,
}

impl Batch {
    fn new(max_keys: usize) -> Batch {
        Batch {
            entries: Vec::new(),
            last_key: None,
            looked: 0,
            max_keys,
        }
    }

    /// Records a fully decided key.
    fn decide(&mut self, (key, best): Current) {
        self.entries.extend(best);
        self.last_key = Some(key);
        self.looked += 1;
    }

    fn full(&self) -> bool {
        self.looked >= self.max_keys
    }

    fn finish(mut self, current: Option<Current>, exhausted: bool) -> ScanBatch {
        if let Some(c) = current {
            self.decide(c);
        }
        debug_assert!(exhausted || self.last_key.is_some());
        ScanBatch {
            entries: self.entries,
            last_key: self.last_key,
            exhausted,
        }
    }
}

impl Run {
    /// Scans keys of `table` within (lower, upper) in key order (`forward`)
    /// or reverse key order, looking at at most `max_keys` distinct keys
    /// (max_keys >= 1).
    pub(crate) fn scan_visible(
        &self,
        table: TableId,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        at: TxId,
        forward: bool,
        max_keys: usize,
    ) -> Result<ScanBatch> {
        debug_assert!(max_keys >= 1, "a scan batch looks at a key at least");
        let range = KeyRange {
            table,
            lower,
            upper,
        };
        let batch = Batch::new(max_keys.max(1));
        if range.is_empty() || self.vindex.is_empty() {
            return Ok(batch.finish(None, true));
        }
        if forward {
            self.scan_forward(&range, at, batch)
        } else {
            self.scan_reverse(&range, at, batch)
        }
    }

    fn scan_forward(&self, range: &KeyRange<'_>, at: TxId, mut batch: Batch) -> Result<ScanBatch> {
        let first = self.first_block_not(|e| range.before_start(e.last_table, &e.last_key))?;
        let target = range.seek_target();
        let mut current: Option<Current> = None;
        for i in first..self.vindex.len() {
            // `Some(exhausted)` once the batch is decided.
            let mut stop = None;
            let mut ends_at_index = false;
            let index_last = self.block(i)?.last();
            self.scan_block(i, true, Some(target), |e| {
                ends_at_index = e.sort_key() == index_last;
                if range.before_start(e.table, e.key) {
                    return true;
                }
                if range.after_end(e.table, e.key) {
                    stop = Some(true);
                    return false;
                }
                let same = current.as_ref().is_some_and(|(k, _)| *k == e.key);
                if !same {
                    if let Some(c) = current.take() {
                        batch.decide(c);
                        if batch.full() {
                            stop = Some(false);
                            return false;
                        }
                    }
                    current = Some((e.key.to_vec(), None));
                }
                if e.txid <= at
                    && let Some((_, best)) = &mut current
                {
                    e.copy_into(best);
                }
                true
            })?;
            if let Some(exhausted) = stop {
                return Ok(batch.finish(current, exhausted));
            }
            if !ends_at_index {
                return Err(self.disagrees(i));
            }
        }
        Ok(batch.finish(current, true))
    }

    fn scan_reverse(&self, range: &KeyRange<'_>, at: TxId, mut batch: Batch) -> Result<ScanBatch> {
        // The last block whose last entry is in or before the range, or the
        // first one after it, which may still start with keys of the range.
        let after = self.first_block_not(|e| !range.after_end(e.last_table, &e.last_key))?;
        let mut i = after.min(self.vindex.len() - 1);
        let mut current: Option<Current> = None;
        loop {
            // Block i's keys of the range in order, each with its latest
            // version <= at within this block.
            for group in self.block_groups(i, range, at)?.into_iter().rev() {
                match &mut current {
                    // The same key continues into a later block, whose
                    // versions are newer.
                    Some((key, best)) if *key == group.0 => {
                        if best.is_none() {
                            *best = group.1;
                        }
                    }
                    _ => {
                        if let Some(c) = current.take() {
                            batch.decide(c);
                            if batch.full() {
                                return Ok(batch.finish(None, false));
                            }
                        }
                        current = Some(group);
                    }
                }
            }
            if i == 0 {
                return Ok(batch.finish(current, true));
            }
            let prev = self.block(i - 1)?;
            if range.before_start(prev.last_table, &prev.last_key) {
                return Ok(batch.finish(current, true));
            }
            // Block i - 1 ends with a key of the range (it is not after the
            // range: block i's first entry follows it). If that is another
            // key, the current one is decided without reading it.
            if current.as_ref().is_some_and(|(k, _)| *k != *prev.last_key) {
                batch.decide(current.take().expect("checked"));
                if batch.full() {
                    return Ok(batch.finish(None, false));
                }
            }
            i -= 1;
        }
    }

    /// The keys of `range` in version block `i`, in order, each with its
    /// latest version <= `at` in this block.
    fn block_groups(&self, i: usize, range: &KeyRange<'_>, at: TxId) -> Result<Vec<Current>> {
        let mut groups: Vec<Current> = Vec::new();
        let (mut past_end, mut ends_at_index) = (false, false);
        let index_last = self.block(i)?.last();
        self.scan_block(i, true, Some(range.seek_target()), |e| {
            ends_at_index = e.sort_key() == index_last;
            if range.before_start(e.table, e.key) {
                return true;
            }
            if range.after_end(e.table, e.key) {
                past_end = true;
                return false;
            }
            let same = groups.last().is_some_and(|(k, _)| *k == e.key);
            if !same {
                groups.push((e.key.to_vec(), None));
            }
            if e.txid <= at
                && let Some((_, best)) = groups.last_mut()
            {
                e.copy_into(best);
            }
            true
        })?;
        if !past_end && !ends_at_index {
            return Err(self.disagrees(i));
        }
        Ok(groups)
    }

    fn disagrees(&self, i: usize) -> crate::error::Error {
        self.corrupt(
            self.block(i).map_or(0, |b| b.handle.offset),
            "version block does not end with its index entry",
        )
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Bound::{self, Excluded, Included, Unbounded};
    use std::path::Path;
    use std::sync::Arc;

    use proptest::prelude::*;

    use crate::error::Error;
    use crate::runs::ScanBatch;
    use crate::runs::tests::{config, model_of, open};
    use crate::runs::testutil::{MemStorage, build, small_history, time_of, tx_records};
    use crate::runs::{BlockCache, EMPTY_META, MetaRef, Run, VersionEntry};
    use crate::types::{Op, TableId, TxId};

    fn version(table: u32, key: &[u8], txid: u64, op: Op, value_len: usize) -> VersionEntry {
        VersionEntry {
            table: TableId(table),
            key: key.to_vec(),
            txid: TxId(txid),
            op,
            commit_time: time_of(txid),
            meta: MetaRef::None,
            value: (op != Op::Delete).then(|| vec![txid as u8; value_len]),
        }
    }

    /// Builds a run of `versions` (any order) covering txids `first..=last`.
    fn run_of(
        storage: &MemStorage,
        mut versions: Vec<VersionEntry>,
        first: u64,
        last: u64,
        block_target: usize,
        zstd: bool,
    ) -> (Run, Vec<VersionEntry>) {
        versions.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let txs = tx_records(&versions, first, last, |_| EMPTY_META.to_vec());
        let path = Path::new("scan.tcrun");
        build(storage, path, config(block_target, zstd), &versions, &txs);
        (open(storage, path).expect("open"), versions)
    }

    fn in_range(key: &[u8], lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> bool {
        let above = match lower {
            Included(l) => key >= l,
            Excluded(l) => key > l,
            Unbounded => true,
        };
        let below = match upper {
            Included(u) => key <= u,
            Excluded(u) => key < u,
            Unbounded => true,
        };
        above && below
    }

    /// The keys of `table` in the range, in scan order, each with its
    /// latest version <= at (brute force over the input versions).
    fn reference(
        versions: &[VersionEntry],
        table: TableId,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        at: TxId,
        forward: bool,
    ) -> Vec<(Vec<u8>, Option<VersionEntry>)> {
        let mut keys: Vec<(Vec<u8>, Option<VersionEntry>)> = model_of(versions)
            .into_iter()
            .filter(|((t, k), _)| *t == table && in_range(k, lower, upper))
            .map(|((_, k), chain)| {
                let best = chain.range(..=at).next_back().map(|(_, v)| v.clone());
                (k, best)
            })
            .collect();
        if !forward {
            keys.reverse();
        }
        keys
    }

    /// One scan to walk: the arguments of `scan_visible`.
    #[derive(Clone, Copy)]
    struct Query<'a> {
        table: TableId,
        lower: Bound<&'a [u8]>,
        upper: Bound<&'a [u8]>,
        at: TxId,
        forward: bool,
        max_keys: usize,
    }

    fn q<'a>(
        table: TableId,
        lower: Bound<&'a [u8]>,
        upper: Bound<&'a [u8]>,
        at: TxId,
        forward: bool,
        max_keys: usize,
    ) -> Query<'a> {
        Query {
            table,
            lower,
            upper,
            at,
            forward,
            max_keys,
        }
    }

    /// Walks the whole range in batches of `max_keys`, checking each batch
    /// against the reference; returns the concatenated entries and the
    /// number of batches.
    #[track_caller]
    fn walk(run: &Run, versions: &[VersionEntry], query: Query<'_>) -> (Vec<VersionEntry>, usize) {
        let Query {
            table,
            lower,
            upper,
            at,
            forward,
            max_keys,
        } = query;
        let expected = reference(versions, table, lower, upper, at, forward);
        let mut out = Vec::new();
        let mut resume: Option<Vec<u8>> = None;
        // Reference keys not yet looked at.
        let mut rest = &expected[..];
        let mut batches = 0;
        loop {
            batches += 1;
            assert!(batches <= expected.len() + 1, "the walk does not end");
            let (lo, hi) = match (&resume, forward) {
                (None, _) => (lower, upper),
                (Some(k), true) => (Excluded(&k[..]), upper),
                (Some(k), false) => (lower, Excluded(&k[..])),
            };
            let batch = run
                .scan_visible(table, lo, hi, at, forward, max_keys)
                .expect("scan");
            // The keys this batch looked at: up to and including last_key.
            let looked = match &batch.last_key {
                Some(last) => {
                    let n = rest
                        .iter()
                        .position(|(k, _)| k == last)
                        .unwrap_or_else(|| panic!("last_key {last:?} is not a next key"));
                    n + 1
                }
                None => 0,
            };
            assert!(
                looked <= max_keys,
                "{looked} keys looked at, max {max_keys}"
            );
            let want: Vec<VersionEntry> = rest[..looked]
                .iter()
                .filter_map(|(_, v)| v.clone())
                .collect();
            assert_eq!(batch.entries, want, "batch {batches}");
            rest = &rest[looked..];
            out.extend(batch.entries);
            if batch.exhausted {
                assert!(rest.is_empty(), "exhausted with {} keys left", rest.len());
                return (out, batches);
            }
            assert!(looked >= 1, "a batch that is not the last looks at a key");
            resume = batch.last_key;
        }
    }

    /// The entries of a whole-range walk equal the reference.
    #[track_caller]
    fn check_walk(run: &Run, versions: &[VersionEntry], query: Query<'_>) -> Vec<VersionEntry> {
        let (got, _) = walk(run, versions, query);
        let Query {
            table,
            lower,
            upper,
            at,
            forward,
            ..
        } = query;
        let want: Vec<VersionEntry> = reference(versions, table, lower, upper, at, forward)
            .into_iter()
            .filter_map(|(_, v)| v)
            .collect();
        assert_eq!(got, want);
        got
    }

    fn keys_of(entries: &[VersionEntry]) -> Vec<&[u8]> {
        entries.iter().map(|e| &e.key[..]).collect()
    }

    /// Table 1 between tables 0 and 2; key `k` has 40 versions spanning
    /// several 64-byte blocks.
    fn spanning_history() -> Vec<VersionEntry> {
        let mut v = vec![
            version(0, b"a", 1, Op::Insert, 8),
            version(0, b"zz", 2, Op::Insert, 8),
            version(1, b"b", 3, Op::Insert, 8),
            version(1, b"b", 50, Op::Delete, 0),
            version(1, b"z", 45, Op::Insert, 8),
            version(2, b"", 1, Op::Insert, 8),
            version(2, b"k", 4, Op::Insert, 8),
        ];
        for t in 5..45 {
            let op = if t == 5 { Op::Insert } else { Op::Update };
            v.push(version(1, b"k", t, op, 20));
        }
        v
    }

    #[test]
    fn a_key_spanning_several_blocks_is_decided_whole_in_both_directions() {
        let storage = MemStorage::default();
        let (run, versions) = run_of(&storage, spanning_history(), 1, 50, 64, false);
        let k_blocks = run
            .vindex
            .all_entries(&run)
            .iter()
            .filter(|e| e.last_table == TableId(1) && *e.last_key == *b"k")
            .count();
        assert!(k_blocks >= 5, "k ends {k_blocks} blocks");
        let t1 = TableId(1);
        for at in [4, 5, 6, 20, 44, 45, 49, 50, 60] {
            for forward in [true, false] {
                for max_keys in [1, 2, 3, 10] {
                    let got = check_walk(
                        &run,
                        &versions,
                        q(t1, Unbounded, Unbounded, TxId(at), forward, max_keys),
                    );
                    let k = got.iter().find(|e| e.key == b"k");
                    // k's latest version at `at` (5..=44), which for a small
                    // `at` is in k's first block, far from its newest ones.
                    assert_eq!(k.map(|e| e.txid), (at >= 5).then_some(TxId(at.min(44))));
                }
            }
        }
        // Bounds right at the spanning key.
        for (lo, hi) in [
            (Included(&b"k"[..]), Included(&b"k"[..])),
            (Excluded(&b"b"[..]), Excluded(&b"z"[..])),
            (Excluded(&b"k"[..]), Unbounded),
            (Unbounded, Excluded(&b"k"[..])),
        ] {
            for forward in [true, false] {
                check_walk(&run, &versions, q(t1, lo, hi, TxId(10), forward, 1));
            }
        }
    }

    #[test]
    fn bounds_included_excluded_and_unbounded() {
        let storage = MemStorage::default();
        let versions: Vec<VersionEntry> = [&b"a"[..], b"b", b"bb", b"c", b"d"]
            .iter()
            .enumerate()
            .map(|(i, k)| version(1, k, i as u64 + 1, Op::Insert, 4))
            .collect();
        let (run, versions) = run_of(&storage, versions, 1, 5, 64, true);
        let t = TableId(1);
        let scan = |lo, hi, forward| {
            let b = run
                .scan_visible(t, lo, hi, TxId(9), forward, 100)
                .expect("scan");
            assert!(b.exhausted);
            b.entries.into_iter().map(|e| e.key).collect::<Vec<_>>()
        };
        let ks = |s: &[&[u8]]| s.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
        let b: &[u8] = b"b";
        let c: &[u8] = b"c";
        assert_eq!(
            scan(Included(b), Included(c), true),
            ks(&[b"b", b"bb", b"c"])
        );
        assert_eq!(scan(Excluded(b), Included(c), true), ks(&[b"bb", b"c"]));
        assert_eq!(scan(Included(b), Excluded(c), true), ks(&[b"b", b"bb"]));
        assert_eq!(scan(Excluded(b), Excluded(c), true), ks(&[b"bb"]));
        assert_eq!(scan(Unbounded, Excluded(c), true), ks(&[b"a", b"b", b"bb"]));
        assert_eq!(scan(Excluded(c), Unbounded, true), ks(&[b"d"]));
        assert_eq!(
            scan(Included(b), Included(c), false),
            ks(&[b"c", b"bb", b"b"])
        );
        assert_eq!(scan(Excluded(b), Excluded(c), false), ks(&[b"bb"]));
        assert_eq!(
            scan(Unbounded, Excluded(c), false),
            ks(&[b"bb", b"b", b"a"])
        );
        assert_eq!(scan(Excluded(c), Unbounded, false), ks(&[b"d"]));
        assert_eq!(
            scan(Unbounded, Unbounded, false),
            ks(&[b"d", b"c", b"bb", b"b", b"a"])
        );
        // Bounds on keys the run does not hold.
        assert_eq!(scan(Included(b"ba"), Included(b"bz"), true), ks(&[b"bb"]));
        assert_eq!(scan(Included(b"ba"), Included(b"bz"), false), ks(&[b"bb"]));
        for forward in [true, false] {
            for max_keys in [1, 2, 7] {
                check_walk(
                    &run,
                    &versions,
                    q(t, Excluded(b), Unbounded, TxId(3), forward, max_keys),
                );
            }
        }
    }

    #[test]
    fn empty_ranges_give_an_empty_exhausted_batch() {
        let storage = MemStorage::default();
        let (run, _) = run_of(&storage, spanning_history(), 1, 50, 64, false);
        let empty = ScanBatch {
            entries: Vec::new(),
            last_key: None,
            exhausted: true,
        };
        let (k, z): (&[u8], &[u8]) = (b"k", b"z");
        for (lo, hi) in [
            (Included(z), Included(k)),
            (Included(k), Excluded(k)),
            (Excluded(k), Included(k)),
            (Excluded(k), Excluded(k)),
            (Excluded(z), Excluded(k)),
            (Unbounded, Excluded(&b""[..])),
        ] {
            for forward in [true, false] {
                let got = run
                    .scan_visible(TableId(1), lo, hi, TxId(50), forward, 3)
                    .expect("scan");
                assert_eq!(got, empty, "{lo:?}..{hi:?} forward {forward}");
            }
        }
        // A table the run does not hold, before, between or after its tables.
        let storage = MemStorage::default();
        let (run, _) = run_of(
            &storage,
            vec![
                version(1, b"a", 1, Op::Insert, 3),
                version(3, b"a", 1, Op::Insert, 3),
            ],
            1,
            1,
            64,
            false,
        );
        for table in [0, 2, 4] {
            for forward in [true, false] {
                let got = run
                    .scan_visible(TableId(table), Unbounded, Unbounded, TxId(1), forward, 1)
                    .expect("scan");
                assert_eq!(got, empty, "table {table}");
            }
        }
        // A run with no versions at all.
        let txs = tx_records(&[], 1, 3, |_| EMPTY_META.to_vec());
        build(&storage, Path::new("empty"), config(64, false), &[], &txs);
        let run = open(&storage, Path::new("empty")).expect("open");
        let got = run
            .scan_visible(TableId(0), Unbounded, Unbounded, TxId(3), false, 1)
            .expect("scan");
        assert_eq!(got, empty);
    }

    #[test]
    fn only_the_scanned_table_in_the_middle_of_others() {
        let storage = MemStorage::default();
        let (run, versions) = run_of(&storage, spanning_history(), 1, 50, 64, true);
        for forward in [true, false] {
            let b = run
                .scan_visible(TableId(1), Unbounded, Unbounded, TxId(50), forward, 100)
                .expect("scan");
            assert!(b.exhausted);
            assert!(b.entries.iter().all(|e| e.table == TableId(1)));
            let mut want: Vec<&[u8]> = vec![b"b", b"k", b"z"];
            if !forward {
                want.reverse();
            }
            assert_eq!(keys_of(&b.entries), want);
            for table in 0..4 {
                for max_keys in [1, 2] {
                    check_walk(
                        &run,
                        &versions,
                        q(
                            TableId(table),
                            Unbounded,
                            Unbounded,
                            TxId(50),
                            forward,
                            max_keys,
                        ),
                    );
                }
            }
        }
    }

    #[test]
    fn at_before_inside_and_after_the_runs_txids() {
        let storage = MemStorage::default();
        let versions = vec![
            version(0, b"a", 10, Op::Insert, 3),
            version(0, b"a", 12, Op::Update, 3),
            version(0, b"b", 11, Op::Insert, 3),
            version(0, b"c", 14, Op::Insert, 3),
        ];
        let (run, versions) = run_of(&storage, versions, 10, 14, 64, false);
        let t = TableId(0);
        for forward in [true, false] {
            // Before the run: every key is looked at, none has a version.
            for at in [0, 9] {
                let b = run
                    .scan_visible(t, Unbounded, Unbounded, TxId(at), forward, 10)
                    .expect("scan");
                assert!(b.entries.is_empty() && b.exhausted);
                let b = run
                    .scan_visible(t, Unbounded, Unbounded, TxId(at), forward, 1)
                    .expect("scan");
                assert!(b.entries.is_empty() && !b.exhausted && b.last_key.is_some());
                check_walk(
                    &run,
                    &versions,
                    q(t, Unbounded, Unbounded, TxId(at), forward, 1),
                );
            }
            let txids = |at: u64| {
                let b = run
                    .scan_visible(t, Unbounded, Unbounded, TxId(at), forward, 10)
                    .expect("scan");
                let mut ids: Vec<(Vec<u8>, u64)> =
                    b.entries.into_iter().map(|e| (e.key, e.txid.0)).collect();
                ids.sort();
                ids
            };
            let kv =
                |s: &[(&[u8], u64)]| s.iter().map(|&(k, t)| (k.to_vec(), t)).collect::<Vec<_>>();
            assert_eq!(txids(10), kv(&[(b"a", 10)]));
            assert_eq!(txids(11), kv(&[(b"a", 10), (b"b", 11)]));
            assert_eq!(txids(13), kv(&[(b"a", 12), (b"b", 11)]));
            assert_eq!(txids(14), kv(&[(b"a", 12), (b"b", 11), (b"c", 14)]));
            assert_eq!(txids(u64::MAX), txids(14));
        }
    }

    #[test]
    fn deletes_are_returned_as_entries() {
        let storage = MemStorage::default();
        let (versions, txs) = small_history();
        build(&storage, Path::new("r"), config(64, true), &versions, &txs);
        let run = open(&storage, Path::new("r")).expect("open");
        for forward in [true, false] {
            let b = run
                .scan_visible(TableId(0), Unbounded, Unbounded, TxId(6), forward, 10)
                .expect("scan");
            let alice = b.entries.iter().find(|e| e.key == b"alice").expect("alice");
            assert_eq!(
                (alice.op, alice.txid, &alice.value),
                (Op::Delete, TxId(6), &None)
            );
            let b = run
                .scan_visible(TableId(1), Unbounded, Unbounded, TxId(9), forward, 10)
                .expect("scan");
            assert_eq!(b.entries.len(), 1);
            assert_eq!(b.entries[0].op, Op::Delete);
            for at in 0..=10 {
                check_walk(
                    &run,
                    &versions,
                    q(TableId(0), Unbounded, Unbounded, TxId(at), forward, 1),
                );
            }
        }
    }

    #[test]
    fn max_keys_one_walks_the_whole_range_key_by_key() {
        let storage = MemStorage::default();
        let mut versions = Vec::new();
        for k in 0..30u64 {
            for t in 1..=3 {
                versions.push(version(
                    0,
                    format!("key{k:02}").as_bytes(),
                    k + t,
                    Op::Update,
                    5,
                ));
            }
        }
        let (run, versions) = run_of(&storage, versions, 1, 40, 64, true);
        for forward in [true, false] {
            for at in [1, 15, 40] {
                let (got, batches) = walk(
                    &run,
                    &versions,
                    q(TableId(0), Unbounded, Unbounded, TxId(at), forward, 1),
                );
                // 30 batches of one key each, then possibly an empty last one.
                assert!((30..=31).contains(&batches), "{batches} batches");
                let mut want: Vec<String> = (0..30u64)
                    .filter(|k| k < &at)
                    .map(|k| format!("key{k:02}"))
                    .collect();
                if !forward {
                    want.reverse();
                }
                let got: Vec<String> = got
                    .iter()
                    .map(|e| String::from_utf8(e.key.clone()).expect("utf-8"))
                    .collect();
                assert_eq!(got, want, "at {at} forward {forward}");
            }
        }
    }

    #[test]
    fn a_scan_starts_at_its_first_block_through_the_index() {
        let storage = MemStorage::default();
        let versions: Vec<VersionEntry> = (0..400u64)
            .map(|k| version(0, format!("key{k:03}").as_bytes(), 1, Op::Insert, 10))
            .collect();
        let (_, versions) = run_of(&storage, versions, 1, 1, 256, false);
        let run = Run::open(
            &storage,
            Path::new("scan.tcrun"),
            2,
            Arc::new(BlockCache::new(0)),
        )
        .expect("open");
        assert!(run.vindex.len() > 20);
        for forward in [true, false] {
            let before = storage.reads();
            let b = run
                .scan_visible(
                    TableId(0),
                    Included(b"key200"),
                    Included(b"key204"),
                    TxId(1),
                    forward,
                    100,
                )
                .expect("scan");
            assert_eq!(b.entries.len(), 5);
            let reads = storage.reads() - before;
            assert!(reads <= 3, "{reads} block reads for 5 keys");
            let first = &versions[200].key;
            let last = &versions[204].key;
            let (a, z) = if forward {
                (first, last)
            } else {
                (last, first)
            };
            assert_eq!((&b.entries[0].key, &b.entries[4].key), (a, z));
        }
    }

    #[test]
    fn every_flipped_bit_of_a_version_block_is_corrupt_or_the_right_answer() {
        let (versions, txs) = small_history();
        for zstd in [false, true] {
            let storage = MemStorage::default();
            build(
                &storage,
                Path::new("good"),
                config(64, zstd),
                &versions,
                &txs,
            );
            let good = storage.bytes(Path::new("good"));
            let run = open(&storage, Path::new("good")).expect("open");
            let end = run.footer.version_index.offset as usize;
            for offset in crate::runs::footer::HEADER_SIZE..end {
                let mut bad = good.clone();
                bad[offset] ^= 1 << (offset % 8);
                storage.put(Path::new("bad"), bad);
                let Ok(run) = open(&storage, Path::new("bad")) else {
                    continue;
                };
                for table in [0, 1] {
                    for forward in [true, false] {
                        let b = run.scan_visible(
                            TableId(table),
                            Unbounded,
                            Unbounded,
                            TxId(9),
                            forward,
                            10,
                        );
                        match b {
                            Err(Error::Corrupt { .. }) => {}
                            Err(e) => panic!("flip at {offset}: {e}"),
                            Ok(b) => {
                                let want: Vec<VersionEntry> = reference(
                                    &versions,
                                    TableId(table),
                                    Unbounded,
                                    Unbounded,
                                    TxId(9),
                                    forward,
                                )
                                .into_iter()
                                .filter_map(|(_, v)| v)
                                .collect();
                                assert_eq!(b.entries, want, "flip at {offset}");
                            }
                        }
                    }
                }
            }
        }
    }

    fn arb_bound() -> impl Strategy<Value = (u8, Vec<u8>)> {
        (
            0u8..3,
            prop::collection::vec(prop::sample::select(&b"ab\x00"[..]), 0..3),
        )
    }

    fn as_bound((kind, key): &(u8, Vec<u8>)) -> Bound<&[u8]> {
        match kind {
            0 => Unbounded,
            1 => Included(key),
            _ => Excluded(key),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn a_resumed_scan_equals_the_brute_force_reference(
            raw in prop::collection::vec(
                (
                    0u32..4,
                    // Two hot keys get many versions, spanning blocks.
                    prop_oneof![
                        2 => prop::sample::select(vec![b"a".to_vec(), b"ba".to_vec()]),
                        3 => prop::collection::vec(prop::sample::select(&b"ab\x00"[..]), 0..3),
                    ],
                    0u64..12,
                    0u8..3,
                    0usize..24,
                ),
                0..100,
            ),
            first in 1u64..4,
            small in any::<bool>(),
            zstd in any::<bool>(),
            table in 0u32..4,
            lower in arb_bound(),
            upper in arb_bound(),
            at in 0u64..18,
            forward in any::<bool>(),
            max_keys in 1usize..5,
        ) {
            let last = first + 11;
            let mut seen = std::collections::BTreeSet::new();
            let versions: Vec<VersionEntry> = raw
                .into_iter()
                .filter(|(t, k, x, _, _)| seen.insert((*t, k.clone(), *x)))
                .map(|(t, k, x, op, len)| {
                    version(t, &k, first + x, [Op::Insert, Op::Update, Op::Delete][op as usize], len)
                })
                .collect();
            let storage = MemStorage::default();
            let (run, versions) =
                run_of(&storage, versions, first, last, if small { 64 } else { 4096 }, zstd);
            check_walk(&run, &versions, q(TableId(table), as_bound(&lower), as_bound(&upper), TxId(at), forward, max_keys));
        }
    }
}
