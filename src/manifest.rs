//! The `MANIFEST`: one small checksummed file that says which history runs
//! are live, where the log now starts, and the tables with their horizons.
//!
//! It is replaced whole, never edited: [`install`] writes `MANIFEST.tmp`,
//! fsyncs it, renames it over `MANIFEST` and fsyncs the directory, so a
//! crash at any point leaves either the old or the new manifest, each
//! complete and valid. [`load`] only reads (it works for a read-only
//! database); a stray `MANIFEST.tmp` from a crash before the rename is
//! removed by a writer's open with [`remove_stray_tmp`].
//!
//! Every length read from the file is checked against a limit and against
//! the bytes that remain, and every invariant of [`Manifest`] is validated
//! on decode: any damage is `Error::Corrupt` naming the file and an offset.
//! A wrong magic is `Corrupt` too (a foreign file, as for every other file
//! of the format); an intact file (CRC good) with a version above
//! [`MANIFEST_VERSION`] is `Error::UnsupportedFormat`.

#![cfg_attr(
    not(test),
    allow(dead_code, reason = "wired into the engine by issue 12")
)]

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::RetentionPolicy;
use crate::error::{Error, Result};
use crate::limits::TABLE_NAME_SIZE_MAX;
use crate::storage::Storage;
use crate::types::{SegmentId, TableId, Timestamp, TxId};

/// File name of the manifest inside the database directory.
pub(crate) const MANIFEST_FILE: &str = "MANIFEST";
/// The name a new manifest is written under before it is renamed into place.
pub(crate) const MANIFEST_TMP_FILE: &str = "MANIFEST.tmp";
/// Suffix of a history run file's name.
pub(crate) const RUN_SUFFIX: &str = ".tcrun";

/// Magic bytes at the start of the manifest.
const MANIFEST_MAGIC: [u8; 8] = *b"TCMANIF\0";
/// The manifest format version this build writes and reads.
pub(crate) const MANIFEST_VERSION: u32 = 2;
/// The first version, read as version 2 with `drops_applied` 0.
const MANIFEST_VERSION_1: u32 = 1;
/// `magic | u32 version | u32 body length`.
const HEADER_SIZE: usize = 16;
/// The trailing CRC-32 of everything before it.
const CRC_SIZE: usize = 4;
/// Largest manifest file read (header, body and CRC): far above what
/// [`TABLES_MAX`] and [`RUNS_MAX`] allow, it only stops a huge allocation.
pub(crate) const MANIFEST_SIZE_MAX: usize = 256 * 1024 * 1024;
/// Most tables a manifest holds.
pub(crate) const TABLES_MAX: usize = 1 << 20;
/// Most live runs a manifest holds.
pub(crate) const RUNS_MAX: usize = 1 << 20;

/// Bytes of a table entry without its name: `u32 id | u32 name_len | u64
/// created | u64 horizon | u8 has_retention` (then 12 bytes if it has one).
const TABLE_FIXED_SIZE: usize = 4 + 4 + 8 + 8 + 1;
/// Bytes of an encoded retention policy.
const RETENTION_SIZE: usize = 12;
/// Bytes of a run entry: four `u64`.
const RUN_ENTRY_SIZE: usize = 32;

/// One table, as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableEntry {
    pub id: TableId,
    pub name: String,
    pub created: TxId,
    pub horizon: TxId,
    pub retention: Option<RetentionPolicy>,
}

/// One live history run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RunEntry {
    /// The run's file is `run_file_name(file_number)`.
    pub file_number: u64,
    pub first_txid: TxId,
    pub last_txid: TxId,
    /// Length of the run file, checked at open.
    pub file_bytes: u64,
}

/// The content of one `MANIFEST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// Increases by one with every install.
    pub seq: u64,
    /// Every txid <= this is held by the runs (TxId::ZERO: no runs).
    pub runs_through: TxId,
    /// Commit time of `runs_through` (Timestamp 0 if none).
    pub runs_through_time: Timestamp,
    /// The log's first live segment: segments below it are covered by runs.
    pub log_first_segment: SegmentId,
    /// Txid of the first frame of that segment (= runs_through + 1).
    pub log_first_txid: TxId,
    /// Database-wide purge horizon.
    pub purge_horizon: TxId,
    /// The next run file number to use (greater than every number ever used).
    pub next_file_number: u64,
    /// Fingerprint of the purge and table horizons every run already
    /// reflects (`Drops::horizons_fingerprint`; 0: none, or unknown), so
    /// a compaction knows whether merging all runs would drop anything.
    pub drops_applied: u64,
    /// Every table, by ascending id (ids dense from 0).
    pub tables: Vec<TableEntry>,
    /// Live runs, ascending and adjacent by txid: runs[0].first_txid == 1
    /// (or the first surviving txid), runs[i+1].first_txid == runs[i].last_txid + 1,
    /// the last one ending at runs_through.
    pub runs: Vec<RunEntry>,
}

