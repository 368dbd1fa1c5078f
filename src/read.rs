//! Read-only views: `Snapshot` (latest, as of a txid or a time) and its
//! range iterator.
//!
//! Invariant: a view holds a txid and nothing else; it sees exactly the
//! versions with `txid <= view.txid`. The index lock is held only while
//! copying locations out of the index, never across file I/O.

use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use crate::db::{Located, Shared};
use crate::error::{Error, Result};
use crate::index::chain::{VersionRef, visible_at, visible_position};
use crate::index::{Index, TxInfo};
use crate::log::value_cache::ValueBytes;
use crate::record::{HistoryQuery, Version, Window};
use crate::types::TxId;

/// Entries copied out of the index per lock acquisition during a scan.
const SCAN_BATCH: usize = 256;
/// Keys looked at per lock acquisition, visible or not, so a scan over
/// mostly-deleted keys still releases the lock regularly.
const SCAN_LOOKS_MAX: usize = 4 * SCAN_BATCH;

/// A read-only view of the database as of one txid.
///
/// A snapshot never changes while held. It keeps the database open.
///
/// ```
/// # fn main() -> Result<(), timecask::Error> {
/// let dir = tempfile::tempdir().unwrap();
/// let db = timecask::Db::open(dir.path())?;
/// let mut tx = db.begin();
/// tx.put("t", b"a", b"1")?;
/// tx.put("t", b"b", b"2")?;
/// tx.commit()?;
/// let view = db.snapshot();
/// let keys: Vec<Vec<u8>> = view.iter("t")?.map(|kv| kv.map(|(k, _)| k)).collect::<Result<_, _>>()?;
/// assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
/// # Ok(()) }
/// ```
pub struct Snapshot {
    shared: Arc<Shared>,
    txid: TxId,
}

