//! The commit witness `COMMIT`: a durable record, outside the segments, of
//! the last txid whose commit was acknowledged as durable.
//!
//! Without it, a deleted or truncated newest segment, or a bit flip in its
//! last frame, looks exactly like a torn write and its commits vanish
//! without a word. With it, recovery knows which frames were acknowledged:
//! damage to them is `Error::Corrupt`, their absence `Error::CommitsLost`.
//!
//! The file holds two slots, in separate 4 KiB pages so that a torn write
//! of one never touches the other. Each write goes to the slot the previous
//! one did not use, with a sequence number one higher, and is fsynced; the
//! valid slot with the highest sequence is the witness. A crash in the
//! middle of a write leaves the other slot, an older and still true
//! witness. The group committer records the witness after the segment's
//! fsync and before any commit it covers is acknowledged, so it is never
//! ahead of what is durable in the log, and never behind what a caller was
//! told is durable.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::log::poison::Poison;
use crate::log::segment::sync_dir;
use crate::storage::{Storage, StorageFile};
use crate::types::TxId;

/// File name of the witness inside the database directory.
pub(crate) const WITNESS_FILE: &str = "COMMIT";
/// Magic bytes at the start of each slot.
const WITNESS_MAGIC: [u8; 8] = *b"TCASKWIT";
/// The witness format version this build writes and reads.
const WITNESS_VERSION: u32 = 1;
/// Bytes of one slot: `magic | u32 version | u32 reserved | u64 sequence |
/// u64 txid | 28 reserved | u32 crc`.
pub(crate) const SLOT_SIZE: usize = 64;
/// Where the two slots start: a page apart.
pub(crate) const SLOT_OFFSETS: [u64; 2] = [0, 4096];

const MAGIC_END: usize = WITNESS_MAGIC.len();
const VERSION_END: usize = MAGIC_END + 4;
const RESERVED_END: usize = VERSION_END + 4;
const SEQUENCE_END: usize = RESERVED_END + 8;
const TXID_END: usize = SEQUENCE_END + 8;
const CRC_START: usize = SLOT_SIZE - 4;
const _: () = assert!(TXID_END <= CRC_START);
const _: () = assert!(SLOT_OFFSETS[1] >= SLOT_OFFSETS[0] + SLOT_SIZE as u64);

/// Path of the witness inside `dir`.
pub(crate) fn witness_path(dir: &Path) -> PathBuf {
    dir.join(WITNESS_FILE)
}

/// What a database directory's witness says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WitnessState {
    /// No witness file: a new database, or one written before the witness
    /// existed. Recovery falls back to telling tears by their shape.
    Missing,
    /// The file exists but no slot was ever written (empty or all zero: a
    /// crash while creating it). As good as missing.
    Blank,
    /// Every commit up to `txid` was acknowledged as durable.
    Valid { sequence: u64, txid: TxId },
}

impl WitnessState {
    /// The acknowledged txid, if the witness says one.
    pub(crate) fn acknowledged(self) -> Option<TxId> {
        match self {
            WitnessState::Valid { txid, .. } => Some(txid),
            WitnessState::Missing | WitnessState::Blank => None,
        }
    }
}

fn encode_slot(sequence: u64, txid: TxId) -> [u8; SLOT_SIZE] {
    let mut b = [0u8; SLOT_SIZE];
    b[..MAGIC_END].copy_from_slice(&WITNESS_MAGIC);
    b[MAGIC_END..VERSION_END].copy_from_slice(&WITNESS_VERSION.to_le_bytes());
    b[RESERVED_END..SEQUENCE_END].copy_from_slice(&sequence.to_le_bytes());
    b[SEQUENCE_END..TXID_END].copy_from_slice(&txid.0.to_le_bytes());
    let crc = crc32fast::hash(&b[..CRC_START]);
    b[CRC_START..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// One slot: `Ok(None)` if it does not hold a witness (damaged, torn, never
/// written), `Err` if it holds one of a newer format.
fn decode_slot(b: &[u8], path: &Path) -> Result<Option<(u64, TxId)>> {
    if b.len() < SLOT_SIZE || b[..MAGIC_END] != WITNESS_MAGIC {
        return Ok(None);
    }
    let u32_at = |end: usize| u32::from_le_bytes([b[end - 4], b[end - 3], b[end - 2], b[end - 1]]);
    let u64_at = |end: usize| {
        let mut a = [0; 8];
        a.copy_from_slice(&b[end - 8..end]);
        u64::from_le_bytes(a)
    };
    if crc32fast::hash(&b[..CRC_START]) != u32_at(SLOT_SIZE) {
        return Ok(None);
    }
    let version = u32_at(VERSION_END);
    if version != WITNESS_VERSION {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            found: version,
            supported: WITNESS_VERSION,
        });
    }
    Ok(Some((u64_at(SEQUENCE_END), TxId(u64_at(TXID_END)))))
}

