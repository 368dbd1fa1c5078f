//! Whole-run iterators, for merging and verifying. They read blocks from
//! disk without filling the cache (a merge would only evict hot blocks) and
//! check that each version block ends with its index entry and starts after
//! the previous block's last entry.

use super::reader::Run;
use super::{TxEntry, VersionEntry};
use crate::error::Result;

/// Every version of a run in `(table, key, txid)` order.
#[derive(Debug)]
pub(crate) struct VersionIter<'a> {
    run: &'a Run,
    next_block: usize,
    pending: std::vec::IntoIter<VersionEntry>,
    failed: bool,
}

/// Every tx record of a run in txid order.
#[derive(Debug)]
pub(crate) struct TxIter<'a> {
    run: &'a Run,
    next_block: usize,
    pending: std::vec::IntoIter<TxEntry>,
    failed: bool,
}

impl Run {
    /// Every version in order (stops after the first error).
    pub(crate) fn iter(&self) -> VersionIter<'_> {
        VersionIter {
            run: self,
            next_block: 0,
            pending: Vec::new().into_iter(),
            failed: false,
        }
    }

    /// Every tx record in txid order (stops after the first error).
    pub(crate) fn tx_iter(&self) -> TxIter<'_> {
        TxIter {
            run: self,
            next_block: 0,
            pending: Vec::new().into_iter(),
            failed: false,
        }
    }

    /// Version block `i`, decoded and checked against the index.
    fn version_block(&self, i: usize) -> Result<Vec<VersionEntry>> {
        let mut entries = Vec::new();
        self.scan_block(i, false, None, |e| {
            entries.push(e.to_entry());
            true
        })?;
        let index = self.block(i)?;
        let ends_right = entries.last().is_some_and(|e| e.sort_key() == index.last());
        let starts_right = i == 0 || entries[0].sort_key() > self.block(i - 1)?.last();
        if !ends_right || !starts_right {
            return Err(self.corrupt(
                index.handle.offset,
                "version block disagrees with the index",
            ));
        }
        Ok(entries)
    }
}

impl Iterator for VersionIter<'_> {
    type Item = Result<VersionEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.next() {
                return Some(Ok(e));
            }
            if self.failed || self.next_block == self.run.vindex.len() {
                return None;
            }
            let i = self.next_block;
            self.next_block += 1;
            match self.run.version_block(i) {
                Ok(entries) => self.pending = entries.into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Iterator for TxIter<'_> {
    type Item = Result<TxEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.next() {
                return Some(Ok(e));
            }
            if self.failed || self.next_block == self.run.tindex.len() {
                return None;
            }
            let j = self.next_block;
            self.next_block += 1;
            match self.run.tx_block(j, false) {
                Ok(records) => self.pending = records.into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
