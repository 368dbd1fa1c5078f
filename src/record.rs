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
    /// Every change, in table-name then key order.
    pub changes: Vec<Change>,
}

/// Which versions [`Snapshot::history`](crate::Snapshot::history) returns.
///
/// The txid window is applied to the index before any value is read, and
/// `limit` pages through long chains: ask again with a window starting after
/// the last txid returned.
///
/// ```
/// use timecask::{HistoryQuery, TxId};
/// let newest_ten_since_100 = HistoryQuery::all().txids(TxId(100)..).newest_first().limit(10);
/// # let _ = newest_ten_since_100;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    pub(crate) start: Bound<TxId>,
    pub(crate) end: Bound<TxId>,
    pub(crate) newest_first: bool,
    pub(crate) limit: Option<usize>,
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
            newest_first: false,
            limit: None,
        }
    }

    /// Only versions whose txid lies in `txids`.
    pub fn txids(mut self, txids: impl RangeBounds<TxId>) -> HistoryQuery {
        self.start = txids.start_bound().cloned();
        self.end = txids.end_bound().cloned();
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
