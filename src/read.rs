//! Read-only views: `Snapshot` (latest, as of a txid or a time) and its
//! range iterator.
//!
//! Invariant: a view holds a txid and nothing else; it sees exactly the
//! versions with `txid <= view.txid`. The index lock is held only while
//! copying locations out of the index, never across file I/O.

use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use crate::Metadata;
use crate::engine::{Located, Shared};
use crate::error::{Error, Result};
use crate::index::chain::{VersionRef, visible_at, visible_position};
use crate::index::{Index, SYSTEM_TABLE, TxInfo};
use crate::log::frame::decode_meta;
use crate::log::value_cache::ValueBytes;
use crate::pins::PinSlot;
use crate::record::{HistoryQuery, Version, Window};
use crate::runs::{MetaRef, VersionEntry};
use crate::sealed::RunSet;
use crate::types::{Op, TableId, TxId};

/// A version a read found: in the tail (its value still in the log) or in
/// a run (its value read and checked already).
pub(crate) enum Found {
    Tail(Located<VersionRef>),
    Sealed(VersionEntry),
}

impl Found {
    pub(crate) fn txid(&self) -> TxId {
        match self {
            Found::Tail(at) => at.item.txid(),
            Found::Sealed(e) => e.txid,
        }
    }

    fn is_live(&self) -> bool {
        match self {
            Found::Tail(at) => at.item.is_live(),
            Found::Sealed(e) => e.op != Op::Delete,
        }
    }

    /// The value (`None` for a delete).
    pub(crate) fn read(&self, shared: &Shared) -> Result<Option<Vec<u8>>> {
        match self {
            Found::Tail(at) => shared.read_value(at),
            Found::Sealed(e) => Ok(e.value.clone()),
        }
    }

    /// The value, moved out where it is owned already.
    fn into_value(self, shared: &Shared) -> Result<Option<Vec<u8>>> {
        match self {
            Found::Tail(at) => shared.read_value(&at),
            Found::Sealed(e) => Ok(e.value),
        }
    }
}

/// What a read needs of the runs, taken under the same index lock as the
/// tail it complements.
struct SealedPart {
    runs: Arc<RunSet>,
    table: TableId,
}

/// The runs behind `table` in `index`, if any (the system table is never
/// read from runs).
fn sealed_part(index: &Index, table: &str) -> Option<SealedPart> {
    if table == SYSTEM_TABLE {
        return None;
    }
    Some(SealedPart {
        runs: Arc::clone(index.runs()?),
        table: index.table_id(table)?,
    })
}

/// Whether a version from a run is hidden by an erasure of its key.
fn erased_entry(erased: Option<TxId>, txid: TxId) -> bool {
    erased.is_some_and(|at| txid < at)
}

/// The metadata of a version from a run.
fn sealed_meta(runs: &RunSet, meta: &MetaRef, txid: TxId) -> Result<Metadata> {
    let bytes = match meta {
        MetaRef::None => return Ok(Metadata::new()),
        MetaRef::Inline(bytes) => bytes.clone(),
        MetaRef::InTx => match runs.tx(txid)? {
            Some((tx, _)) => tx.meta,
            None => {
                return Err(Error::corrupt(
                    std::path::Path::new(""),
                    0,
                    format!("no run holds the record of txid {txid}"),
                ));
            }
        },
    };
    decode_meta(&bytes).map_err(|reason| Error::corrupt(std::path::Path::new(""), 0, reason))
}

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
    pin: PinSlot,
}

