//! `merge`: a k-way merge of adjacent runs into one.
//!
//! The inputs cover adjacent txid ranges, so for one key every version of
//! an earlier input comes before every version of a later one and no two
//! entries tie. `keep` sees each version with the next version of the same
//! key (if any): this is where purge, retention and erasure drop versions
//! physically. A dropped version's change is removed from its tx record;
//! the tx record itself stays (a txid with no surviving change still has
//! one). Memory: one entry per input plus the dropped versions'
//! `(txid, table, key)`, packed ([`Dropped`]: 24 bytes plus the key each,
//! against ~80 in a hash set of owned keys).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::reader::Run;
use super::writer::{RunRange, RunWriter};
use super::{RunSummary, VersionEntry};
use crate::error::Result;
use crate::types::{TableId, TxId};

/// An entry waiting in the merge heap, ordered so the smallest sort key
/// pops first.
struct Head {
    entry: VersionEntry,
    input: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        other.entry.sort_key().cmp(&self.entry.sort_key())
    }
}

/// Every version of adjacent runs (oldest first) in `(table, key, txid)`
/// order, read without filling the cache; stops after the first error.
pub(crate) struct MergedVersions<'a> {
    iters: Vec<super::iter::VersionIter<'a>>,
    heap: BinaryHeap<Head>,
    started: bool,
    failed: bool,
}

impl<'a> MergedVersions<'a> {
    pub(crate) fn new(inputs: &[&'a Run]) -> MergedVersions<'a> {
        MergedVersions {
            iters: inputs.iter().map(|r| r.iter()).collect(),
            heap: BinaryHeap::with_capacity(inputs.len()),
            started: false,
            failed: false,
        }
    }
}

impl Iterator for MergedVersions<'_> {
    type Item = Result<VersionEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if !self.started {
            self.started = true;
            for input in 0..self.iters.len() {
                match self.iters[input].next() {
                    Some(Ok(entry)) => self.heap.push(Head { entry, input }),
                    Some(Err(e)) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                    None => {}
                }
            }
        }
        let Head { entry, input } = self.heap.pop()?;
        match self.iters[input].next() {
            Some(Ok(next)) => self.heap.push(Head { entry: next, input }),
            Some(Err(e)) => {
                self.failed = true;
                return Some(Err(e));
            }
            None => {}
        }
        Some(Ok(entry))
    }
}

/// Calls `f` with every version of `inputs` (adjacent runs, oldest
/// first) in `(table, key, txid)` order, each with the next version of the
/// same key if there is one.
pub(crate) fn for_each_with_next(
    inputs: &[&Run],
    mut f: impl FnMut(VersionEntry, Option<&VersionEntry>) -> Result<()>,
) -> Result<()> {
    let mut pending: Option<VersionEntry> = None;
    for entry in MergedVersions::new(inputs) {
        let entry = entry?;
        if let Some(p) = pending.take() {
            let same_key = p.table == entry.table && p.key == entry.key;
            f(p, same_key.then_some(&entry))?;
        }
        pending = Some(entry);
    }
    match pending {
        Some(p) => f(p, None),
        None => Ok(()),
    }
}

/// Merges `inputs` (sorted by txid, each starting right after the previous
/// one ends) into `out`, which must have been created for their union, and
/// finishes it. Panics if the inputs are not adjacent or `out` has another
/// range: the caller picks the runs.
pub(crate) fn merge(
    inputs: &[&Run],
    mut out: RunWriter,
    mut keep: impl FnMut(&VersionEntry, Option<&VersionEntry>) -> bool,
) -> Result<RunSummary> {
    let (first, last) = match (inputs.first(), inputs.last()) {
        (Some(first), Some(last)) => (first.summary(), last.summary()),
        _ => panic!("merge needs at least one input"),
    };
    assert!(
        inputs
            .windows(2)
            .all(|w| w[0].summary().last_txid.next() == w[1].summary().first_txid),
        "merged runs are adjacent and in txid order"
    );
    assert_eq!(
        out.range(),
        RunRange {
            first_txid: first.first_txid,
            last_txid: last.last_txid,
            first_commit_time: first.first_commit_time,
        },
        "the output covers exactly the inputs"
    );
    let mut dropped = Dropped::default();
    for_each_with_next(inputs, |entry, next| {
        emit(&mut out, &mut keep, &mut dropped, entry, next)
    })?;
    dropped.sort();
    let mut at = 0;
    for run in inputs {
        for tx in run.tx_iter() {
            let mut tx = tx?;
            // The dropped versions of this txid: the next stretch of the
            // sorted list, as tx records come in txid order.
            while at < dropped.len() && dropped.txid(at) < tx.txid {
                at += 1;
            }
            let mut end = at;
            while end < dropped.len() && dropped.txid(end) == tx.txid {
                end += 1;
            }
            if end > at {
                tx.changes
                    .retain(|c| !dropped.contains(at..end, c.table, &c.key));
            }
            at = end;
            out.add_tx(&tx)?;
        }
    }
    out.finish()
}

/// Dropped versions' `(txid, table, key)`: fixed-size entries over one
/// buffer of key bytes.
#[derive(Default)]
struct Dropped {
    entries: Vec<(TxId, TableId, usize, u32)>,
    keys: Vec<u8>,
}

impl Dropped {
    fn push(&mut self, txid: TxId, table: TableId, key: &[u8]) {
        let start = self.keys.len();
        self.keys.extend_from_slice(key);
        // Keys are at most KEY_SIZE_MAX.
        let len = u32::try_from(key.len()).expect("keys fit u32");
        self.entries.push((txid, table, start, len));
    }

    fn txid(&self, i: usize) -> TxId {
        self.entries[i].0
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Sorts by `(txid, table, key)`.
    fn sort(&mut self) {
        let keys = &self.keys;
        self.entries.sort_unstable_by(|a, b| {
            let key = |e: &(TxId, TableId, usize, u32)| &keys[e.2..e.2 + e.3 as usize];
            (a.0, a.1, key(a)).cmp(&(b.0, b.1, key(b)))
        });
    }

    /// Whether `(table, key)` is among the sorted entries `range` (all of
    /// one txid).
    fn contains(&self, range: std::ops::Range<usize>, table: TableId, key: &[u8]) -> bool {
        self.entries[range]
            .binary_search_by(|e| {
                let k = &self.keys[e.2..e.2 + e.3 as usize];
                (e.1, k).cmp(&(table, key))
            })
            .is_ok()
    }
}

fn emit(
    out: &mut RunWriter,
    keep: &mut impl FnMut(&VersionEntry, Option<&VersionEntry>) -> bool,
    dropped: &mut Dropped,
    entry: VersionEntry,
    next_of_same_key: Option<&VersionEntry>,
) -> Result<()> {
    if keep(&entry, next_of_same_key) {
        out.add_version(&entry)
    } else {
        dropped.push(entry.txid, entry.table, &entry.key);
        Ok(())
    }
}