impl Manifest {
    /// The manifest of a database without runs: `seq` 0, the log starting
    /// at segment 1 and txid 1, no tables.
    pub(crate) fn empty() -> Manifest {
        Manifest {
            seq: 0,
            runs_through: TxId::ZERO,
            runs_through_time: Timestamp::from_micros(0),
            log_first_segment: SegmentId(1),
            log_first_txid: TxId(1),
            purge_horizon: TxId::ZERO,
            next_file_number: 1,
            drops_applied: 0,
            tables: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// The file's bytes (see `FORMAT.md`, "MANIFEST"). A manifest that
    /// breaks its invariants encodes, but does not decode: callers build
    /// valid ones (names at most [`TABLE_NAME_SIZE_MAX`] bytes, at most
    /// [`TABLES_MAX`] tables and [`RUNS_MAX`] runs).
    pub(crate) fn encode(&self) -> Vec<u8> {
        debug_assert!(self.tables.len() <= TABLES_MAX && self.runs.len() <= RUNS_MAX);
        let mut body = Vec::with_capacity(
            60 + self.tables.len() * (TABLE_FIXED_SIZE + RETENTION_SIZE + 16)
                + self.runs.len() * RUN_ENTRY_SIZE,
        );
        body.extend_from_slice(&self.seq.to_le_bytes());
        body.extend_from_slice(&self.runs_through.0.to_le_bytes());
        body.extend_from_slice(&self.runs_through_time.as_micros().to_le_bytes());
        body.extend_from_slice(&self.log_first_segment.0.to_le_bytes());
        body.extend_from_slice(&self.log_first_txid.0.to_le_bytes());
        body.extend_from_slice(&self.purge_horizon.0.to_le_bytes());
        body.extend_from_slice(&self.next_file_number.to_le_bytes());
        body.extend_from_slice(&self.drops_applied.to_le_bytes());
        body.extend_from_slice(&len_u32(self.tables.len()).to_le_bytes());
        for table in &self.tables {
            body.extend_from_slice(&table.id.0.to_le_bytes());
            body.extend_from_slice(&len_u32(table.name.len()).to_le_bytes());
            body.extend_from_slice(table.name.as_bytes());
            body.extend_from_slice(&table.created.0.to_le_bytes());
            body.extend_from_slice(&table.horizon.0.to_le_bytes());
            match &table.retention {
                None => body.push(0),
                Some(policy) => {
                    body.push(1);
                    body.extend_from_slice(&policy.encode());
                }
            }
        }
        body.extend_from_slice(&len_u32(self.runs.len()).to_le_bytes());
        for run in &self.runs {
            body.extend_from_slice(&run.file_number.to_le_bytes());
            body.extend_from_slice(&run.first_txid.0.to_le_bytes());
            body.extend_from_slice(&run.last_txid.0.to_le_bytes());
            body.extend_from_slice(&run.file_bytes.to_le_bytes());
        }
        let mut out = Vec::with_capacity(HEADER_SIZE + body.len() + CRC_SIZE);
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        out.extend_from_slice(&len_u32(body.len()).to_le_bytes());
        out.extend_from_slice(&body);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and validates (CRC, magic, version, lengths, table ids dense and
    /// ascending, names UTF-8 and unique, runs adjacent and ending at runs_through,
    /// log_first_txid == runs_through + 1, retention decodes). Any damage is
    /// `Error::Corrupt` naming `path` and an offset; a wrong magic is
    /// `Error::Corrupt` too; an intact file with a newer version number is
    /// `Error::UnsupportedFormat`.
    pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<Manifest> {
        let corrupt = |offset: usize, reason: String| Error::corrupt(path, offset as u64, reason);
        if bytes.len() > MANIFEST_SIZE_MAX {
            return Err(corrupt(
                0,
                format!(
                    "manifest of {} bytes exceeds the limit of {MANIFEST_SIZE_MAX}",
                    bytes.len()
                ),
            ));
        }
        if bytes.len() < HEADER_SIZE + CRC_SIZE {
            return Err(corrupt(
                bytes.len(),
                format!(
                    "manifest truncated: {} bytes, shorter than its {} bytes of header and crc",
                    bytes.len(),
                    HEADER_SIZE + CRC_SIZE
                ),
            ));
        }
        if bytes[..8] != MANIFEST_MAGIC {
            return Err(corrupt(0, "not a manifest: bad magic".to_string()));
        }
        let version = u32_at(bytes, 8);
        let body_len = u32_at(bytes, 12) as usize;
        let expected = HEADER_SIZE
            .checked_add(body_len)
            .and_then(|n| n.checked_add(CRC_SIZE));
        if expected != Some(bytes.len()) {
            return Err(corrupt(
                12,
                format!(
                    "manifest body length {body_len} does not match the file's {} bytes",
                    bytes.len()
                ),
            ));
        }
        let crc_at = bytes.len() - CRC_SIZE;
        let stored = u32_at(bytes, crc_at);
        let computed = crc32fast::hash(&bytes[..crc_at]);
        if stored != computed {
            return Err(corrupt(
                crc_at,
                format!("manifest crc mismatch: stored {stored:#010x}, computed {computed:#010x}"),
            ));
        }
        if version > MANIFEST_VERSION {
            return Err(Error::UnsupportedFormat {
                path: path.to_path_buf(),
                found: version,
                supported: MANIFEST_VERSION,
            });
        }
        if version != MANIFEST_VERSION && version != MANIFEST_VERSION_1 {
            return Err(corrupt(
                8,
                format!("manifest version {version} was never written"),
            ));
        }
        let mut r = Reader {
            bytes: &bytes[..crc_at],
            pos: HEADER_SIZE,
            path,
        };
        let seq = r.u64("seq")?;
        let runs_through_at = r.pos;
        let runs_through = TxId(r.u64("runs_through")?);
        let runs_through_time = Timestamp::from_micros(r.u64("runs_through_time")?);
        let segment_at = r.pos;
        let log_first_segment = SegmentId(r.u32("log_first_segment")?);
        let log_first_txid_at = r.pos;
        let log_first_txid = TxId(r.u64("log_first_txid")?);
        let purge_horizon = TxId(r.u64("purge_horizon")?);
        let next_file_number = r.u64("next_file_number")?;
        let drops_applied = if version == MANIFEST_VERSION_1 {
            0
        } else {
            r.u64("drops_applied")?
        };

        if runs_through == TxId::ZERO && runs_through_time.as_micros() != 0 {
            return Err(corrupt(
                runs_through_at,
                "runs_through is 0 but runs_through_time is not".to_string(),
            ));
        }
        if log_first_segment.0 == 0 {
            return Err(corrupt(
                segment_at,
                "log_first_segment is 0 (segments are numbered from 1)".to_string(),
            ));
        }
        if runs_through.0.checked_add(1) != Some(log_first_txid.0) {
            return Err(corrupt(
                log_first_txid_at,
                format!("log_first_txid {log_first_txid} is not runs_through {runs_through} + 1"),
            ));
        }

        let count_at = r.pos;
        let n_tables = r.u32("table count")? as usize;
        if n_tables > TABLES_MAX || n_tables.saturating_mul(TABLE_FIXED_SIZE) > r.remaining() {
            return Err(corrupt(
                count_at,
                format!(
                    "table count {n_tables} exceeds the limit of {TABLES_MAX} or the bytes left"
                ),
            ));
        }
        let mut tables = Vec::with_capacity(n_tables);
        let mut names = HashSet::with_capacity(n_tables);
        for index in 0..n_tables {
            let entry_at = r.pos;
            let id = r.u32("table id")?;
            if id as usize != index {
                return Err(corrupt(
                    entry_at,
                    format!("table id {id} at position {index}: ids must be dense from 0"),
                ));
            }
            let name_at = r.pos;
            let name_len = r.u32("table name length")? as usize;
            if name_len == 0 || name_len > TABLE_NAME_SIZE_MAX {
                return Err(corrupt(
                    name_at,
                    format!("table name length {name_len} is outside 1..={TABLE_NAME_SIZE_MAX}"),
                ));
            }
            let name = r.take(name_len, "table name")?;
            let name = std::str::from_utf8(name)
                .map_err(|_| corrupt(name_at + 4, "table name is not UTF-8".to_string()))?
                .to_string();
            if !names.insert(name.clone()) {
                return Err(corrupt(
                    name_at,
                    format!("table name {name:?} appears twice"),
                ));
            }
            let created = TxId(r.u64("table created txid")?);
            let horizon = TxId(r.u64("table horizon")?);
            let flag_at = r.pos;
            let retention = match r.u8("table retention flag")? {
                0 => None,
                1 => {
                    let policy = r.take(RETENTION_SIZE, "table retention")?;
                    Some(RetentionPolicy::decode(policy).ok_or_else(|| {
                        corrupt(flag_at + 1, "table retention does not decode".to_string())
                    })?)
                }
                other => {
                    return Err(corrupt(
                        flag_at,
                        format!("table retention flag {other} is neither 0 nor 1"),
                    ));
                }
            };
            tables.push(TableEntry {
                id: TableId(id),
                name,
                created,
                horizon,
                retention,
            });
        }

        let count_at = r.pos;
        let n_runs = r.u32("run count")? as usize;
        if n_runs > RUNS_MAX || n_runs.saturating_mul(RUN_ENTRY_SIZE) != r.remaining() {
            return Err(corrupt(
                count_at,
                format!(
                    "run count {n_runs} exceeds the limit of {RUNS_MAX} or does not fill \
                     the {} bytes left",
                    r.remaining()
                ),
            ));
        }
        let mut runs: Vec<RunEntry> = Vec::with_capacity(n_runs);
        let mut numbers = HashSet::with_capacity(n_runs);
        for _ in 0..n_runs {
            let entry_at = r.pos;
            let run = RunEntry {
                file_number: r.u64("run file number")?,
                first_txid: TxId(r.u64("run first txid")?),
                last_txid: TxId(r.u64("run last txid")?),
                file_bytes: r.u64("run file length")?,
            };
            if run.file_number >= next_file_number {
                return Err(corrupt(
                    entry_at,
                    format!(
                        "run file number {} is not below next_file_number {next_file_number}",
                        run.file_number
                    ),
                ));
            }
            if !numbers.insert(run.file_number) {
                return Err(corrupt(
                    entry_at,
                    format!("run file number {} appears twice", run.file_number),
                ));
            }
            if run.first_txid == TxId::ZERO || run.first_txid > run.last_txid {
                return Err(corrupt(
                    entry_at + 8,
                    format!(
                        "run txid range {}..={} is empty or starts at 0",
                        run.first_txid, run.last_txid
                    ),
                ));
            }
            if let Some(prev) = runs.last()
                && prev.last_txid.0.checked_add(1) != Some(run.first_txid.0)
            {
                return Err(corrupt(
                    entry_at + 8,
                    format!(
                        "run starting at txid {} does not follow the previous one, which ends at {}",
                        run.first_txid, prev.last_txid
                    ),
                ));
            }
            runs.push(run);
        }
        let runs_end = runs.last().map_or(TxId::ZERO, |run| run.last_txid);
        if runs_end != runs_through {
            return Err(corrupt(
                runs_through_at,
                format!("runs_through {runs_through} but the runs end at txid {runs_end}"),
            ));
        }
        if r.remaining() != 0 {
            // Unreachable: the run count was checked to fill the body.
            return Err(corrupt(r.pos, "bytes after the last run".to_string()));
        }
        Ok(Manifest {
            seq,
            runs_through,
            runs_through_time,
            log_first_segment,
            log_first_txid,
            purge_horizon,
            next_file_number,
            drops_applied,
            tables,
            runs,
        })
    }
}

/// A length as the `u32` the format stores (saturated: a longer one does
/// not decode, and no valid manifest has one).
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The `u32` at `at`; the caller has checked that 4 bytes are there.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Reads fields of the body, checking every length against what is left.
struct Reader<'a> {
    /// The file up to (not including) the CRC.
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::corrupt(
                self.path,
                self.pos as u64,
                format!(
                    "manifest truncated: {what} needs {n} bytes, {} left",
                    self.remaining()
                ),
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32_at(self.take(4, what)?, 0))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(a))
    }
}

/// The name of run file `file_number`: sixteen decimal digits (more for a
/// number that needs them) and [`RUN_SUFFIX`].
pub(crate) fn run_file_name(file_number: u64) -> String {
    format!("{file_number:016}{RUN_SUFFIX}")
}

/// Parses a run file name back; None for anything else (used to find stray
/// runs). Only the exact spelling [`run_file_name`] gives is accepted.
pub(crate) fn parse_run_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(RUN_SUFFIX)?;
    if digits.len() < 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number: u64 = digits.parse().ok()?;
    (run_file_name(number) == name).then_some(number)
}

