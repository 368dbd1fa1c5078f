//! [`TxRangeIter`]: a lazy range scan inside a write transaction, the
//! transaction's own writes merged over its snapshot's [`RangeIter`].

use std::cmp::Ordering;
use std::collections::VecDeque;

use crate::error::Result;
use crate::read::RangeIter;

/// A key and its value.
type Pair = (Vec<u8>, Vec<u8>);

/// Key–value pairs of one table and range as a write transaction sees
/// them, in key order, both directions. The snapshot side is read lazily
/// in batches; the transaction's writes in the range are copied when the
/// iterator is made (they are in memory already), so it borrows nothing.
pub(crate) struct TxRangeIter {
    snapshot: RangeIter,
    /// The transaction's writes in the range (`None`: a delete), in key
    /// order.
    pending: VecDeque<(Vec<u8>, Option<Vec<u8>>)>,
    /// A pair taken from the front of `snapshot`, not yet returned.
    front: Option<Pair>,
    /// A pair taken from the back of `snapshot`, not yet returned.
    back: Option<Pair>,
}

impl TxRangeIter {
    pub(crate) fn new(
        snapshot: RangeIter,
        pending: VecDeque<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> TxRangeIter {
        TxRangeIter {
            snapshot,
            pending,
            front: None,
            back: None,
        }
    }

    /// Fills `front` with the snapshot's next pair (or the one `back`
    /// holds, once the snapshot is used up from both ends).
    fn fill_front(&mut self) -> Result<()> {
        if self.front.is_none() {
            self.front = match self.snapshot.next() {
                Some(pair) => Some(pair?),
                None => self.back.take(),
            };
        }
        Ok(())
    }

    fn fill_back(&mut self) -> Result<()> {
        if self.back.is_none() {
            self.back = match self.snapshot.next_back() {
                Some(pair) => Some(pair?),
                None => self.front.take(),
            };
        }
        Ok(())
    }
}

impl Iterator for TxRangeIter {
    type Item = Result<Pair>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Err(e) = self.fill_front() {
                return Some(Err(e));
            }
            let order = match (&self.front, self.pending.front()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((k, _)), Some((p, _))) => k.as_slice().cmp(p),
            };
            if order == Ordering::Less {
                return self.front.take().map(Ok);
            }
            if order == Ordering::Equal {
                // The transaction's write replaces the snapshot's pair.
                self.front = None;
            }
            if let Some((key, Some(value))) = self.pending.pop_front() {
                return Some(Ok((key, value)));
            }
        }
    }
}

impl DoubleEndedIterator for TxRangeIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if let Err(e) = self.fill_back() {
                return Some(Err(e));
            }
            let order = match (&self.back, self.pending.back()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Greater,
                (None, Some(_)) => Ordering::Less,
                (Some((k, _)), Some((p, _))) => k.as_slice().cmp(p),
            };
            if order == Ordering::Greater {
                return self.back.take().map(Ok);
            }
            if order == Ordering::Equal {
                self.back = None;
            }
            if let Some((key, Some(value))) = self.pending.pop_back() {
                return Some(Ok((key, value)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::ops::Bound;

    use proptest::prelude::*;

    use crate::{Config, Db, Durability};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Walked from both ends in any order, the lazy range gives what
        /// the eager `WriteTx::range` gives.
        #[test]
        fn matches_the_eager_range(
            committed in prop::collection::btree_set(0u8..24, 0..16),
            writes in prop::collection::vec((0u8..24, any::<bool>()), 0..16),
            lo in 0u8..24,
            len in 0u8..24,
            directions in prop::collection::vec(any::<bool>(), 0..40),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = Config { durability: Durability::Buffered, ..Config::default() };
            let db = Db::open_with(dir.path(), config).expect("open");
            let mut tx = db.begin();
            for k in &committed {
                tx.put("t", [*k], [*k]).expect("put");
            }
            tx.commit().expect("commit");
            let mut tx = db.begin();
            for (k, put) in &writes {
                if *put {
                    tx.put("t", [*k], [*k, 1]).expect("put");
                } else {
                    tx.delete("t", [*k]).expect("delete");
                }
            }
            let (start, end) = (Bound::Included(vec![lo]), Bound::Excluded(vec![lo.saturating_add(len)]));
            let mut want: VecDeque<_> = tx.range("t", (start.clone(), end.clone())).expect("range").into();
            let mut got = tx.range_iter("t", start, end).expect("range_iter");
            for from_front in directions.into_iter().chain(std::iter::repeat_n(true, 48)) {
                let (a, b) = if from_front {
                    (got.next().transpose().expect("read"), want.pop_front())
                } else {
                    (got.next_back().transpose().expect("read"), want.pop_back())
                };
                prop_assert_eq!(a, b);
            }
        }
    }
}