impl Snapshot {
    /// A view at `txid`, pinning it; refused below the purge horizon.
    pub(crate) fn new(shared: Arc<Shared>, txid: TxId) -> Result<Snapshot> {
        let pin = shared.pins.pin(txid)?;
        Ok(Snapshot { shared, txid, pin })
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
            Some(found) => found.into_value(&self.shared),
            None => Ok(None),
        }
    }

    /// Like [`get`](Self::get), but a large value is shared with the value
    /// cache instead of copied (see `Shared::read_value_bytes`).
    pub(crate) fn get_bytes(&self, table: &str, key: &[u8]) -> Result<Option<ValueBytes>> {
        match self.visible(table, key)? {
            Some(Found::Tail(at)) => self.shared.read_value_bytes(&at),
            Some(Found::Sealed(e)) => Ok(e.value.map(ValueBytes::Read)),
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
            Some(Found::Tail(at)) => self.shared.with_value(&at, f),
            Some(Found::Sealed(e)) => Ok(e.value.as_deref().map(f)),
            None => Ok(None),
        }
    }

    /// Whether `key` has a live value at this txid (no value read).
    /// Fails like `get` below the table's retention horizon.
    pub fn contains(&self, table: &str, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self
            .visible(table, key.as_ref())?
            .is_some_and(|found| found.is_live()))
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
        let (sealed, tail_first, erased) = {
            let index = self.shared.read_index();
            let Some(t) = index.readable_table_at(table, self.txid)? else {
                return Ok(None);
            };
            let chain = t.keys.get(key);
            let found = chain.and_then(|chain| {
                let i = visible_position(chain, self.txid)?;
                let end = chain
                    .get(i + 1)
                    .map(|v| v.txid())
                    .filter(|t| *t <= self.txid);
                Some((chain[i], end))
            });
            if let Some((v, end)) = found {
                let found = self.locate_version(&index, v, end)?;
                drop(index);
                return self.load_version(&found).map(Some);
            }
            let Some(sealed) = sealed_part(&index, table) else {
                return Ok(None);
            };
            let tail_first = chain
                .and_then(|c| c.first())
                .map(|v| v.txid())
                .filter(|t| *t <= self.txid);
            (sealed, tail_first, index.erased_at(table, key))
        };
        let Some(e) = sealed.runs.get_at(sealed.table, key, self.txid)? else {
            return Ok(None);
        };
        if erased_entry(erased, e.txid) {
            return Ok(None);
        }
        let end_txid = match sealed
            .runs
            .successor(sealed.table, key, e.txid, self.txid)?
        {
            Some(t) => Some(t),
            None => tail_first,
        };
        Ok(Some(Version {
            txid: e.txid,
            end_txid,
            op: e.op,
            commit_time: e.commit_time,
            meta: sealed_meta(&sealed.runs, &e.meta, e.txid)?,
            value: e.value,
        }))
    }

    /// The version of `key` visible here, with its file handle.
    fn visible(&self, table: &str, key: &[u8]) -> Result<Option<Found>> {
        let (sealed, erased) = {
            let index = self.shared.read_index();
            let Some(t) = index.readable_table_at(table, self.txid)? else {
                return Ok(None);
            };
            if let Some(v) = t
                .keys
                .get(key)
                .and_then(|chain| visible_at(chain, self.txid))
            {
                return Ok(Some(Found::Tail(self.shared.locate(
                    &index,
                    v.segment(),
                    *v,
                )?)));
            }
            // Not in the tail: the runs that went with this tail, read
            // after the lock is released.
            let Some(sealed) = sealed_part(&index, table) else {
                return Ok(None);
            };
            (sealed, index.erased_at(table, key))
        };
        Ok(sealed
            .runs
            .get_at(sealed.table, key, self.txid)?
            .filter(|e| !erased_entry(erased, e.txid))
            .map(Found::Sealed))
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
            scan.fill(self, true, false, &mut batch)?;
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
        let (tail, sealed, erased, horizon) = {
            let index = self.shared.read_index();
            let Some(t) = index.readable_table_at(table, self.txid)? else {
                return Ok(Vec::new());
            };
            let chain = t.keys.get(key).map_or(&[][..], |c| &c[..]);
            let upto = visible_position(chain, self.txid).map_or(0, |i| i + 1);
            let sealed = sealed_part(&index, table);
            if sealed.is_none() {
                if chain.is_empty() {
                    return Ok(Vec::new());
                }
                // The whole history is in the tail: locate only what the
                // query selects.
                let txids: Vec<TxId> = chain[..upto].iter().map(|v| v.txid()).collect();
                let mut selected = Vec::new();
                for (i, end_txid) in select_positions(&txids, &query, self.txid) {
                    selected.push(self.locate_version(&index, chain[i], end_txid)?);
                }
                drop(index);
                return selected.iter().map(|f| self.load_version(f)).collect();
            }
            let mut tail = Vec::with_capacity(upto);
            for v in &chain[..upto] {
                tail.push(self.locate_version(&index, *v, None)?);
            }
            let horizon = index.horizon().max(t.horizon);
            (tail, sealed, index.erased_at(table, key), horizon)
        };
        let Some(sealed) = sealed else {
            return Ok(Vec::new());
        };
        // The runs' versions (oldest first, all before the tail's), minus
        // what an erasure removed, built as the result's records at once;
        // metadata is resolved later, for the versions selected.
        let mut versions: Vec<Version> = Vec::new();
        let mut metas: Vec<(usize, MetaRef)> = Vec::new();
        sealed
            .runs
            .versions_upto(sealed.table, key, self.txid, |v| {
                if erased_entry(erased, v.txid) {
                    return;
                }
                if versions.capacity() == 0 {
                    // Room for a typical history at once, not five doublings.
                    versions.reserve(64 + tail.len());
                }
                if !matches!(v.meta, MetaRef::None) {
                    metas.push((versions.len(), v.meta));
                }
                versions.push(Version {
                    txid: v.txid,
                    end_txid: None,
                    op: v.op,
                    value: v.value.map(<[u8]>::to_vec),
                    commit_time: v.commit_time,
                    meta: Metadata::new(),
                });
            })?;
        let n_sealed = versions.len();
        let all: Vec<TxId> = versions
            .iter()
            .map(|v| v.txid)
            .chain(tail.iter().map(|f| f.value.item.txid()))
            .collect();
        // A version superseded at or before the horizon was purged: with
        // txids ascending, a prefix (of run versions only: the tail never
        // holds one).
        let purged = all
            .get(1..)
            .map_or(0, |next| next.partition_point(|&t| t <= horizon));
        // The query selects a contiguous range of the rest, oldest or
        // newest first.
        let range = selected_range(&all[purged..], &query, self.txid);
        let (from, to) = (purged + range.start, purged + range.end);
        // The selected run versions, moved out of `versions` in place.
        versions.truncate(to.min(n_sealed));
        versions.drain(..from.min(n_sealed));
        let first = from.min(n_sealed);
        for (i, v) in (first..).zip(versions.iter_mut()) {
            v.end_txid = all.get(i + 1).copied();
        }
        for (i, meta) in metas {
            if (first..first + versions.len()).contains(&i) {
                let v = &mut versions[i - first];
                v.meta = sealed_meta(&sealed.runs, &meta, v.txid)?;
            }
        }
        for i in from.max(n_sealed)..to {
            let mut v = self.load_version(&tail[i - n_sealed])?;
            v.end_txid = all.get(i + 1).copied();
            versions.push(v);
        }
        if query.newest_first {
            versions.reverse();
        }
        Ok(versions)
    }
}