/// Path of the manifest inside `dir`.
pub(crate) fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST_FILE)
}

/// Path of the manifest being written inside `dir`.
pub(crate) fn manifest_tmp_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST_TMP_FILE)
}

/// Writes MANIFEST.tmp (create), writes all bytes, sync_data, renames it over
/// MANIFEST, then sync_dir(dir). All through `storage`. On a failure before the
/// rename, removes the tmp file (best effort) and returns the error; MANIFEST
/// is untouched.
///
/// A `MANIFEST.tmp` already there (left by a failure whose clean-up failed
/// too) is removed first. An error from the directory fsync comes after
/// the rename: the new manifest is in place but may not survive a power
/// cut, so the caller must treat the switch as undecided (poison, reopen)
/// and must not delete anything only the old manifest named.
pub(crate) fn install(storage: &dyn Storage, dir: &Path, manifest: &Manifest) -> Result<()> {
    let tmp = manifest_tmp_path(dir);
    let bytes = manifest.encode();
    let file = match storage.open(&tmp, true) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            storage.remove_file(&tmp).map_err(|e| Error::io(&tmp, e))?;
            storage.open(&tmp, true)
        }
        other => other,
    }
    .map_err(|e| Error::io(&tmp, e))?;
    let written = file
        .write_all_at(&bytes, 0)
        .and_then(|()| file.sync_data())
        .and_then(|()| storage.rename(&tmp, &manifest_path(dir)));
    drop(file);
    if let Err(e) = written {
        let _ = storage.remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    storage.sync_dir(dir).map_err(|e| Error::io(dir, e))
}

