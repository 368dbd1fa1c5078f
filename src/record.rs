//! What reads return: versions, transactions, changes, history queries.

use std::ops::{Bound, RangeBounds};

use crate::Metadata;
use crate::types::{Op, Timestamp, TxId};

/// One version of a key, as returned by history and version lookups.
///
/// It is valid over `[txid, end_txid)`; `end_txid` is `None` while it is
/// the newest version visible to the view it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The transaction that wrote this version.
    pub txid: TxId,
    /// The transaction that wrote the next version, if the view sees one.
    pub end_txid: Option<TxId>,
    /// Insert, Update or Delete.
    pub op: Op,
    /// The value; `None` for a delete.
    pub value: Option<Vec<u8>>,
    /// When `txid` committed.
    pub commit_time: Timestamp,
    /// The metadata of `txid`.
    pub meta: Metadata,
}

/// One change made by a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The table.
    pub table: String,
    /// The key.
    pub key: Vec<u8>,
    /// What the change did.
    pub op: Op,
    /// The new value; `None` for a delete.
    pub value: Option<Vec<u8>>,
}

/// A committed transaction: when, who (metadata) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxRecord {
    /// Its txid.
    pub txid: TxId,
    /// When it committed.
    pub commit_time: Timestamp,
    /// Its metadata (`user`, `reason`, ...).
    pub meta: Metadata,
    /// Every change to the user's tables, in table-name then key order.
    pub changes: Vec<Change>,
    /// Maintenance it recorded: purges, erasures, retention policies set
    /// and applied, each a [`Change`] of the hidden table `__timecask` whose
    /// key names the kind (`purge`, `erase`, `retention`, `trim`) and
    /// whose value is as FORMAT.md "Maintenance records" describes. Empty for
    /// ordinary transactions.
    pub maintenance: Vec<Change>,
}

/// Which versions [`Snapshot::history`](crate::Snapshot::history) returns.
///
/// A txid window means what SQL:2011's `FOR SYSTEM_TIME FROM … TO …` means
/// (MariaDB, SQL Server): every version valid at some txid of the window,
/// including the one written before the window that was still current at
/// its start. [`HistoryQuery::written_in`] selects by the txid that wrote
/// a version instead. Either window is applied to the index before any
/// value is read.
///
/// `limit` pages through long chains. Oldest first, ask for the next page
/// with a window starting at the last version's `end_txid`
/// (`txids(end..)`); newest first, with one ending before the oldest
/// version returned (`txids(..txid)`).
///
/// ```
/// # fn main() -> Result<(), timecask::Error> {
/// use timecask::{HistoryQuery, TxId};
/// let dir = tempfile::tempdir().unwrap();
/// let db = timecask::Db::open(dir.path())?;
/// for v in ["a", "b", "c"] {
///     let mut tx = db.begin();
///     tx.put("t", b"k", v)?; // txids 1, 2, 3
///     tx.commit()?;
/// }
/// let txids = |q| -> Result<Vec<u64>, timecask::Error> {
///     Ok(db.snapshot().history("t", b"k", q)?.iter().map(|v| v.txid.0).collect())
/// };
/// // Valid somewhere in 2..=2: the version written by txid 2 only.
/// assert_eq!(txids(HistoryQuery::all().txids(TxId(2)..=TxId(2)))?, [2]);
/// // Paging, oldest first, one at a time.
/// let first = db.snapshot().history("t", b"k", HistoryQuery::all().limit(1))?;
/// let next = HistoryQuery::all().txids(first[0].end_txid.unwrap()..).limit(1);
/// assert_eq!(txids(next)?, [2]);
/// // Written in 2..: versions 2 and 3.
/// assert_eq!(txids(HistoryQuery::all().written_in(TxId(2)..))?, [2, 3]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    pub(crate) start: Bound<TxId>,
    pub(crate) end: Bound<TxId>,
    pub(crate) window: Window,
    pub(crate) newest_first: bool,
    pub(crate) limit: Option<usize>,
}

/// What a [`HistoryQuery`]'s txid window selects by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Window {
    /// Versions valid at some txid of the window.
    ValidIn,
    /// Versions whose own txid lies in the window.
    WrittenIn,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery::all()
    }
}

impl HistoryQuery {
    /// Every version, oldest first.
    pub fn all() -> HistoryQuery {
        HistoryQuery {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
            window: Window::ValidIn,
            newest_first: false,
            limit: None,
        }
    }

    /// Only versions valid at some txid in `txids` (a version is valid
    /// from its own txid up to, not including, the next version's): with
    /// versions at 2, 5, 9 and 12, `txids(TxId(6)..=TxId(8))` is the
    /// version from 5. The view's txid caps the window.
    pub fn txids(mut self, txids: impl RangeBounds<TxId>) -> HistoryQuery {
        self.start = txids.start_bound().cloned();
        self.end = txids.end_bound().cloned();
        self.window = Window::ValidIn;
        self
    }

    /// Only versions written by a transaction whose txid lies in `txids`.
    pub fn written_in(mut self, txids: impl RangeBounds<TxId>) -> HistoryQuery {
        self.start = txids.start_bound().cloned();
        self.end = txids.end_bound().cloned();
        self.window = Window::WrittenIn;
        self
    }

    /// Newest version first.
    pub fn newest_first(mut self) -> HistoryQuery {
        self.newest_first = true;
        self
    }

    /// At most `n` versions.
    pub fn limit(mut self, n: usize) -> HistoryQuery {
        self.limit = Some(n);
        self
    }
}

/// What [`Db::compact`](crate::Db::compact) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactReport {
    /// Sealed segments looked at.
    pub segments_scanned: usize,
    /// Segments rewritten (the others had nothing to drop).
    pub segments_rewritten: usize,
    /// Versions (and erased keys) physically removed.
    pub versions_dropped: u64,
    /// Size of the rewritten segments before.
    pub bytes_before: u64,
    /// Size of the rewritten segments after.
    pub bytes_after: u64,
}