/// The positions of `txids` (the versions a view at `view` sees, oldest
/// first) a history query selects, in the order it asks for, each with the
/// txid its version ends at (the next one's, if the view sees it).
fn select_positions(
    txids: &[TxId],
    query: &HistoryQuery,
    view: TxId,
) -> Vec<(usize, Option<TxId>)> {
    let range = selected_range(txids, query, view);
    let pick = |i: usize| (i, txids.get(i + 1).copied());
    if query.newest_first {
        range.rev().map(pick).collect()
    } else {
        range.map(pick).collect()
    }
}

/// The positions of `txids` a history query selects, ascending: its
/// window, cut to its limit at the oldest end, or at the newest with
/// `newest_first` (which then lists them backwards).
fn selected_range(txids: &[TxId], query: &HistoryQuery, view: TxId) -> std::ops::Range<usize> {
    let (start, end) = window_positions(txids, query, view);
    let n = (end - start).min(query.limit.unwrap_or(usize::MAX));
    if query.newest_first {
        end - n..end
    } else {
        start..start + n
    }
}

/// The positions `start..end` of `chain` (the versions a view at `view`
/// sees) that a history query's txid window selects; the window ends at
/// the view.
fn window_positions(chain: &[TxId], query: &HistoryQuery, view: TxId) -> (usize, usize) {
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
    let end = chain.partition_point(|t| *t <= high);
    let start = match query.window {
        Window::WrittenIn => chain.partition_point(|t| *t < low),
        // Also the version current at `low`: the last one written at or
        // before it (its validity runs into the window).
        Window::ValidIn => chain.partition_point(|t| *t <= low).saturating_sub(1),
    };
    (start, end.max(start))
}

