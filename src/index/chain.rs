//! A version chain: the versions of one key in txid order, 20 bytes each.

use crate::limits::VALUE_SIZE_MAX;
use crate::types::{Op, SegmentId, TxId};

/// Where one version's value lies and what it did: 20 bytes, 4-aligned.
///
/// Layout: txid split into two `u32`s (so the struct needs no 8-byte
/// alignment and no padding), segment, offset of the value bytes inside the
/// segment, and the value length with the op in the top two bits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct VersionRef {
    txid_lo: u32,
    txid_hi: u32,
    segment: u32,
    offset: u32,
    len_op: u32,
}

const OP_SHIFT: u32 = 30;
const LEN_MASK: u32 = (1 << OP_SHIFT) - 1;
const _: () = assert!(VALUE_SIZE_MAX as u64 <= LEN_MASK as u64);
const _: () = assert!(std::mem::size_of::<VersionRef>() == 20);

impl VersionRef {
    pub(crate) fn new(txid: TxId, op: Op, segment: SegmentId, offset: u32, len: u32) -> VersionRef {
        assert!(len <= LEN_MASK);
        assert!(op != Op::Delete || len == 0);
        VersionRef {
            txid_lo: txid.0 as u32,
            txid_hi: (txid.0 >> 32) as u32,
            segment: segment.0,
            offset,
            len_op: len | (u32::from(op.to_byte()) << OP_SHIFT),
        }
    }

    pub(crate) fn txid(&self) -> TxId {
        TxId(u64::from(self.txid_hi) << 32 | u64::from(self.txid_lo))
    }

    pub(crate) fn op(&self) -> Op {
        Op::from_byte((self.len_op >> OP_SHIFT) as u8).expect("op bits are set by VersionRef::new")
    }

    /// The version holds a value (it is not a delete).
    pub(crate) fn is_live(&self) -> bool {
        self.op() != Op::Delete
    }

    pub(crate) fn segment(&self) -> SegmentId {
        SegmentId(self.segment)
    }

    pub(crate) fn offset(&self) -> u32 {
        self.offset
    }

    /// The five raw fields, for the checkpoint.
    pub(crate) fn to_raw(self) -> [u32; 5] {
        [
            self.txid_lo,
            self.txid_hi,
            self.segment,
            self.offset,
            self.len_op,
        ]
    }

    /// A version from raw checkpoint fields; `None` if the op bits or the
    /// length are invalid.
    pub(crate) fn from_raw(raw: [u32; 5]) -> Option<VersionRef> {
        let [txid_lo, txid_hi, segment, offset, len_op] = raw;
        let op = Op::from_byte((len_op >> OP_SHIFT) as u8)?;
        if op == Op::Delete && len_op & LEN_MASK != 0
            || (len_op & LEN_MASK) as usize > VALUE_SIZE_MAX
        {
            return None;
        }
        Some(VersionRef {
            txid_lo,
            txid_hi,
            segment,
            offset,
            len_op,
        })
    }

    /// The same version with its value at another offset (compaction).
    pub(crate) fn with_offset(self, offset: u32) -> VersionRef {
        VersionRef { offset, ..self }
    }

    pub(crate) fn len(&self) -> u32 {
        self.len_op & LEN_MASK
    }
}

/// The versions of one key, strictly increasing by txid.
pub(crate) type Chain = Vec<VersionRef>;

/// Appends `version`, growing the chain by an eighth at a time (at least one
/// slot) instead of doubling: long chains waste at most ~12% of their slots
/// and a chain of one version holds exactly one slot. Each version is
/// still copied only a bounded number of times on average.
pub(crate) fn push_version(chain: &mut Chain, version: VersionRef) {
    assert!(
        chain.last().is_none_or(|last| last.txid() < version.txid()),
        "chains grow by increasing txid"
    );
    if chain.len() == chain.capacity() {
        chain.reserve_exact((chain.len() / 8).max(1));
    }
    chain.push(version);
}

/// Position of the version visible at `txid`: the last with `txid <= at`.
pub(crate) fn visible_position(chain: &[VersionRef], at: TxId) -> Option<usize> {
    // Reads of the latest state are the common case: no search needed.
    if chain.last().is_some_and(|last| last.txid() <= at) {
        return Some(chain.len() - 1);
    }
    chain.partition_point(|v| v.txid() <= at).checked_sub(1)
}

/// The version visible at `at`, if any (it may be a delete).
pub(crate) fn visible_at(chain: &[VersionRef], at: TxId) -> Option<&VersionRef> {
    visible_position(chain, at).map(|i| &chain[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(txid: u64, op: Op) -> VersionRef {
        let len = if op == Op::Delete { 0 } else { 3 };
        VersionRef::new(TxId(txid), op, SegmentId(1), 100, len)
    }

    #[test]
    fn version_ref_round_trips_fields() {
        let r = VersionRef::new(TxId(u64::MAX - 1), Op::Update, SegmentId(7), 9, LEN_MASK);
        assert_eq!(r.txid(), TxId(u64::MAX - 1));
        assert_eq!(r.op(), Op::Update);
        assert_eq!(
            (r.segment(), r.offset(), r.len()),
            (SegmentId(7), 9, LEN_MASK)
        );
    }

    #[test]
    fn push_version_grows_by_an_eighth() {
        let mut chain = Chain::new();
        for txid in 1..=1000 {
            push_version(&mut chain, v(txid, Op::Insert));
            assert!(
                chain.capacity() <= chain.len() + chain.len() / 8 + 1,
                "len {}",
                chain.len()
            );
        }
        assert_eq!(chain.len(), 1000);
    }

    #[test]
    fn visible_at_picks_last_version_at_or_before() {
        let chain = vec![v(2, Op::Insert), v(5, Op::Delete), v(9, Op::Insert)];
        let cases = [
            (0, None),
            (1, None),
            (2, Some(2)),
            (4, Some(2)),
            (5, Some(5)),
            (8, Some(5)),
            (9, Some(9)),
            (99, Some(9)),
        ];
        for (at, want) in cases {
            assert_eq!(
                visible_at(&chain, TxId(at)).map(|r| r.txid().0),
                want,
                "at {at}"
            );
        }
    }
}
