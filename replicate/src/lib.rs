//! Replication of a [`timecask`] database to S3-compatible object storage
//! (the Litestream model): a [`Replicator`] ships every sealed file once
//! and the durable tail continuously, with a checksummed object manifest;
//! [`restore`] rebuilds the database as of any txid the bucket holds; a
//! [`Follower`] keeps a local read-only copy following the bucket.
//!
//! The bucket layout, the object manifest and the crash cases are in
//! FORMAT.md ("Replication objects").
//!
//! ```no_run
//! use timecask_replicate::{Remote, Replicator, ReplicatorConfig, S3Options};
//! let db = timecask::Db::open("app.db")?;
//! let mut tx = db.begin();
//! tx.put("t", b"k", b"v1")?;
//! let t1 = tx.commit()?.expect("one change");
//! let remote = Remote::from_url("s3://backups/app-db", &S3Options::default())?;
//! let mut replicator = Replicator::open("app.db", remote, ReplicatorConfig::default())?;
//! replicator.sync()?;
//! replicator.release()?;
//! let remote = Remote::from_url("s3://backups/app-db", &S3Options::default())?;
//! timecask_replicate::restore(&remote, t1, "restored.db")?;
//! let copy = timecask::Db::open("restored.db")?;
//! assert_eq!(copy.snapshot().get("t", b"k")?, Some(b"v1".to_vec()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![deny(clippy::unwrap_used)]

mod error;
mod follow;
mod lease;
mod local;
mod objects;
mod plan;
mod remote;
mod replicator;
mod restore;

pub use error::{Error, Result};
pub use follow::Follower;
pub use objects::{Chunk, ManifestObject, ObjectManifest, RunObject};
pub use remote::{Remote, S3Options};
pub use replicator::{Replicator, ReplicatorConfig, RunningReplicator, Status, SyncReport};
pub use restore::{RestoreReport, restorable, restore};
