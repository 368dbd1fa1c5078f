//! The one path every fsync of a log file takes: a failed fsync poisons the
//! database for writes until it is reopened.
//!
//! After a failed `fdatasync` Linux may already have dropped the dirty
//! pages it could not write, so retrying and reporting success would
//! acknowledge data that is gone. Every fsync of a segment or of the commit
//! witness goes through [`Poison::sync`]; the group committer, the segment
//! roll and `Db::checkpoint` all share one `Poison`, so a failure in any of
//! them refuses every later write (reads keep working).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::storage::StorageFile;

/// Set once a log write or fsync failed in a way that leaves the file's
/// state unknown.
#[derive(Debug, Default)]
pub(crate) struct Poison {
    reason: Mutex<Option<String>>,
}

impl Poison {
    fn lock(&self) -> MutexGuard<'_, Option<String>> {
        self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(Error::Poisoned)` once poisoned.
    pub(crate) fn check(&self) -> Result<()> {
        match &*self.lock() {
            Some(reason) => Err(Error::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Poisons with `reason` (the first reason is kept).
    pub(crate) fn set(&self, reason: String) {
        let mut current = self.lock();
        if current.is_none() {
            *current = Some(reason);
        }
    }

    /// Fsyncs `file` (a log file at `path`). A failure poisons and is
    /// returned as `Error::Io` naming the file; once poisoned, no fsync is
    /// attempted at all.
    pub(crate) fn sync(&self, file: &dyn StorageFile, path: &Path) -> Result<()> {
        self.check()?;
        file.sync_data().map_err(|e| {
            self.set(format!("fsync of {} failed: {e}", path.display()));
            Error::io(path, e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reason_is_kept_and_every_check_fails_after_it() {
        let poison = Poison::default();
        poison.check().expect("healthy");
        poison.set("first".into());
        poison.set("second".into());
        assert!(matches!(poison.check(), Err(Error::Poisoned { reason }) if reason == "first"));
    }
}