/// The smallest byte string greater than every string starting with
/// `prefix`, or `None` if there is none (all bytes 0xff).
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

    /// Takes up to one batch of visible live entries, from the front
    /// (`forward`) or the back, and narrows the range past every key
    /// decided. The tail's part is located under one index lock, which
    /// also yields the runs that go with it; the runs are read after it is
    /// released, only up to where the tail's batch ended, and a key the
    /// tail has a version of at the view (a delete too) is the tail's.
    /// Without `locate`, entries of the tail carry no location (counting).
    fn fill(
        &mut self,
        view: &Snapshot,
        forward: bool,
        locate: bool,
        out: &mut VecDeque<Entry>,
    ) -> Result<()> {
        let (tail, tail_end, sealed) = {
            let index = view.shared.read_index();
            let Some(table) = index.readable_table_at(&self.table, view.txid)? else {
                self.done = true;
                return Ok(());
            };
            let sealed = sealed_part(&index, &self.table);
            let bounds = (as_slice_bound(&self.lower), as_slice_bound(&self.upper));
            let mut range = table.keys.range::<[u8], _>(bounds);
            // `None`: a visible delete, which hides the runs' versions.
            let mut tail: Vec<(Vec<u8>, Option<Option<Found>>)> = Vec::new();
            let mut last_key: Option<&[u8]> = None;
            let mut exhausted = false;
            let mut looked = 0;
            let mut taken = 0;
            loop {
                let next = if forward {
                    range.next()
                } else {
                    range.next_back()
                };
                let Some((key, chain)) = next else {
                    exhausted = true;
                    break;
                };
                last_key = Some(key);
                looked += 1;
                if let Some(v) = visible_at(chain, view.txid) {
                    if v.is_live() {
                        let at = if locate {
                            Some(Found::Tail(view.shared.locate(&index, v.segment(), *v)?))
                        } else {
                            None
                        };
                        tail.push((key.to_vec(), Some(at)));
                        taken += 1;
                    } else if sealed.is_some() {
                        // A delete: it hides the runs' versions of the key.
                        tail.push((key.to_vec(), None));
                    }
                }
                if taken == SCAN_BATCH || looked == SCAN_LOOKS_MAX {
                    break;
                }
            }
            let tail_end = (!exhausted).then(|| last_key.map(<[u8]>::to_vec)).flatten();
            let sealed = sealed.map(|s| {
                let erased = index.erased_in(&self.table);
                (s, erased)
            });
            (tail, tail_end, sealed)
        };
        let Some((sealed, erased)) = sealed else {
            for (key, at) in tail {
                if let Some(at) = at {
                    out.push_back(Entry { key, at });
                }
            }
            self.narrow(forward, tail_end);
            return Ok(());
        };
        let limit = tail_end.as_deref().map(Bound::Included);
        let (lower, upper) = match (forward, limit) {
            (true, Some(l)) => (as_slice_bound(&self.lower), l),
            (false, Some(l)) => (l, as_slice_bound(&self.upper)),
            (_, None) => (as_slice_bound(&self.lower), as_slice_bound(&self.upper)),
        };
        let (runs_entries, runs_end) = sealed.runs.scan(
            sealed.table,
            lower,
            upper,
            view.txid,
            forward,
            SCAN_LOOKS_MAX,
        )?;
        // Every source is decided up to the nearer of the two ends.
        let end = match (tail_end, runs_end) {
            (None, e) | (e, None) => e,
            (Some(a), Some(b)) => Some(if (a <= b) == forward { a } else { b }),
        };
        let before_end = |key: &[u8]| match &end {
            None => true,
            Some(e) => (forward && key <= e.as_slice()) || (!forward && key >= e.as_slice()),
        };
        let mut tail = tail.into_iter().filter(|(k, _)| before_end(k)).peekable();
        let mut runs = runs_entries
            .into_iter()
            .filter(|e| before_end(&e.key))
            .peekable();
        loop {
            let order = match (tail.peek(), runs.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((t, _)), Some(r)) => {
                    let o = t.as_slice().cmp(r.key.as_slice());
                    if forward { o } else { o.reverse() }
                }
            };
            match order {
                std::cmp::Ordering::Greater => {
                    let Some(e) = runs.next() else { break };
                    let hidden = erased.get(e.key.as_slice()).is_some_and(|at| e.txid < *at);
                    if e.op != Op::Delete && !hidden {
                        let key = e.key.clone();
                        out.push_back(Entry {
                            key,
                            at: Some(Found::Sealed(e)),
                        });
                    }
                }
                o => {
                    if o == std::cmp::Ordering::Equal {
                        runs.next();
                    }
                    let Some((key, at)) = tail.next() else { break };
                    if let Some(at) = at {
                        out.push_back(Entry { key, at });
                    }
                }
            }
        }
        self.narrow(forward, end);
        Ok(())
    }

    /// Moves the front (`forward`) or back of the range past `end`, the
    /// last key decided; `None`: everything is.
    fn narrow(&mut self, forward: bool, end: Option<Vec<u8>>) {
        match end {
            None => self.done = true,
            Some(key) if forward => self.lower = Bound::Excluded(key),
            Some(key) => self.upper = Bound::Excluded(key),
        }
    }
}