/// Reads the witness of `dir` (read-only: it opens the file for reading).
///
/// A file that holds bytes but no valid slot was damaged (a crash can tear
/// at most the one slot being written): `Error::Corrupt`, and the file is
/// left as it is.
pub(crate) fn read_witness(storage: &dyn Storage, dir: &Path) -> Result<WitnessState> {
    let path = witness_path(dir);
    let file = match storage.open_read_only(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(WitnessState::Missing),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let len = file.len().map_err(|e| Error::io(&path, e))?;
    let want = SLOT_OFFSETS[1] + SLOT_SIZE as u64;
    let mut bytes = vec![0; len.min(want) as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| Error::io(&path, e))?;
    let mut best: Option<(u64, TxId)> = None;
    for offset in SLOT_OFFSETS {
        let start = offset as usize;
        let slot = bytes.get(start..(start + SLOT_SIZE).min(bytes.len()));
        if let Some(found) = decode_slot(slot.unwrap_or_default(), &path)?
            && best.is_none_or(|(sequence, _)| found.0 > sequence)
        {
            best = Some(found);
        }
    }
    match best {
        Some((sequence, txid)) => Ok(WitnessState::Valid { sequence, txid }),
        None if bytes.iter().all(|b| *b == 0) => Ok(WitnessState::Blank),
        None => Err(Error::corrupt(
            &path,
            0,
            "neither slot of the commit witness is valid; if the log is intact, \
             open with Config::recovery = Recovery::AcceptLoss to rewrite it",
        )),
    }
}

/// The writer's handle on the witness.
#[derive(Debug)]
pub(crate) struct Witness {
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    /// Sequence and txid of the last slot written.
    last: Mutex<(u64, TxId)>,
}

impl Witness {
    /// Opens the witness of `dir` as recovery found it (creating the file
    /// if it is missing) and makes it say `txid`, the end of the recovered
    /// log, which recovery has already made durable.
    pub(crate) fn open(
        storage: &dyn Storage,
        dir: &Path,
        found: WitnessState,
        txid: TxId,
        poison: &Poison,
    ) -> Result<Witness> {
        let path = witness_path(dir);
        let (file, last) = match found {
            WitnessState::Missing => {
                let file = storage.open(&path, true).map_err(|e| Error::io(&path, e))?;
                (file, (0, TxId::ZERO))
            }
            WitnessState::Blank => {
                let file = storage
                    .open(&path, false)
                    .map_err(|e| Error::io(&path, e))?;
                (file, (0, TxId::ZERO))
            }
            WitnessState::Valid { sequence, txid } => {
                let file = storage
                    .open(&path, false)
                    .map_err(|e| Error::io(&path, e))?;
                (file, (sequence, txid))
            }
        };
        let witness = Witness {
            file,
            path,
            last: Mutex::new(last),
        };
        if found.acknowledged() != Some(txid) {
            witness.write(txid, poison)?;
        }
        if found == WitnessState::Missing {
            sync_dir(storage, dir)?;
        }
        Ok(witness)
    }

    fn lock(&self) -> MutexGuard<'_, (u64, TxId)> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that every commit up to `txid` is durable. The log's fsync
    /// covering `txid` must have succeeded first. Does nothing if the
    /// witness already says as much. A failure poisons.
    pub(crate) fn record(&self, txid: TxId, poison: &Poison) -> Result<()> {
        if self.lock().1 >= txid {
            return Ok(());
        }
        self.write(txid, poison)
    }

    /// Writes `txid` into the next slot and fsyncs it (also lowering the
    /// witness, after a recovery that accepted a loss).
    fn write(&self, txid: TxId, poison: &Poison) -> Result<()> {
        poison.check()?;
        let mut last = self.lock();
        let sequence = last.0 + 1;
        let offset = SLOT_OFFSETS[(sequence % 2) as usize];
        if let Err(e) = self.file.write_all_at(&encode_slot(sequence, txid), offset) {
            poison.set(format!(
                "writing the commit witness {} failed: {e}",
                self.path.display()
            ));
            return Err(Error::io(&self.path, e));
        }
        poison.sync(self.file.as_ref(), &self.path)?;
        *last = (sequence, txid);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FileStorage;

    #[test]
    fn golden_slot_v1() {
        let slot = encode_slot(1, TxId(7));
        let golden = crate::test_support::golden("v1/commit-slot.bin", &slot);
        assert_eq!(
            slot.to_vec(),
            golden,
            "slot bytes changed: bump the version"
        );
        assert_eq!(
            decode_slot(&slot, Path::new("x")).expect("valid"),
            Some((1, TxId(7)))
        );
    }

    #[test]
    fn newest_valid_slot_wins_and_a_torn_slot_falls_back_to_the_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let poison = Poison::default();
        let storage = FileStorage;
        assert_eq!(
            read_witness(&storage, dir.path()).expect("read"),
            WitnessState::Missing
        );
        let w = Witness::open(
            &storage,
            dir.path(),
            WitnessState::Missing,
            TxId(3),
            &poison,
        )
        .expect("create");
        w.record(TxId(5), &poison).expect("record");
        w.record(TxId(4), &poison)
            .expect("an older txid is a no-op");
        assert_eq!(
            read_witness(&storage, dir.path()).expect("read"),
            WitnessState::Valid {
                sequence: 2,
                txid: TxId(5)
            }
        );
        // Tear the newest slot (sequence 2 lives at slot 0).
        let path = witness_path(dir.path());
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[20] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(
            read_witness(&storage, dir.path()).expect("read"),
            WitnessState::Valid {
                sequence: 1,
                txid: TxId(3)
            }
        );
        // Both slots damaged: corrupt, file untouched.
        bytes[4096 + 20] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            read_witness(&storage, dir.path()),
            Err(Error::Corrupt { .. })
        ));
        assert_eq!(std::fs::read(&path).expect("read"), bytes);
        // All zeros: never written.
        std::fs::write(&path, vec![0; 100]).expect("write");
        assert_eq!(
            read_witness(&storage, dir.path()).expect("read"),
            WitnessState::Blank
        );
    }
}