/// Reads MANIFEST if present (Ok(None) if absent). Does not delete or write
/// anything: it opens the file read-only, so it serves a read-only database.
pub(crate) fn load(storage: &dyn Storage, dir: &Path) -> Result<Option<Manifest>> {
    let path = manifest_path(dir);
    let file = match storage.open_read_only(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let len = file.len().map_err(|e| Error::io(&path, e))?;
    let len = usize::try_from(len)
        .ok()
        .filter(|len| *len <= MANIFEST_SIZE_MAX)
        .ok_or_else(|| {
            Error::corrupt(
                &path,
                0,
                format!("manifest of {len} bytes exceeds the limit of {MANIFEST_SIZE_MAX}"),
            )
        })?;
    let mut bytes = vec![0; len];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| Error::io(&path, e))?;
    Manifest::decode(&bytes, &path).map(Some)
}

/// Removes a stray MANIFEST.tmp (left by a crash before the rename). Only
/// that exact name; nothing there is not an error. The removal is not
/// fsynced: if a crash brings the file back, the next open removes it again.
pub(crate) fn remove_stray_tmp(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let tmp = manifest_tmp_path(dir);
    match storage.remove_file(&tmp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(&tmp, e)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::storage::FileStorage;
    use crate::testing::{CrashMode, DirState, FaultyStorage};

    fn table(id: u32, name: &str, retention: Option<RetentionPolicy>) -> TableEntry {
        TableEntry {
            id: TableId(id),
            name: name.to_string(),
            created: TxId(u64::from(id) + 1),
            horizon: TxId(u64::from(id) * 3),
            retention,
        }
    }

    fn run(file_number: u64, first: u64, last: u64) -> RunEntry {
        RunEntry {
            file_number,
            first_txid: TxId(first),
            last_txid: TxId(last),
            file_bytes: 4096 + file_number,
        }
    }

    /// A valid manifest with three tables and three runs.
    fn sample() -> Manifest {
        Manifest {
            seq: 7,
            runs_through: TxId(300),
            runs_through_time: Timestamp::from_micros(1_700_000_000_000_000),
            log_first_segment: SegmentId(12),
            log_first_txid: TxId(301),
            purge_horizon: TxId(40),
            next_file_number: 9,
            drops_applied: 0x1234_5678_9abc_def0,
            tables: vec![
                table(0, "user", None),
                table(
                    1,
                    "order",
                    Some(RetentionPolicy {
                        keep_last: Some(10),
                        keep_for: None,
                    }),
                ),
                table(
                    2,
                    "événement",
                    Some(RetentionPolicy {
                        keep_last: None,
                        keep_for: Some(Duration::from_secs(86_400)),
                    }),
                ),
            ],
            runs: vec![run(3, 1, 100), run(8, 101, 250), run(5, 251, 300)],
        }
    }

    fn decode(bytes: &[u8]) -> Result<Manifest> {
        Manifest::decode(bytes, Path::new("MANIFEST"))
    }

    /// The reason of a `Corrupt`, panicking on anything else.
    fn corrupt_reason(m: &Manifest) -> String {
        match decode(&m.encode()) {
            Err(Error::Corrupt { path, reason, .. }) => {
                assert_eq!(path, Path::new("MANIFEST"));
                reason
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn round_trips_tables_with_and_without_retention_and_runs() {
        let m = sample();
        assert_eq!(decode(&m.encode()).expect("decode"), m);
    }

    #[test]
    fn round_trips_the_empty_manifest() {
        let m = Manifest::empty();
        assert_eq!(m.runs_through, TxId::ZERO);
        assert_eq!(m.log_first_txid, TxId(1));
        let bytes = m.encode();
        assert_eq!(
            bytes.len(),
            HEADER_SIZE + 68 + CRC_SIZE,
            "fixed fields, two zero counts"
        );
        assert_eq!(&bytes[..8], b"TCMANIF\0");
        assert_eq!(decode(&bytes).expect("decode"), m);
    }

    #[test]
    fn every_single_bit_flip_is_an_error() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                assert!(
                    decode(&damaged).is_err(),
                    "flip of bit {bit} of byte {i} decoded"
                );
            }
        }
    }

    #[test]
    fn every_truncation_and_an_extension_is_corrupt() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                matches!(decode(&bytes[..len]), Err(Error::Corrupt { .. })),
                "cut at {len} decoded"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn a_wrong_magic_is_corrupt_at_offset_0() {
        let mut bytes = sample().encode();
        bytes[0] = b'X';
        assert!(matches!(
            decode(&bytes),
            Err(Error::Corrupt { offset: 0, .. })
        ));
    }

    /// Sets the version field and makes the CRC valid again.
    fn with_version(version: u32) -> Vec<u8> {
        let mut bytes = sample().encode();
        bytes[8..12].copy_from_slice(&version.to_le_bytes());
        let crc_at = bytes.len() - CRC_SIZE;
        let crc = crc32fast::hash(&bytes[..crc_at]);
        bytes[crc_at..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn a_higher_version_is_unsupported_format_and_version_0_corrupt() {
        match decode(&with_version(3)) {
            Err(Error::UnsupportedFormat {
                found, supported, ..
            }) => assert_eq!((found, supported), (3, 2)),
            other => panic!("expected UnsupportedFormat, got {other:?}"),
        }
        assert!(matches!(
            decode(&with_version(0)),
            Err(Error::Corrupt { offset: 8, .. })
        ));
        assert_eq!(
            decode(&with_version(2)).expect("decode"),
            sample(),
            "the helper itself keeps a valid file valid"
        );
    }

    #[test]
    fn a_version_1_manifest_reads_with_no_drops_applied() {
        // Version 1 is version 2 without `drops_applied` (body bytes 52..60).
        let mut bytes = sample().encode();
        bytes.drain(HEADER_SIZE + 52..HEADER_SIZE + 60);
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        let body_len = (bytes.len() - HEADER_SIZE - CRC_SIZE) as u32;
        bytes[12..16].copy_from_slice(&body_len.to_le_bytes());
        let crc_at = bytes.len() - CRC_SIZE;
        let crc = crc32fast::hash(&bytes[..crc_at]);
        bytes[crc_at..].copy_from_slice(&crc.to_le_bytes());
        let want = Manifest {
            drops_applied: 0,
            ..sample()
        };
        assert_eq!(decode(&bytes).expect("decode"), want);
    }

    #[test]
    fn runs_that_are_not_adjacent_are_corrupt() {
        let mut gap = sample();
        gap.runs[1].first_txid = TxId(102);
        assert!(corrupt_reason(&gap).contains("does not follow"));
        let mut overlap = sample();
        overlap.runs[1].first_txid = TxId(100);
        assert!(corrupt_reason(&overlap).contains("does not follow"));
        let mut backwards = sample();
        backwards.runs[0] = run(3, 100, 1);
        assert!(corrupt_reason(&backwards).contains("empty or starts at 0"));
        let mut zero = sample();
        zero.runs[0].first_txid = TxId::ZERO;
        assert!(corrupt_reason(&zero).contains("empty or starts at 0"));
    }

    #[test]
    fn runs_not_ending_at_runs_through_are_corrupt() {
        let mut short = sample();
        short.runs.pop();
        assert!(corrupt_reason(&short).contains("the runs end at txid 250"));
        let mut none = sample();
        none.runs.clear();
        assert!(corrupt_reason(&none).contains("the runs end at txid 0"));
        let mut beyond = sample();
        beyond.runs_through = TxId(301);
        beyond.log_first_txid = TxId(302);
        assert!(corrupt_reason(&beyond).contains("runs_through 301"));
    }

    #[test]
    fn log_first_txid_must_follow_runs_through() {
        let mut m = sample();
        m.log_first_txid = TxId(300);
        assert!(corrupt_reason(&m).contains("log_first_txid"));
        let mut m = Manifest::empty();
        m.runs_through = TxId(u64::MAX);
        m.log_first_txid = TxId::ZERO;
        assert!(corrupt_reason(&m).contains("log_first_txid"));
        let mut m = Manifest::empty();
        m.log_first_segment = SegmentId(0);
        assert!(corrupt_reason(&m).contains("log_first_segment"));
        let mut m = Manifest::empty();
        m.runs_through_time = Timestamp::from_micros(5);
        assert!(corrupt_reason(&m).contains("runs_through_time"));
    }

    #[test]
    fn duplicate_table_names_are_corrupt() {
        let mut m = sample();
        m.tables[2].name = "user".to_string();
        assert!(corrupt_reason(&m).contains("appears twice"));
    }

    #[test]
    fn table_ids_that_are_not_dense_are_corrupt() {
        let mut gap = sample();
        gap.tables[1].id = TableId(2);
        gap.tables[2].id = TableId(3);
        assert!(corrupt_reason(&gap).contains("dense"));
        let mut swapped = sample();
        swapped.tables.swap(0, 1);
        assert!(corrupt_reason(&swapped).contains("dense"));
        let mut from_one = sample();
        for t in &mut from_one.tables {
            t.id.0 += 1;
        }
        assert!(corrupt_reason(&from_one).contains("dense"));
    }

    #[test]
    fn bad_names_flags_and_run_numbers_are_corrupt() {
        let mut empty = sample();
        empty.tables[0].name = String::new();
        assert!(corrupt_reason(&empty).contains("outside 1..=255"));
        let mut long = sample();
        long.tables[0].name = "x".repeat(256);
        assert!(corrupt_reason(&long).contains("outside 1..=255"));
        let mut dup = sample();
        dup.runs[1].file_number = 3;
        assert!(corrupt_reason(&dup).contains("appears twice"));
        let mut unnumbered = sample();
        unnumbered.next_file_number = 8;
        assert!(corrupt_reason(&unnumbered).contains("next_file_number"));

        // Bytes no encoder writes: invalid UTF-8, a retention flag of 2.
        let one_table = Manifest {
            tables: vec![table(0, "ab", None)],
            ..Manifest::empty()
        };
        // Fixed fields (52), table count, table id, name length.
        let name_at = HEADER_SIZE + 60 + 4 + 4 + 4;
        let flag_at = name_at + 2 + 16;
        for (at, byte, reason) in [
            (name_at, 0xff, "not UTF-8"),
            (flag_at, 2, "neither 0 nor 1"),
        ] {
            let mut bytes = one_table.encode();
            assert_eq!(decode(&bytes).expect("valid"), one_table);
            bytes[at] = byte;
            let crc_at = bytes.len() - CRC_SIZE;
            let crc = crc32fast::hash(&bytes[..crc_at]);
            bytes[crc_at..].copy_from_slice(&crc.to_le_bytes());
            match decode(&bytes) {
                Err(Error::Corrupt { reason: r, .. }) => assert!(r.contains(reason), "{r}"),
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
    }

    #[test]
    fn huge_counts_and_lengths_are_corrupt_without_allocating() {
        // A table count of u32::MAX in an otherwise empty manifest.
        let mut bytes = Manifest::empty().encode();
        let count_at = HEADER_SIZE + 60;
        bytes[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let crc_at = bytes.len() - CRC_SIZE;
        let crc = crc32fast::hash(&bytes[..crc_at]);
        bytes[crc_at..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode(&bytes),
            Err(Error::Corrupt { offset, .. }) if offset == count_at as u64
        ));
    }

    #[test]
    fn run_file_names_parse_back_and_nothing_else_does() {
        assert_eq!(run_file_name(42), "0000000000000042.tcrun");
        for n in [0, 1, 42, 9_999_999_999_999_999, u64::MAX] {
            assert_eq!(parse_run_file_name(&run_file_name(n)), Some(n));
        }
        for name in [
            "42.tcrun",
            "000000000000042.tcrun",
            "00000000000000042.tcrun",
            "0000000000000042.tcrun.tmp",
            "0000000000000042.tcseg",
            "+000000000000042.tcrun",
            "00000000000000x2.tcrun",
            "99999999999999999999.tcrun",
            ".tcrun",
            "MANIFEST",
        ] {
            assert_eq!(parse_run_file_name(name), None, "{name}");
        }
    }

    #[test]
    fn install_twice_then_load_gives_the_second() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FileStorage;
        assert_eq!(load(&storage, dir.path()).expect("load"), None);
        let first = sample();
        install(&storage, dir.path(), &first).expect("install");
        assert_eq!(load(&storage, dir.path()).expect("load"), Some(first));
        let mut second = Manifest::empty();
        second.seq = 8;
        install(&storage, dir.path(), &second).expect("install");
        assert_eq!(load(&storage, dir.path()).expect("load"), Some(second));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![MANIFEST_FILE], "no tmp file left behind");
    }

    #[test]
    fn load_reports_a_damaged_manifest_and_leaves_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        install(&FileStorage, dir.path(), &sample()).expect("install");
        let path = dir.path().join(MANIFEST_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[30] ^= 4;
        std::fs::write(&path, &bytes).expect("write");
        match load(&FileStorage, dir.path()) {
            Err(Error::Corrupt { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).expect("read"), bytes);
    }

    #[test]
    fn a_stray_tmp_is_removed_and_nothing_else_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FileStorage;
        remove_stray_tmp(&storage, dir.path()).expect("nothing to remove is fine");
        install(&storage, dir.path(), &sample()).expect("install");
        let others = [
            "MANIFEST.tmp.old",
            "MANIFEST.tm",
            "xMANIFEST.tmp",
            "0000000000000003.tcrun",
        ];
        for name in others {
            std::fs::write(dir.path().join(name), b"keep").expect("write");
        }
        std::fs::write(dir.path().join(MANIFEST_TMP_FILE), b"half a manifest").expect("write");
        remove_stray_tmp(&storage, dir.path()).expect("remove");
        assert!(!dir.path().join(MANIFEST_TMP_FILE).exists());
        for name in others {
            assert_eq!(std::fs::read(dir.path().join(name)).expect("kept"), b"keep");
        }
        assert_eq!(load(&storage, dir.path()).expect("load"), Some(sample()));
        // A stray tmp does not block the next install either.
        std::fs::write(dir.path().join(MANIFEST_TMP_FILE), b"stray").expect("write");
        install(&storage, dir.path(), &Manifest::empty()).expect("install over a stray");
        assert_eq!(
            load(&storage, dir.path()).expect("load"),
            Some(Manifest::empty())
        );
        assert!(!dir.path().join(MANIFEST_TMP_FILE).exists());
    }

    #[test]
    fn load_works_through_a_read_only_handle_and_writes_nothing() {
        /// Hands out only read-only handles and refuses every other call.
        #[derive(Debug)]
        struct ReadOnlyStorage;
        impl Storage for ReadOnlyStorage {
            fn open(
                &self,
                _path: &Path,
                _create_new: bool,
            ) -> io::Result<std::sync::Arc<dyn crate::storage::StorageFile>> {
                Err(io::Error::other("read-only: open for writing"))
            }
            fn open_read_only(
                &self,
                path: &Path,
            ) -> io::Result<std::sync::Arc<dyn crate::storage::StorageFile>> {
                Ok(std::sync::Arc::new(crate::storage::ReadOnlyFile(
                    FileStorage.open_read_only(path)?,
                )))
            }
            fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
                Err(io::Error::other("read-only: sync_dir"))
            }
            fn rename(&self, _from: &Path, _to: &Path) -> io::Result<()> {
                Err(io::Error::other("read-only: rename"))
            }
            fn remove_file(&self, _path: &Path) -> io::Result<()> {
                Err(io::Error::other("read-only: remove"))
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(&ReadOnlyStorage, dir.path()).expect("load"), None);
        install(&FileStorage, dir.path(), &sample()).expect("install");
        std::fs::write(dir.path().join(MANIFEST_TMP_FILE), b"stray").expect("write");
        assert_eq!(
            load(&ReadOnlyStorage, dir.path()).expect("load"),
            Some(sample())
        );
        assert!(
            dir.path().join(MANIFEST_TMP_FILE).exists(),
            "load deletes nothing"
        );
    }

    #[test]
    fn a_failed_write_sync_or_rename_leaves_the_previous_manifest() {
        type Arm = fn(&mut crate::testing::Plan);
        let arms: [(&str, Arm); 5] = [
            ("write", |p| p.fail_write_at = Some(1)),
            ("partial write", |p| {
                p.fail_write_at = Some(1);
                p.partial_write_bytes = 10;
            }),
            ("enospc write", |p| {
                p.fail_write_at = Some(1);
                p.error = Some(io::ErrorKind::StorageFull);
            }),
            ("fsync", |p| p.fail_sync_at = Some(1)),
            ("rename", |p| p.fail_rename_at = Some(1)),
        ];
        for (what, arm) in arms {
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = FaultyStorage::default();
            let first = sample();
            install(&storage, dir.path(), &first).expect("install");
            let before = std::fs::read(dir.path().join(MANIFEST_FILE)).expect("read");
            storage.arm(arm);
            let mut second = Manifest::empty();
            second.seq = first.seq + 1;
            let err = install(&storage, dir.path(), &second).expect_err(what);
            assert!(matches!(err, Error::Io { .. }), "{what}: {err:?}");
            assert_eq!(
                std::fs::read(dir.path().join(MANIFEST_FILE)).expect("read"),
                before,
                "{what}: MANIFEST changed"
            );
            assert_eq!(
                load(&storage, dir.path()).expect("load"),
                Some(first.clone()),
                "{what}"
            );
            assert!(
                !dir.path().join(MANIFEST_TMP_FILE).exists(),
                "{what}: the tmp file was not removed"
            );
            // The fault was one call: the next install goes through.
            install(&storage, dir.path(), &second).expect("install after the fault");
            assert_eq!(load(&storage, dir.path()).expect("load"), Some(second));
        }
    }

    #[test]
    fn a_failed_clean_up_leaves_a_tmp_that_the_next_open_removes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FaultyStorage::default();
        install(&storage, dir.path(), &sample()).expect("install");
        storage.arm(|p| {
            p.fail_write_at = Some(1);
            p.partial_write_bytes = 5;
            p.fail_remove_at = Some(1);
        });
        install(&storage, dir.path(), &Manifest::empty()).expect_err("fails");
        assert!(dir.path().join(MANIFEST_TMP_FILE).exists());
        assert_eq!(load(&storage, dir.path()).expect("load"), Some(sample()));
        remove_stray_tmp(&storage, dir.path()).expect("remove");
        assert!(!dir.path().join(MANIFEST_TMP_FILE).exists());
        assert_eq!(load(&storage, dir.path()).expect("load"), Some(sample()));
    }

    #[test]
    fn a_crash_at_any_point_of_install_leaves_the_old_or_the_new_manifest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FaultyStorage::default();
        let old = sample();
        install(&storage, dir.path(), &old).expect("install");
        let mut new = old.clone();
        new.seq += 1;
        new.runs.push(run(9, 301, 400));
        new.runs_through = TxId(400);
        new.log_first_txid = TxId(401);
        new.next_file_number = 10;
        storage.capture_before_every_call(true);
        install(&storage, dir.path(), &new).expect("install");
        let done = storage.calls();
        let mut states = storage.take_captures();
        states.push(storage.capture());
        assert!(states.len() >= 5, "create, write, sync, rename, sync_dir");
        let mut seen_new = false;
        for state in &states {
            for mode in CrashMode::all(3) {
                for dir_state in [DirState::Durable, DirState::Live] {
                    let image = tempfile::tempdir().expect("tempdir");
                    state.write_image(dir.path(), image.path(), &mode, dir_state);
                    let found = load(&FileStorage, image.path())
                        .unwrap_or_else(|e| panic!("{mode:?} {dir_state:?}: {e}"))
                        .expect("a manifest");
                    assert!(found == old || found == new, "{mode:?} {dir_state:?}");
                    seen_new |= found == new;
                    if state.calls() >= done {
                        assert_eq!(found, new, "after install returned");
                    }
                    remove_stray_tmp(&FileStorage, image.path()).expect("remove");
                    assert_eq!(load(&FileStorage, image.path()).expect("load"), Some(found));
                }
            }
        }
        assert!(seen_new);
    }

    fn arb_manifest() -> impl Strategy<Value = Manifest> {
        let policy = (
            proptest::option::of(1u32..),
            proptest::option::of(0u64..u64::MAX - 1),
        )
            .prop_map(|(keep_last, keep_for)| RetentionPolicy {
                keep_last,
                keep_for: keep_for.map(Duration::from_micros),
            });
        let tables = proptest::collection::vec(
            (
                "[a-zA-Z_é]{1,20}",
                any::<u64>(),
                any::<u64>(),
                proptest::option::of(policy),
            ),
            0..8,
        );
        let runs = (
            1u64..1_000_000,
            proptest::collection::vec((1u64..10_000, any::<u64>()), 0..8),
            0u64..1000,
        );
        (
            any::<u64>(),
            any::<u64>(),
            1u32..,
            any::<u64>(),
            tables,
            runs,
        )
            .prop_map(
                |(seq, time, segment, purge, tables, (start, lens, spare))| {
                    let tables = tables
                        .into_iter()
                        .enumerate()
                        .map(|(i, (name, created, horizon, retention))| TableEntry {
                            id: TableId(i as u32),
                            // The index makes each name unique.
                            name: format!("{name}{i}"),
                            created: TxId(created),
                            horizon: TxId(horizon),
                            retention,
                        })
                        .collect();
                    let mut next = start;
                    let n = lens.len() as u64;
                    let runs: Vec<RunEntry> = lens
                        .into_iter()
                        .enumerate()
                        .map(|(i, (len, file_bytes))| {
                            let first = next;
                            next += len;
                            RunEntry {
                                // Distinct numbers, descending by txid.
                                file_number: spare + (n - 1 - i as u64),
                                first_txid: TxId(first),
                                last_txid: TxId(first + len - 1),
                                file_bytes,
                            }
                        })
                        .collect();
                    let runs_through = runs.last().map_or(TxId::ZERO, |r| r.last_txid);
                    let next_file_number = runs
                        .iter()
                        .map(|r| r.file_number + 1)
                        .max()
                        .unwrap_or(spare);
                    Manifest {
                        seq,
                        runs_through,
                        runs_through_time: Timestamp::from_micros(if runs.is_empty() {
                            0
                        } else {
                            time
                        }),
                        log_first_segment: SegmentId(segment),
                        log_first_txid: runs_through.next(),
                        purge_horizon: TxId(purge),
                        next_file_number,
                        drops_applied: purge.rotate_left(7),
                        tables,
                        runs,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn random_valid_manifests_round_trip(m in arb_manifest(), flip in any::<prop::sample::Index>()) {
            let bytes = m.encode();
            prop_assert_eq!(decode(&bytes).expect("decode"), m.clone());
            let at = flip.index(bytes.len() * 8);
            let mut damaged = bytes;
            damaged[at / 8] ^= 1 << (at % 8);
            prop_assert!(decode(&damaged).is_err());
        }
    }
}
