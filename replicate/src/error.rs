//! The one public error type of the crate.

use std::path::PathBuf;

/// Everything replication, restore and following can fail with. Each
/// variant names the object (its key in the bucket) or the local file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object store refused or failed a request (after its retries).
    #[error("object store: {op} {object}: {source}")]
    Store {
        /// What was being done: `put`, `get`, `list`, `delete`.
        op: &'static str,
        /// The object's key in the bucket.
        object: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// An object the object manifest lists is not in the bucket.
    #[error("object {object} is listed by the object manifest but missing from the bucket")]
    MissingObject {
        /// The object's key in the bucket.
        object: String,
    },
    /// An object's bytes do not match the checksum or length recorded for it.
    #[error("object {object} is damaged: {reason}")]
    CorruptObject {
        /// The object's key in the bucket.
        object: String,
        /// What did not match.
        reason: String,
    },
    /// The object manifest was written by a newer build.
    #[error("object {object} has format version {version}; this build reads version 1")]
    UnsupportedFormat {
        /// The object's key in the bucket.
        object: String,
        /// The version it carries.
        version: u32,
    },
    /// The bucket cannot rebuild the database as of this txid.
    #[error("txid {txid} cannot be restored from {prefix}: the bucket can restore {}", describe_ranges(.available))]
    NotRestorable {
        /// The txid asked for.
        txid: u64,
        /// The prefix read.
        prefix: String,
        /// Inclusive txid ranges it can restore.
        available: Vec<(u64, u64)>,
    },
    /// Another replicator holds the lease on this prefix.
    #[error(
        "{prefix} is being replicated by {owner} (lease until {expires_unix_ms} ms since the epoch); stop it or wait for its lease to expire"
    )]
    Leased {
        /// The prefix.
        prefix: String,
        /// The owner id written in the lease object.
        owner: String,
        /// When its lease expires.
        expires_unix_ms: u64,
    },
    /// This replicator's lease was taken over (it was away past its expiry).
    #[error("the lease on {prefix} was taken by {owner}; this replicator stopped")]
    LeaseLost {
        /// The prefix.
        prefix: String,
        /// Who holds it now (if known).
        owner: String,
    },
    /// The local files no longer match what the bucket holds for them.
    #[error("{path}: {reason}")]
    SourceMismatch {
        /// The local file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// A local file is damaged (bad checksum, impossible length).
    #[error("{path} at offset {offset}: {reason}")]
    Corrupt {
        /// The local file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The restore destination holds files already.
    #[error("restore destination {path} is not empty")]
    DestinationNotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// A bad `s3://` URL or store option.
    #[error("{url}: {reason}")]
    InvalidUrl {
        /// What was given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database engine refused (opening or checking a restored copy).
    #[error(transparent)]
    Db(#[from] timecask::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// Whether retrying later may succeed (the store was unreachable or
    /// failed); local damage, lease and format errors are not transient.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Store { source, .. } if !matches!(
            source,
            object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }
        ))
    }
}

fn describe_ranges(ranges: &[(u64, u64)]) -> String {
    if ranges.is_empty() {
        return "nothing yet".to_string();
    }
    let parts: Vec<String> = ranges
        .iter()
        .map(|(a, b)| {
            if a == b {
                format!("{a}")
            } else {
                format!("{a}..={b}")
            }
        })
        .collect();
    format!("txids {}", parts.join(", "))
}
