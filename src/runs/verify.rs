//! `Run::verify`: reads every block from disk (never the cache), checks
//! every checksum, the sort order, the counts in the footer (reassembling
//! a grouped block checks its directory keys too), and that the
//! version entries and the tx records agree: each version's commit time is
//! its tx's, and each tx lists exactly as many changes as the run has
//! versions of that txid.

use super::reader::Run;
use super::{MetaRef, RunSummary};
use crate::error::Result;
use crate::log::frame::decode_meta;

impl Run {
    /// Checks the whole file; an error names the path and the offset of the
    /// damaged block or section.
    pub(crate) fn verify(&self) -> Result<RunSummary> {
        let f = self.footer;
        let n_txs = usize::try_from(f.n_txs).expect("checked against the tx blocks at open");
        let mut times = Vec::with_capacity(n_txs.min(1 << 24));
        let mut changes = Vec::with_capacity(n_txs.min(1 << 24));
        let mut metas_in_tx = Vec::with_capacity(n_txs.min(1 << 24));
        // Every index page, whatever the reads so far loaded.
        self.vindex.load_all(self)?;
        self.tindex.load_all(self)?;
        for j in 0..self.tindex.len() {
            let entry = self.tx_block_entry(j)?;
            for tx in self.tx_block(j, false)? {
                if decode_meta(&tx.meta).is_err() {
                    return Err(self.corrupt(entry.handle.offset, "tx metadata does not decode"));
                }
                if let Some(&prev) = times.last()
                    && tx.commit_time < prev
                {
                    return Err(self.corrupt(entry.handle.offset, "tx commit times decrease"));
                }
                times.push(tx.commit_time);
                changes.push(tx.changes.len() as u64);
                metas_in_tx.push(MetaRef::for_tx_meta(&tx.meta));
            }
        }
        if times.last() != Some(&f.last_commit_time) {
            return Err(self.corrupt(f.tx_index.offset, "last tx time differs from the footer"));
        }
        // Read again from disk: the one in memory was checked when loaded.
        let bloom = self.read_bloom()?;
        let mut n_versions = 0u64;
        let mut n_keys = 0u64;
        let mut prev: Option<super::VersionEntry> = None;
        let mut versions_per_tx = vec![0u64; times.len()];
        for e in self.iter() {
            let e = e?;
            let at = (e.txid.0 - f.first_txid.0) as usize;
            let offset = self.block_offset_of(&e);
            if e.commit_time != times[at] {
                return Err(self.corrupt(
                    offset,
                    format!(
                        "version of txid {} has another commit time than its tx",
                        e.txid
                    ),
                ));
            }
            if e.meta != metas_in_tx[at] {
                return Err(self.corrupt(
                    offset,
                    format!("version of txid {} has other metadata than its tx", e.txid),
                ));
            }
            versions_per_tx[at] += 1;
            n_versions += 1;
            if prev
                .as_ref()
                .is_none_or(|p| p.table != e.table || p.key != e.key)
            {
                n_keys += 1;
                if !bloom.may_contain(super::bloom::key_hash(e.table, &e.key)) {
                    return Err(
                        self.corrupt(f.bloom.offset, "bloom filter misses a key of the run")
                    );
                }
            }
            prev = Some(e);
        }
        if n_versions != f.n_versions || n_keys != f.n_keys {
            return Err(self.corrupt(
                f.version_index.offset,
                "version or key count differs from the footer",
            ));
        }
        if let Some(at) = (0..changes.len()).find(|&at| changes[at] != versions_per_tx[at]) {
            return Err(self.corrupt(
                f.tx_index.offset,
                format!(
                    "tx {} lists {} changes but the run has {} of its versions",
                    f.first_txid.0 + at as u64,
                    changes[at],
                    versions_per_tx[at]
                ),
            ));
        }
        Ok(self.summary())
    }

    /// Offset of the block that holds `e` (for error messages).
    fn block_offset_of(&self, e: &super::VersionEntry) -> u64 {
        let i = self.first_block_not(|b| b.last() < e.sort_key());
        i.ok()
            .filter(|&i| i < self.vindex.len())
            .and_then(|i| self.block(i).ok())
            .map_or(0, |b| b.handle.offset)
    }
}
