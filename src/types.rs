//! Small value types shared by every layer: txids, ops, times, durability,
//! internal ids. Pure: no other module of the crate.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A transaction id: assigned at commit, dense and strictly increasing from 1.
///
/// `TxId(0)` means "before the first commit": a view as of txid 0 is empty.
///
/// ```
/// use timecask::TxId;
/// assert!(TxId(1) < TxId(2));
/// assert_eq!(TxId(41).next(), TxId(42));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct TxId(pub u64);

impl TxId {
    /// The txid before any commit.
    pub const ZERO: TxId = TxId(0);

    /// The txid after this one.
    pub fn next(self) -> TxId {
        TxId(self.0 + 1)
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a version did to its key. Ordered `Insert < Update < Delete`
/// (declaration order) and hashable, so ops can key maps and sets.
///
/// ```
/// use timecask::Op;
/// assert_eq!(Op::Update.as_str(), "update");
/// assert!(Op::Insert < Op::Delete);
/// let ops: std::collections::HashSet<Op> = [Op::Insert, Op::Insert].into();
/// assert_eq!(ops.len(), 1);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Op {
    /// The key had no live value before this version.
    Insert,
    /// The key had a live value and this version replaced it.
    Update,
    /// The key had a live value and this version removed it.
    Delete,
}

impl Op {
    /// The lowercase name of the op.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }

    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Op::Insert => 1,
            Op::Update => 2,
            Op::Delete => 3,
        }
    }

    pub(crate) fn from_byte(byte: u8) -> Option<Op> {
        match byte {
            1 => Some(Op::Insert),
            2 => Some(Op::Update),
            3 => Some(Op::Delete),
            _ => None,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A commit time: microseconds since the Unix epoch (UTC).
///
/// Commit times never decrease from one txid to the next, even if the wall
/// clock steps back.
///
/// ```
/// use timecask::Timestamp;
/// let t = Timestamp::from_micros(1_500_000);
/// assert_eq!(t.as_micros(), 1_500_000);
/// assert_eq!(Timestamp::from(t.to_system_time()), t);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// A timestamp from microseconds since the Unix epoch.
    pub fn from_micros(micros: u64) -> Timestamp {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> u64 {
        self.0
    }

    /// The current wall-clock time (the epoch if the clock is before it).
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }

    /// This timestamp as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.0)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Timestamp {
        let micros = time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        Timestamp(u64::try_from(micros).unwrap_or(u64::MAX))
    }
}

/// When `commit` returns.
///
/// ```
/// let config = timecask::Config { durability: timecask::Durability::Buffered, ..Default::default() };
/// assert_eq!(config.durability, timecask::Durability::Buffered);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Durability {
    /// Commit returns after the frame is fsynced: it survives power loss.
    #[default]
    Immediate,
    /// Commit returns after the OS has the frame: it survives a process
    /// crash but may be lost on power loss until [`Db::flush`](crate::Db::flush).
    Buffered,
}

/// Internal id of a table, assigned in order of creation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub(crate) struct TableId(pub u32);

/// Number of a segment file; segments are numbered densely from 1.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub(crate) struct SegmentId(pub u32);