/// A key whose version differs between two views, with each side's.
pub(crate) type ChangedKey = (Vec<u8>, Option<Found>, Option<Found>);

/// The keys of `table` whose live versions differ between the views
/// `a` and `b` (both readable), in key order, with each side's version:
/// for a database with runs, where the index alone cannot say.
pub(crate) fn changed_keys(a: &Snapshot, b: &Snapshot, table: &str) -> Result<Vec<ChangedKey>> {
    let mut ca = Cursor::new(table, Bound::Unbounded, Bound::Unbounded);
    let mut cb = Cursor::new(table, Bound::Unbounded, Bound::Unbounded);
    let (mut qa, mut qb) = (VecDeque::new(), VecDeque::new());
    let mut out = Vec::new();
    loop {
        while qa.is_empty() && !ca.done {
            ca.fill(a, true, true, &mut qa)?;
        }
        while qb.is_empty() && !cb.done {
            cb.fill(b, true, true, &mut qb)?;
        }
        let order = match (qa.front(), qb.front()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.key.cmp(&y.key),
        };
        match order {
            std::cmp::Ordering::Less => {
                let Some(x) = qa.pop_front() else { break };
                out.push((x.key, x.at, None));
            }
            std::cmp::Ordering::Greater => {
                let Some(y) = qb.pop_front() else { break };
                out.push((y.key, None, y.at));
            }
            std::cmp::Ordering::Equal => {
                let (Some(x), Some(y)) = (qa.pop_front(), qb.pop_front()) else {
                    break;
                };
                let same = match (&x.at, &y.at) {
                    (Some(p), Some(q)) => p.txid() == q.txid(),
                    _ => false,
                };
                if !same {
                    out.push((x.key, x.at, y.at));
                }
            }
        }
    }
    Ok(out)
}

/// One entry of a range batch: its key and its live version (no version
/// when only counting).
struct Entry {
    key: Vec<u8>,
    at: Option<Found>,
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
        let value = entry
            .at
            .expect("range batches are located")
            .into_value(&self.view.shared)?
            .expect("range batches hold live versions only");
        Ok((entry.key, value))
    }

    /// Refills the front (`forward`) or back buffer.
    fn refill(&mut self, forward: bool) -> Result<()> {
        let out = if forward {
            &mut self.front
        } else {
            &mut self.back
        };
        self.cursor.fill(&self.view, forward, true, out)
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
        self.shared.pins.pin_again(self.pin, self.txid);
        Snapshot {
            shared: Arc::clone(&self.shared),
            txid: self.txid,
            pin: self.pin,
        }
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.shared.pins.unpin(self.pin, self.txid);
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
