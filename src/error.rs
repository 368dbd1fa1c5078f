//! The one public error type.

use std::fmt;
use std::path::PathBuf;

use crate::types::TxId;

/// Everything that can go wrong in timecask.
///
/// Each variant carries what is needed to act on it: the path and offset of
/// damage, the txid asked for and the one that exists, the table and key of
/// a conflict.
///
/// ```
/// # fn main() -> Result<(), timecask::Error> {
/// let dir = tempfile::tempdir().unwrap();
/// let db = timecask::Db::open(dir.path())?;
/// match db.as_of(timecask::TxId(7)) {
///     Err(timecask::Error::FutureTxid { requested, latest }) => {
///         assert_eq!((requested.0, latest.0), (7, 0));
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed on `path`.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory being accessed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another `Db` in this process) holds the database open.
    #[error("database {path} is locked by another process; close it there first")]
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// Bytes on disk do not match what was written: a checksum, length or
    /// invariant check failed at `offset` of `path`.
    #[error("corrupt data in {path} at offset {offset}: {reason}; run verify, restore from backup")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damaged frame or header within the file.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// Commits that were acknowledged as durable are missing from the log:
    /// its newest segment was deleted or cut short (the commit witness
    /// `COMMIT` records how far durable commits went). Nothing on disk was
    /// changed. Restore from a backup, or open with
    /// [`Config::recovery`](crate::Config::recovery) set to
    /// [`Recovery::AcceptLoss`](crate::Recovery::AcceptLoss) to go on
    /// without them.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = timecask::Db::open(dir.path())?;
    /// let mut tx = db.begin();
    /// tx.put("t", b"k", b"v")?;
    /// tx.commit()?;
    /// drop(db);
    /// // Lose the only segment.
    /// std::fs::remove_file(dir.path().join("0000000001.tcseg")).unwrap();
    /// let err = timecask::Db::open(dir.path()).unwrap_err();
    /// assert!(matches!(
    ///     err,
    ///     timecask::Error::CommitsLost { log_end: timecask::TxId(0), acknowledged: timecask::TxId(1), .. }
    /// ));
    /// # Ok(()) }
    /// ```
    #[error(
        "the log ends at txid {log_end} in {path} but txids through {acknowledged} were acknowledged as durable (the commit witness COMMIT says so): the end of that segment or newer segments are missing; restore from a backup, or open with Recovery::AcceptLoss to go on without them"
    )]
    CommitsLost {
        /// The newest segment on disk: the missing commits were at its end
        /// or in segments after it.
        path: PathBuf,
        /// The last txid the log still holds.
        log_end: TxId,
        /// The last txid acknowledged as durable.
        acknowledged: TxId,
    },
    /// The file was written by a newer (or unknown) version of the format.
    #[error(
        "{path} has format version {found}, this build reads version {supported}; upgrade timecask"
    )]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// Version found in the header.
        found: u32,
        /// Version this build understands.
        supported: u32,
    },
    /// The directory exists, holds files, and is not a timecask database.
    #[error("{path} is not a timecask database (it has other files and no segments)")]
    NotADatabase {
        /// The directory.
        path: PathBuf,
    },
    /// The database does not exist and `Config::create_if_missing` is off,
    /// or a read-only open found no directory or no segment in it.
    #[error("no database at {path}")]
    NotFound {
        /// The directory.
        path: PathBuf,
    },
    /// A txid later than the latest committed one was requested.
    #[error("txid {requested} is in the future: the latest committed txid is {latest}")]
    FutureTxid {
        /// The txid asked for.
        requested: TxId,
        /// The latest committed txid.
        latest: TxId,
    },
    /// History older than the retention horizon was requested.
    #[error("history before txid {horizon} was purged; txid {requested} can no longer be read")]
    HistoryPurged {
        /// The txid asked for.
        requested: TxId,
        /// The oldest readable txid.
        horizon: TxId,
    },
    /// A purge would drop history that a live snapshot or transaction still
    /// reads. Drop those views (or purge up to their txid) and retry.
    #[error("cannot purge history before txid {requested}: a live view reads txid {oldest_view}")]
    HistoryInUse {
        /// The horizon asked for.
        requested: TxId,
        /// The oldest txid a live view reads.
        oldest_view: TxId,
    },
    /// No transaction with this txid exists (txid 0 is "before the first commit").
    #[error("no transaction has txid {txid}")]
    NoSuchTransaction {
        /// The txid asked for.
        txid: TxId,
    },
    /// A key is longer than [`KEY_SIZE_MAX`](crate::limits::KEY_SIZE_MAX).
    #[error("key of {size} bytes exceeds the limit of {max} bytes")]
    KeyTooLarge {
        /// Size of the key.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A value is longer than [`VALUE_SIZE_MAX`](crate::limits::VALUE_SIZE_MAX).
    #[error("value of {size} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// Size of the value.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A table name is empty or longer than
    /// [`TABLE_NAME_SIZE_MAX`](crate::limits::TABLE_NAME_SIZE_MAX) bytes.
    #[error("invalid table name {name:?}: {reason}")]
    InvalidTableName {
        /// The name as given (truncated for display if very long).
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The encoded transaction metadata exceeds
    /// [`META_SIZE_MAX`](crate::limits::META_SIZE_MAX).
    #[error("transaction metadata of {size} bytes exceeds the limit of {max} bytes")]
    MetadataTooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The encoded transaction exceeds [`TX_SIZE_MAX`](crate::limits::TX_SIZE_MAX);
    /// split it into several commits.
    #[error("transaction of {size} bytes exceeds the limit of {max} bytes; split it")]
    TransactionTooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// `insert` on a key that already has a live value.
    #[error("key {key} already exists in table {table:?}; use update or put")]
    KeyExists {
        /// The table.
        table: String,
        /// The key.
        key: KeyBytes,
    },
    /// `update` on a key that has no live value.
    #[error("key {key} does not exist in table {table:?}; use insert or put")]
    KeyNotFound {
        /// The table.
        table: String,
        /// The key.
        key: KeyBytes,
    },
    /// Another transaction committed a write to the same key after this one
    /// began (first committer wins). Retry the transaction.
    #[error(
        "write conflict on key {key} of table {table:?}: another transaction committed it first; retry"
    )]
    Conflict {
        /// The table.
        table: String,
        /// The key.
        key: KeyBytes,
    },
    /// A previous write or fsync failed; the database refuses writes until it
    /// is reopened (reads keep working). Reopening recovers the durable state.
    #[error("database refuses writes after an earlier failure ({reason}); reopen it")]
    Poisoned {
        /// The failure that poisoned the writer.
        reason: String,
    },
    /// `verify` found the in-memory index disagreeing with the log. This is
    /// a bug in timecask, not damage on disk: reopening rebuilds the index
    /// from the log. Please report it.
    #[error(
        "the in-memory index disagrees with the log ({reason}); reopen the database and report this bug"
    )]
    IndexMismatch {
        /// What differs.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// A write (commit, purge, erase, compaction, checkpoint) was asked of
    /// a database opened read-only ([`Db::open_read_only`](crate::Db::open_read_only)).
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # drop(timecask::Db::open(dir.path())?);
    /// let reader = timecask::Db::open_read_only(dir.path())?;
    /// assert!(matches!(reader.compact(), Err(timecask::Error::ReadOnly { .. })));
    /// # Ok(()) }
    /// ```
    #[error(
        "database {path} is open read-only; open it with Db::open (the writer's lock) to change it"
    )]
    ReadOnly {
        /// The database directory.
        path: PathBuf,
    },
}

/// A key carried in an error, shown as text when it is printable UTF-8 and as
/// hex otherwise.
///
/// ```
/// let k = timecask::KeyBytes(b"alice".to_vec());
/// assert_eq!(k.to_string(), "\"alice\"");
/// assert_eq!(timecask::KeyBytes(vec![0, 255]).to_string(), "0x00ff");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeyBytes(pub Vec<u8>);

impl fmt::Display for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) if !s.chars().any(char::is_control) => write!(f, "{s:?}"),
            _ => {
                f.write_str("0x")?;
                for b in &self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Result alias used throughout timecask.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}
