//! `Db::verify`: re-reads every frame of every segment, checks every
//! checksum, and rebuilds the index from the log to compare it with the
//! live one, naming the exact file and offset of any damage.

use crate::db::Db;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::index::chain::visible_position;
use crate::log::recovery::{SegmentScan, nonzero_end};
use crate::log::segment::{SEGMENT_HEADER_SIZE, SegmentHeader, segment_path};
use crate::types::TxId;

use std::sync::Arc;

/// What [`Db::verify`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Everything up to and including this txid was verified.
    pub txid: TxId,
    /// Segment files read.
    pub n_segments: usize,
    /// Frames (transactions) whose checksum and contents were checked.
    pub n_frames: u64,
    /// Versions checked against the live index.
    pub n_versions: u64,
    /// Bytes read from segment files.
    pub n_bytes: u64,
}

impl Db {
    /// Checks the whole database: every segment header and frame checksum,
    /// txid density, version-chain invariants, and that the in-memory index
    /// matches what the log says, exactly.
    ///
    /// Runs while the database is in use and verifies everything committed
    /// when it started. Needs memory for a second index while it runs.
    /// Damage is reported as [`Error::Corrupt`] with file and offset.
    ///
    /// ```
    /// # fn main() -> Result<(), timecask::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = timecask::Db::open(dir.path())?;
    /// let mut tx = db.begin();
    /// tx.put("t", b"k", b"v")?;
    /// tx.commit()?;
    /// let report = db.verify()?;
    /// assert_eq!((report.n_frames, report.n_versions), (1, 1));
    /// # Ok(()) }
    /// ```
    pub fn verify(&self) -> Result<VerifyReport> {
        let shared = &self.shared;
        // Compaction moves history between the log and the runs.
        let _no_compaction = shared.lock_maintenance();
        let upto = shared.visible();
        let dir = &shared.dir;
        // The open handles, never a path: a read-only database reads the
        // files it opened (a writer may have renamed others over them).
        let ids = shared.files.ids();
        let (mut fresh, runs) = {
            let manifest = shared.lock_manifest().clone();
            let index = shared.read_index();
            match index.run_set() {
                Some(runs) if index.base() > TxId::ZERO => (
                    Index::from_manifest(&manifest, Arc::clone(runs)),
                    Some(Arc::clone(runs)),
                ),
                _ => (Index::default(), None),
            }
        };
        let mut n_run_versions = 0;
        if let Some(runs) = &runs {
            for run in runs.runs() {
                let summary = run.verify()?;
                n_run_versions += summary.n_versions;
            }
        }
        // The log starts after the runs and each segment continues the last.
        let mut next_txid = Some(fresh.last_txid().next());
        let mut report = VerifyReport {
            txid: upto,
            n_segments: 0,
            n_frames: 0,
            n_versions: 0,
            n_bytes: 0,
        };
        for (n, &id) in ids.iter().enumerate() {
            let path = segment_path(dir, id);
            let file = shared.files.handle(id)?;
            let size = file.len().map_err(|e| Error::io(&path, e))?;
            let mut header = [0; SEGMENT_HEADER_SIZE];
            file.read_exact_at(&mut header, 0)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => {
                        Error::corrupt(&path, 0, "segment is shorter than its header")
                    }
                    _ => Error::io(&path, e),
                })?;
            let header = SegmentHeader::decode(&header, &path)?;
            if header.id != id || next_txid.is_some_and(|next| next != header.first_txid) {
                return Err(Error::corrupt(
                    &path,
                    0,
                    "segment header does not continue the previous segment (or the log \
                     does not start at txid 1)",
                ));
            }
            let mut scan = SegmentScan::new(&path, id, size, header.first_txid);
            scan.stop_after = upto;
            let end = scan.run(file.as_ref(), &mut |loc, payload_len, tx| {
                report.n_frames += 1;
                fresh
                    .apply(loc, payload_len, tx)
                    .map_err(|reason| Error::corrupt(&path, u64::from(loc.offset), reason))
            })?;
            report.n_segments += 1;
            report.n_bytes += end;
            next_txid = Some(scan.next_txid);
            if scan.stopped {
                break;
            }
            let newest = n + 1 == ids.len();
            // A damaged frame; in the newest segment it may also be a commit
            // being written right now, after `upto`.
            // A read-only database ended its log before such a frame when
            // it opened (a writer may have been appending it).
            let may_be_in_progress = shared.config.read_only || shared.durable.written() != upto;
            // Zeros after the newest segment's last frame are preallocated
            // space, not damage.
            let damaged = end < size
                && (!newest
                    || (!may_be_in_progress
                        && nonzero_end(file.as_ref(), &path, end, size)? > end));
            if damaged {
                return Err(Error::corrupt(
                    &path,
                    end,
                    "frame is damaged (checksum or length)",
                ));
            }
        }
        if fresh.last_txid() != upto {
            let path = ids
                .last()
                .map_or_else(|| dir.clone(), |id| segment_path(dir, *id));
            return Err(Error::corrupt(
                path,
                0,
                format!(
                    "the log ends at txid {} but txid {upto} was committed",
                    fresh.last_txid()
                ),
            ));
        }
        report.n_versions = compare_indexes(&shared.read_index(), &fresh, upto)? + n_run_versions;
        Ok(report)
    }
}

/// Checks that `live`, cut at `upto`, equals `fresh` rebuilt from the log.
/// Returns the number of versions compared.
fn compare_indexes(live: &Index, fresh: &Index, upto: TxId) -> Result<u64> {
    let mismatch = |what: String| Error::IndexMismatch { reason: what };
    for txid in fresh.base().0 + 1..=upto.0 {
        if live.tx(TxId(txid)) != fresh.tx(TxId(txid)) {
            return Err(mismatch(format!("transaction {txid}")));
        }
    }
    let mut n_versions = 0;
    for (id, fresh_table) in fresh.tables().iter().enumerate() {
        let Some(live_table) = live.tables().get(id) else {
            return Err(mismatch(format!("table {:?} missing", fresh_table.name)));
        };
        if live_table.name != fresh_table.name || live_table.created != fresh_table.created {
            return Err(mismatch(format!("table {:?}", fresh_table.name)));
        }
        for (key, live_chain) in &live_table.keys {
            let visible = visible_position(live_chain, upto).map_or(0, |i| i + 1);
            let fresh_chain = fresh_table.keys.get(key).map_or(&[][..], |c| &c[..]);
            if live_chain[..visible] != *fresh_chain {
                return Err(mismatch(format!(
                    "versions of a key in table {:?}",
                    fresh_table.name
                )));
            }
            n_versions += visible as u64;
        }
        if fresh_table.keys.len() > live_table.keys.len() {
            return Err(mismatch(format!(
                "keys missing in table {:?}",
                fresh_table.name
            )));
        }
    }
    if n_versions != fresh.n_versions() {
        return Err(mismatch("version count".into()));
    }
    Ok(n_versions)
}