impl Snapshot {
    /// A view at `txid`, pinning it; refused below the purge horizon.
    pub(crate) fn new(shared: Arc<Shared>, txid: TxId) -> Result<Snapshot> {
        shared.pins.pin(txid)?;
        Ok(Snapshot { shared, txid })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The txid this view is as of.
    pub fn txid(&self) -> TxId {
        self.txid
    }

    /// The value of `key` in `table`, or `None` if it has none at this txid.
    pub fn get(&self, table: &str, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        match self.visible(table, key.as_ref())? {
            Some(at) => self.shared.read_value(&at),
            None => Ok(None),
        }
    }

    /// Like [`get`](Self::get), but a large value is shared with the value
    /// cache instead of copied (see `Shared::read_value_bytes`).
    pub(crate) fn get_bytes(&self, table: &str, key: &[u8]) -> Result<Option<ValueBytes>> {
        match self.visible(table, key)? {
            Some(at) => self.shared.read_value_bytes(&at),
            None => Ok(None),
        }
    }

    /// Calls `f` with the bytes of `key`'s value at this txid (see
    /// `Shared::with_value`); `None` if it is not live.
    pub(crate) fn get_with<R>(
        &self,
        table: &str,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>> {
        match self.visible(table, key)? {
            Some(at) => self.shared.with_value(&at, f),
            None => Ok(None),
        }
    }

    /// Whether `key` has a live value at this txid (no value read).
    /// Fails like `get` below the table's retention horizon.
    pub fn contains(&self, table: &str, key: impl AsRef<[u8]>) -> Result<bool> {
        let index = self.shared.read_index();
        Ok(index
            .readable_table_at(table, self.txid)?
            .and_then(|t| t.keys.get(key.as_ref()))
            .and_then(|chain| visible_at(chain, self.txid))
            .is_some_and(|v| v.is_live()))
    }

    /// The version of `key` visible at this txid, including a delete (whose
    /// `value` is `None`); `None` if the key never existed up to here.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// let mut tx = db.begin();
    /// tx.put("t", b"k", b"v")?;
    /// let t1 = tx.commit()?.unwrap();
    /// let version = db.snapshot().get_version("t", b"k")?.unwrap();
    /// assert_eq!((version.txid, version.op), (t1, timecask::Op::Insert));
    /// # Ok(()) }
    /// ```
    pub fn get_version(&self, table: &str, key: impl AsRef<[u8]>) -> Result<Option<Version>> {
        let key = key.as_ref();
        let found = {
            let index = self.shared.read_index();
            let found = index
                .readable_table_at(table, self.txid)?
                .and_then(|t| t.keys.get(key))
                .and_then(|chain| {
                    let i = visible_position(chain, self.txid)?;
                    let end = chain
                        .get(i + 1)
                        .map(|v| v.txid())
                        .filter(|t| *t <= self.txid);
                    Some((chain[i], end))
                });
            match found {
                Some((v, end)) => Some(self.locate_version(&index, v, end)?),
                None => None,
            }
        };
        found.map(|found| self.load_version(&found)).transpose()
    }

    /// The version of `key` visible here, with its file handle.
    fn visible(&self, table: &str, key: &[u8]) -> Result<Option<Located<VersionRef>>> {
        let index = self.shared.read_index();
        let Some(v) = index
            .readable_table_at(table, self.txid)?
            .and_then(|t| t.keys.get(key))
            .and_then(|chain| visible_at(chain, self.txid))
        else {
            return Ok(None);
        };
        Ok(Some(self.shared.locate(&index, v.segment(), *v)?))
    }

    /// Everything needed to load a version, taken under one index lock.
    fn locate_version(
        &self,
        index: &Index,
        v: VersionRef,
        end_txid: Option<TxId>,
    ) -> Result<FoundVersion> {
        let info = *index.tx(v.txid()).ok_or_else(|| {
            Error::corrupt(
                self.shared.files.path(v.segment()),
                u64::from(v.offset()),
                "version names a txid with no frame",
            )
        })?;
        Ok(FoundVersion {
            value: self.shared.locate(index, v.segment(), v)?,
            info: self.shared.locate(index, info.segment, info)?,
            end_txid,
        })
    }

    fn load_version(&self, found: &FoundVersion) -> Result<Version> {
        let (v, info) = (&found.value.item, &found.info.item);
        Ok(Version {
            txid: v.txid(),
            end_txid: found.end_txid,
            op: v.op(),
            value: self.shared.read_value(&found.value)?,
            commit_time: info.commit_time,
            meta: self.shared.read_meta(&found.info)?,
        })
    }

    /// Key–value pairs of `table` with keys in `range`, in key order; call
    /// `.rev()` for reverse order.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// # let mut tx = db.begin();
    /// # for k in ["a", "b", "c"] { tx.put("t", k, k)?; }
    /// # tx.commit()?;
    /// let view = db.snapshot();
    /// let keys: Vec<_> = view.range("t", "b"..)?.rev().map(|kv| kv.unwrap().0).collect();
    /// assert_eq!(keys, vec![b"c".to_vec(), b"b".to_vec()]);
    /// # Ok(()) }
    /// ```
    pub fn range<K: AsRef<[u8]>>(
        &self,
        table: &str,
        range: impl RangeBounds<K>,
    ) -> Result<RangeIter> {
        let own = |b: Bound<&K>| match b {
            Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
            Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        Ok(RangeIter::new(
            self.clone(),
            table,
            own(range.start_bound()),
            own(range.end_bound()),
        ))
    }

    /// Every key–value pair of `table`, in key order.
    pub fn iter(&self, table: &str) -> Result<RangeIter> {
        Ok(RangeIter::new(
            self.clone(),
            table,
            Bound::Unbounded,
            Bound::Unbounded,
        ))
    }

    /// Key–value pairs whose key starts with `prefix`, in key order.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// # let mut tx = db.begin();
    /// # for k in ["ab", "abc", "b"] { tx.put("t", k, k)?; }
    /// # tx.commit()?;
    /// assert_eq!(db.snapshot().prefix("t", "ab")?.count(), 2);
    /// # Ok(()) }
    /// ```
    pub fn prefix(&self, table: &str, prefix: impl AsRef<[u8]>) -> Result<RangeIter> {
        let prefix = prefix.as_ref();
        let end = prefix_successor(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        Ok(RangeIter::new(
            self.clone(),
            table,
            Bound::Included(prefix.to_vec()),
            end,
        ))
    }

    /// Number of live keys in `table` at this txid.
    pub fn count(&self, table: &str) -> Result<u64> {
        let mut scan = Cursor::new(table, Bound::Unbounded, Bound::Unbounded);
        let mut n = 0;
        let mut batch = VecDeque::new();
        while !scan.done {
            scan.fill(self, true, &mut batch, |_, _, _| Ok(()))?;
            n += batch.len() as u64;
            batch.clear();
        }
        Ok(n)
    }

    /// Names of the tables that exist at this txid, in name order.
    pub fn tables(&self) -> Vec<String> {
        self.shared.read_index().table_names_at(self.txid)
    }

    /// The versions of `key` up to this view's txid, as selected by `query`.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = timecask::Db::open(dir.path())?;
    /// for v in ["Alice", "Bob"] {
    ///     let mut tx = db.begin();
    ///     tx.put("user", b"1", v)?;
    ///     tx.commit()?;
    /// }
    /// let history = db.snapshot().history("user", b"1", timecask::HistoryQuery::all())?;
    /// let ops: Vec<_> = history.iter().map(|v| (v.txid.0, v.op, v.end_txid.map(|t| t.0))).collect();
    /// assert_eq!(ops, vec![(1, timecask::Op::Insert, Some(2)), (2, timecask::Op::Update, None)]);
    /// # Ok(()) }
    /// ```
    pub fn history(
        &self,
        table: &str,
        key: impl AsRef<[u8]>,
        query: HistoryQuery,
    ) -> Result<Vec<Version>> {
        let key = key.as_ref();
        let selected = {
            let index = self.shared.read_index();
            let Some(chain) = index
                .readable_table_at(table, self.txid)?
                .and_then(|t| t.keys.get(key))
            else {
                return Ok(Vec::new());
            };
            let upto = visible_position(chain, self.txid).map_or(0, |i| i + 1);
            let (start, end) = window_positions(&chain[..upto], &query, self.txid);
            let positions: Box<dyn Iterator<Item = usize>> = if query.newest_first {
                Box::new((start..end.max(start)).rev())
            } else {
                Box::new(start..end.max(start))
            };
            let mut selected = Vec::new();
            for i in positions.take(query.limit.unwrap_or(usize::MAX)) {
                let end_txid = (i + 1 < upto).then(|| chain[i + 1].txid());
                selected.push(self.locate_version(&index, chain[i], end_txid)?);
            }
            selected
        };
        selected
            .iter()
            .map(|found| self.load_version(found))
            .collect()
    }
}

/// The smallest byte string greater than every string starting with
/// `prefix`, or `None` if there is none (all bytes 0xff).
/// The positions `start..end` of `chain` (the versions a view at `view`
/// sees) that a history query's txid window selects; the window ends at
/// the view.
fn window_positions(chain: &[VersionRef], query: &HistoryQuery, view: TxId) -> (usize, usize) {
    // The window as an inclusive range of txids [low, high].
    let low = match query.start {
        Bound::Included(t) => Some(t),
        Bound::Excluded(t) => t.0.checked_add(1).map(TxId),
        Bound::Unbounded => Some(TxId::ZERO),
    };
    let high = match query.end {
        Bound::Included(t) => Some(t),
        Bound::Excluded(t) => t.0.checked_sub(1).map(TxId),
        Bound::Unbounded => Some(TxId(u64::MAX)),
    };
    let (Some(low), Some(high)) = (low, high.map(|h| h.min(view))) else {
        return (0, 0);
    };
    if low > high {
        return (0, 0);
    }
    // Versions written at or before `high`.
    let end = chain.partition_point(|v| v.txid() <= high);
    let start = match query.window {
        Window::WrittenIn => chain.partition_point(|v| v.txid() < low),
        // Also the version current at `low`: the last one written at or
        // before it (its validity runs into the window).
        Window::ValidIn => chain.partition_point(|v| v.txid() <= low).saturating_sub(1),
    };
    (start, end.max(start))
}

fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The unread part of a key range: both ends narrow as batches are taken
/// from either side, so forward and backward batches never overlap.
struct Cursor {
    table: String,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    done: bool,
}

impl Cursor {
    fn new(table: &str, lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>) -> Cursor {
        let empty = match (&lower, &upper) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
            | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
            _ => false,
        };
        Cursor {
            table: table.to_string(),
            lower,
            upper,
            done: empty,
        }
    }

    /// Copies up to one batch of visible live entries out of the index,
    /// from the front (`forward`) or the back, turning each into a `T`
    /// with `make` under the index lock, and narrows the range past every
    /// key looked at.
    fn fill<T>(
        &mut self,
        view: &Snapshot,
        forward: bool,
        out: &mut VecDeque<T>,
        mut make: impl FnMut(&Index, &[u8], &VersionRef) -> Result<T>,
    ) -> Result<()> {
        let index = view.shared.read_index();
        let Some(table) = index.readable_table_at(&self.table, view.txid)? else {
            self.done = true;
            return Ok(());
        };
        let bounds = (as_slice_bound(&self.lower), as_slice_bound(&self.upper));
        let mut range = table.keys.range::<[u8], _>(bounds);
        let mut last_key: Option<&[u8]> = None;
        let mut looked = 0;
        let mut taken = 0;
        loop {
            let next = if forward {
                range.next()
            } else {
                range.next_back()
            };
            let Some((key, chain)) = next else {
                self.done = true;
                break;
            };
            last_key = Some(key);
            looked += 1;
            if let Some(v) = visible_at(chain, view.txid).filter(|v| v.is_live()) {
                out.push_back(make(&index, key, v)?);
                taken += 1;
            }
            if taken == SCAN_BATCH || looked == SCAN_LOOKS_MAX {
                break;
            }
        }
        if let Some(key) = last_key {
            if forward {
                self.lower = Bound::Excluded(key.to_vec());
            } else {
                self.upper = Bound::Excluded(key.to_vec());
            }
        }
        Ok(())
    }
}

/// One entry of a range batch: its key and its located live version.
struct Entry {
    key: Vec<u8>,
    at: Located<VersionRef>,
}

fn as_slice_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Iterator over key–value pairs of one table at one txid, from
/// [`Snapshot::range`], [`Snapshot::prefix`] and [`Snapshot::iter`].
///
/// Double-ended: `.rev()` walks backwards. Copies locations out of the
/// index in batches, then reads each value with one positioned read.
pub struct RangeIter {
    view: Snapshot,
    cursor: Cursor,
    front: VecDeque<Entry>,
    back: VecDeque<Entry>,
}

impl RangeIter {
    fn new(view: Snapshot, table: &str, lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>) -> RangeIter {
        RangeIter {
            view,
            cursor: Cursor::new(table, lower, upper),
            front: VecDeque::new(),
            back: VecDeque::new(),
        }
    }

    fn load(&self, entry: Entry) -> Result<(Vec<u8>, Vec<u8>)> {
        let value = self
            .view
            .shared
            .read_value(&entry.at)?
            .expect("range batches hold live versions only");
        Ok((entry.key, value))
    }

    /// Refills the front (`forward`) or back buffer from the index.
    fn refill(&mut self, forward: bool) -> Result<()> {
        let shared = Arc::clone(&self.view.shared);
        let out = if forward {
            &mut self.front
        } else {
            &mut self.back
        };
        self.cursor.fill(&self.view, forward, out, |index, key, v| {
            Ok(Entry {
                key: key.to_vec(),
                at: shared.locate(index, v.segment(), *v)?,
            })
        })
    }
}

impl Iterator for RangeIter {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.front.is_empty() && !self.cursor.done {
            if let Err(e) = self.refill(true) {
                self.cursor.done = true;
                return Some(Err(e));
            }
        }
        let item = match self.front.pop_front() {
            Some(item) => item,
            None => self.back.pop_back()?,
        };
        Some(self.load(item))
    }
}

impl DoubleEndedIterator for RangeIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        while self.back.is_empty() && !self.cursor.done {
            if let Err(e) = self.refill(false) {
                self.cursor.done = true;
                return Some(Err(e));
            }
        }
        let item = match self.back.pop_front() {
            Some(item) => item,
            None => self.front.pop_back()?,
        };
        Some(self.load(item))
    }
}

impl Clone for Snapshot {
    fn clone(&self) -> Snapshot {
        self.shared.pins.pin_again(self.txid);
        Snapshot {
            shared: Arc::clone(&self.shared),
            txid: self.txid,
        }
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.shared.pins.unpin(self.txid);
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("txid", &self.txid)
            .finish_non_exhaustive()
    }
}

/// A version, the transaction that wrote it, and where the view says the
/// version ends, all located under one index lock.
struct FoundVersion {
    value: Located<VersionRef>,
    info: Located<TxInfo>,
    end_txid: Option<TxId>,
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn prefix_successor_cases() {
        let cases: [(&[u8], Option<&[u8]>); 5] = [
            (b"", None),
            (b"a", Some(b"b")),
            (b"a\xff", Some(b"b")),
            (b"\xff\xff", None),
            (b"ab", Some(b"ac")),
        ];
        for (prefix, want) in cases {
            assert_eq!(
                prefix_successor(prefix).as_deref(),
                want,
                "prefix {prefix:?}"
            );
        }
    }
}
